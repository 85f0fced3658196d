"""`POST /v1/audio/transcriptions` through the official `openai` client against a real server: every
response format, word and segment timestamps, streamed events, bad audio, the API key, nothing stored."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from conftest import SPEECH_TEXT, serving, wer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("stt-data")


@pytest.fixture(scope="module")
def base_url(data_dir):
    """One server for the module: Whisper stays loaded between tests."""
    with serving(data_dir) as url:
        yield url


@pytest.fixture
def oai(base_url):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)
    yield client
    client.close()


def nothing_left(data_dir) -> bool:
    """Stateless: no upload left in incoming/, no audio copied, no episode recorded."""
    incoming = data_dir / "incoming"
    audio_dir = data_dir / "audio"
    return (not incoming.exists() or not any(incoming.iterdir())) and \
        (not audio_dir.exists() or not any(audio_dir.iterdir()))


def test_json_text_srt_and_vtt_through_the_openai_client(oai, speech_wav, speech_mp3, data_dir, base_url):
    with open(speech_mp3, "rb") as f:
        t = oai.audio.transcriptions.create(model="whisper-1", file=f)
    assert wer(SPEECH_TEXT, t.text) < 0.25, t.text
    assert t.usage.seconds >= 10

    text = oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="text")
    assert isinstance(text, str) and wer(SPEECH_TEXT, text) < 0.25

    srt = oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="srt")
    assert srt.startswith("1\n00:00:0") and " --> " in srt and "," in srt.splitlines()[1]
    vtt = oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="vtt",
                                          language="en", prompt="Volcano, lava, drones.")
    assert vtt.startswith("WEBVTT") and "volcano" in vtt.lower()
    assert nothing_left(data_dir)
    assert httpx.get(f"{base_url}/episodes").json()["total"] == 0


def test_verbose_json_with_word_and_segment_timestamps(oai, speech_wav):
    v = oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="verbose_json",
                                        timestamp_granularities=["word", "segment"])
    assert v.language == "english" and 10 < v.duration < 15 and wer(SPEECH_TEXT, v.text) < 0.25
    assert v.segments and v.words
    assert all(0 <= s.start < s.end <= v.duration + 0.5 for s in v.segments)
    starts = [w.start for w in v.words]
    assert starts == sorted(starts) and "volcano" in " ".join(w.word.lower() for w in v.words)

    only_words = oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="verbose_json",
                                                 timestamp_granularities=["word"])
    assert only_words.words and not only_words.segments
    default = oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="verbose_json")
    assert default.segments and not default.words


def test_our_model_ids_are_accepted_and_listed(oai, speech_wav):
    listed = {m.id: m for m in oai.models.list().data}
    assert "whisper-1" in listed and "whisper-tiny.en-ct2" in listed and "tts-1" in listed
    assert listed["whisper-1"].kind == "transcription"
    t = oai.audio.transcriptions.create(model="whisper-tiny.en-ct2", file=speech_wav)
    assert wer(SPEECH_TEXT, t.text) < 0.25
    with pytest.raises(openai.BadRequestError, match="unknown model"):
        oai.audio.transcriptions.create(model="nobody", file=speech_wav)


def test_streaming_sends_deltas_then_done(oai, speech_wav, data_dir):
    events = list(oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, stream=True))
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done" and set(types[:-1]) == {"transcript.text.delta"}
    assert "".join(e.delta for e in events[:-1]) == events[-1].text
    assert wer(SPEECH_TEXT, events[-1].text) < 0.25
    assert nothing_left(data_dir)


def test_not_audio_is_refused_with_our_error_body(base_url, data_dir):
    for name, body, status in (("notes.txt", b"this is not audio at all\n" * 50, 415),
                               ("empty.wav", b"", 422)):
        r = httpx.post(f"{base_url}/v1/audio/transcriptions", data={"model": "whisper-1"},
                       files={"file": (name, body, "application/octet-stream")}, timeout=60)
        assert r.status_code == status, r.text
        assert set(r.json()) == {"error"} and r.json()["error"]["message"].startswith(name)
    r = httpx.post(f"{base_url}/v1/audio/transcriptions", data={"model": "whisper-1", "stream": "true"},
                   files={"file": ("notes.txt", b"nope" * 100)}, timeout=60)
    assert r.status_code == 415 and r.headers["content-type"].startswith("application/json")
    assert nothing_left(data_dir)


def test_bad_fields_are_refused_before_the_audio_is_read(oai, base_url, speech_wav):
    with pytest.raises(openai.BadRequestError, match="response_format"):
        oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="xml")
    with pytest.raises(openai.BadRequestError, match="verbose_json"):
        oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="json",
                                        timestamp_granularities=["word"])
    with pytest.raises(openai.BadRequestError, match="English only"):
        oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, language="de")
    r = httpx.post(f"{base_url}/v1/audio/transcriptions", data={"model": "whisper-1"}, timeout=30)
    assert r.status_code == 422 and set(r.json()) == {"error"}


def test_oversize_upload_is_413(base_url, env, speech_wav):
    env("MEDIAFLOW_MAX_UPLOAD_MB", "1")
    big = speech_wav.read_bytes() * 4
    r = httpx.post(f"{base_url}/v1/audio/transcriptions", data={"model": "whisper-1"},
                   files={"file": ("big.wav", big, "audio/wav")}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "input_too_large"


def test_the_api_key_is_required_when_set(base_url, env, speech_wav):
    env("MEDIAFLOW_API_KEY", "s3cret-key")
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.audio.transcriptions.create(model="whisper-1", file=speech_wav)
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="s3cret-key", max_retries=0, timeout=120) as right:
        assert "volcano" in right.audio.transcriptions.create(model="whisper-1", file=speech_wav).text.lower()
    # refused before the body is read: the whole upload is never spooled
    r = httpx.post(f"{base_url}/v1/audio/transcriptions", content=b"x" * 100,
                   headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=30)
    assert r.status_code == 401 and json.loads(r.text)["error"]["code"] == "unauthorized"
