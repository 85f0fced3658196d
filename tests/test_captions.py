"""Captions: word times from the durations a voice predicts, checked against what Whisper hears.

The student (shipped checkpoint) and the teacher speak; Whisper tiny.en transcribes with word timestamps;
each caption word Whisper also heard is compared by its start time. Then `POST /tts/captioned` end to
end on a real server: the JSON, the audio inside it, and the rules it shares with `/tts`.
"""

from __future__ import annotations

import base64
import difflib
import re
import statistics
import threading

import httpx
import pytest

from conftest import serving
from mediaflow import audio, config
from mediaflow.asr import Transcriber
from mediaflow.tts import voices
from mediaflow.tts.frontend import phonemize, phonemize_words, prepare

TEXT = ("Because you listened to The History Hour last night, try Deep Time next: it gets into volcanoes and "
        "ancient oceans. The host walks through three eruptions, one after another, and explains what each changed.")
SHORT = "Try the next episode. It is about volcanoes."


def _norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


@pytest.fixture(scope="module")
def whisper():
    return Transcriber("tiny.en", threads=2)


def _start_errors(captioned, whisper, tmp_path) -> tuple[list[float], int]:
    """|caption start − Whisper start| for each word both have (matched in order), and the caption's word count."""
    path = tmp_path / "captioned.wav"
    path.write_bytes(audio.encode(captioned.audio, captioned.sample_rate, "wav"))
    heard = [w for s in whisper.transcribe(path).segments for w in s.words]
    ours, theirs = [_norm(w.word) for w in captioned.words], [_norm(w.text) for w in heard]
    errors = []
    for tag, i1, i2, j1, _ in difflib.SequenceMatcher(None, ours, theirs, autojunk=False).get_opcodes():
        if tag == "equal":
            errors += [abs(captioned.words[i1 + k].start - heard[j1 + k].start) for k in range(i2 - i1)]
    return errors, len(ours)


@pytest.mark.parametrize("voice_id", ["student", "teacher"])
def test_caption_word_starts_match_what_whisper_hears(voice_id, whisper, tmp_path):
    if not voices.voice_info(voice_id).available:
        pytest.skip(f"{voice_id} is not installed")
    captioned = voices.get_voice(voice_id, threads=2).captioned(TEXT)
    errors, n = _start_errors(captioned, whisper, tmp_path)
    assert n == len(TEXT.split()) and len(errors) >= 0.8 * n, (n, len(errors))
    assert statistics.median(errors) <= 0.15, sorted(errors)


def test_captions_are_the_audio_synthesize_makes_with_ordered_words_inside_it():
    student = voices.get_voice("student", threads=2)
    captioned = student.captioned(TEXT, speed=1.3)
    assert (captioned.audio == student.synthesize(TEXT, speed=1.3)).all()
    words = captioned.words
    assert [w.word for w in words] == TEXT.split()
    assert all(0 <= a.start < a.end <= b.start for a, b in zip(words, words[1:]))
    assert words[-1].end <= captioned.seconds
    slower = student.captioned(TEXT, speed=0.8).words
    assert slower[-1].end > words[-1].end * 1.4  # speed scales the durations, so the times


def test_numbers_are_captioned_as_the_words_spoken():
    captioned = voices.get_voice("student", threads=2).captioned("It aired on March 3rd, 2024 at 9:30 p.m.")
    assert " ".join(w.word for w in captioned.words) == "It aired on March third, twenty twenty-four at nine thirty PM."


def test_word_spans_leave_the_phonemes_unchanged_and_cover_every_word():
    for sentence in ["Don't skip ahead — it's Siobhan Delacroix's show!", "Well... you know, it's (sort of) 'fine'?"]:
        phonemes, words = phonemize_words(sentence)
        assert phonemes == phonemize(sentence)
        assert [w for w, _, _ in words] == [w for w in sentence.split() if any(c.isalnum() for c in w)]
        assert all(0 <= a < b <= len(phonemes) and phonemes[a:b].strip() == phonemes[a:b] for _, a, b in words)
    # a sentence too long for one call is cut at clauses; each piece keeps its own words
    long = ", ".join(["the ocean storms return every winter to the northern coast"] * 12) + "."
    chunks = prepare(long, max_tokens=200, group=False)
    assert len(chunks) > 1 and sum(len(c.words) for c in chunks) == len(long.split())
    assert all(c.phonemes[a:b] for c in chunks for _, a, b in c.words)


def test_a_voice_without_durations_says_so():
    with pytest.raises(Exception, match="gives no word timings"):
        voices.get_voice("hibari", threads=2).captioned(SHORT)


# -- the route -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("captions-data"), MEDIAFLOW_TTS_STUDENT=None) as url:
        yield url


@pytest.fixture
def api(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_the_captioned_route_answers_audio_and_the_words_in_it(api, fmt, tmp_path):
    r = api.post("/tts/captioned", json={"text": SHORT, "format": fmt})  # no voice: the default, the student
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["voice"] == "student" and body["format"] == fmt and body["sample_rate"] == 24_000
    path = tmp_path / f"captioned.{fmt}"
    path.write_bytes(base64.b64decode(body["audio"], validate=True))
    decoded = audio.decode(path, sample_rate=24_000)
    assert abs(len(decoded) / 24_000 - body["duration"]) < 0.1
    expected = voices.get_voice("student", threads=config.get_settings().tts_threads).captioned(SHORT)
    assert body["words"] == [w.to_dict() for w in expected.words]
    assert [w["word"] for w in body["words"]] == SHORT.split()


def test_the_captioned_route_keeps_the_rules_of_tts(api, env):
    assert api.post("/tts/captioned", json={"text": SHORT, "voice": "hibari"}).status_code == 400
    r = api.post("/tts/captioned", json={"text": "9" * 4000})
    assert r.status_code == 413 and "4,000 words" in r.json()["error"]["message"]
    assert api.post("/tts/captioned", json={"text": SHORT, "speed": 9}).status_code == 422
    assert api.post("/tts/captioned", json={"text": SHORT, "format": "mp4"}).status_code == 422
    env("MEDIAFLOW_API_KEY", "s3cret-key")
    assert api.post("/tts/captioned", json={"text": SHORT}).status_code == 401
    ok = api.post("/tts/captioned", json={"text": SHORT}, headers={"Authorization": "Bearer s3cret-key"})
    assert ok.status_code == 200


def test_captioned_speech_takes_a_turn_and_is_refused_with_429_when_full(base_url, api, env, monkeypatch):
    env("MEDIAFLOW_TTS_QUEUE", "0")
    env("MEDIAFLOW_TTS_QUEUE_WAIT_S", "0.2")
    model = voices.get_voice("student", threads=config.get_settings().tts_threads).model
    holding, released, real = threading.Event(), threading.Event(), model.from_ids

    def held(*args, **kwargs):
        holding.set()
        released.wait(120)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "from_ids", held)
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(r=httpx.post(f"{base_url}/tts/captioned",
                                                                        json={"text": SHORT}, timeout=120)))
    worker.start()
    try:
        assert holding.wait(120)
        full = api.post("/tts/captioned", json={"text": SHORT}, timeout=30)
        assert full.status_code == 429 and full.headers["retry-after"] == "1"
        assert api.post("/tts", json={"text": SHORT}, timeout=30).status_code == 429  # one budget for both
    finally:
        released.set()
        worker.join(120)
    assert first["r"].status_code == 200
