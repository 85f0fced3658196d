"""The speech endpoints end to end: a real uvicorn on loopback, real voices, ffmpeg to check the audio.

Most tests speak with `hibari` (fast, and repeatable: a fixed seed per request), so its output can be
compared with what the library makes; the teacher speaks once, for streaming, `/health` during
synthesis and Whisper. Streaming is checked by order, not by the clock: the server runs in this
process, so a test can hold a voice's last sentence back and see what the client has by then.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import httpx
import numpy as np
import openai
import pytest

from conftest import serving, wer
from mediaflow import audio, config
from mediaflow.tts import encoding, voices

SHORT = "Try the next episode. It is about volcanoes."
TEACHER_TEXT = "The volcano erupted at dawn. Scientists measured the lava with drones. Nobody was hurt."
FORMATS = ["wav", "mp3", "ogg-opus", "flac", "aac", "pcm"]
MEDIA = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg-opus": "audio/ogg", "flac": "audio/flac", "aac": "audio/aac",
         "pcm": "audio/pcm;rate=24000;channels=1;format=s16le"}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """One server for the module: the voices stay loaded between tests."""
    no_student = str(tmp_path_factory.mktemp("no-student") / "student.pt")
    with serving(tmp_path_factory.mktemp("tts-data"), MEDIAFLOW_TTS_STUDENT=no_student) as url:
        yield url


@pytest.fixture
def api(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


@pytest.fixture
def oai(base_url):
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


def _hibari(text: str, speed: float = 1.0) -> np.ndarray:
    return voices.get_voice("hibari", threads=0).synthesize(text, speed)  # threads=0: what the server loads


def _decode(data: bytes, fmt: str, tmp_path) -> np.ndarray:
    """Audio bytes → float32 at 24 kHz, through ffmpeg for everything but raw PCM."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32767.0
    path = tmp_path / f"speech.{fmt}"
    path.write_bytes(data)
    return audio.decode(path, sample_rate=24_000)


# -- formats ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_the_speech_the_voice_made(api, fmt, stream, tmp_path):
    r = api.post("/tts", json={"text": SHORT, "voice": "hibari", "format": fmt, "stream": stream})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA[fmt]
    assert r.headers["x-voice"] == "hibari" and r.headers["x-sample-rate"] == "24000"
    assert ("chunked" in r.headers.get("transfer-encoding", "")) == stream
    expected = _hibari(SHORT)
    if fmt in ("pcm", "wav"):  # lossless and ours: the very samples the library makes
        pcm = encoding.pcm16(expected)
        header = b"" if fmt == "pcm" else encoding.wav_header(24_000, None if stream else len(expected))
        assert r.content == header + pcm
    heard = _decode(r.content, fmt, tmp_path)
    # codecs pad the start and end by a few milliseconds (mp3, aac) or round to frames
    assert abs(len(heard) - len(expected)) / 24_000 < 0.1, (len(heard), len(expected))
    assert np.abs(heard).max() > 0.05


def test_faster_speech_is_shorter(api):
    normal = api.post("/tts", json={"text": SHORT, "voice": "hibari", "format": "pcm"}).content
    fast = api.post("/tts", json={"text": SHORT, "voice": "hibari", "format": "pcm", "speed": 2.0}).content
    slow = api.post("/tts", json={"text": SHORT, "voice": "hibari", "format": "pcm", "speed": 0.5}).content
    assert len(fast) < 0.7 * len(normal) < 0.7 * 0.7 * len(slow)
    # /metrics counts the work: synthesis time and seconds of speech made, per voice
    metrics = {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in api.get("/metrics").text.splitlines()
               if ln.startswith("mediaflow_synth")}
    audio_s = (len(normal) + len(fast) + len(slow)) / 2 / 24_000
    assert metrics['mediaflow_synthesised_audio_seconds_total{voice="hibari"}'] >= audio_s - 0.01
    assert metrics['mediaflow_synthesis_seconds_total{voice="hibari"}'] > 0


# -- OpenAI compatibility --------------------------------------------------------------------------
def test_the_openai_client_gets_speech_back_unchanged(oai, tmp_path):
    wav = oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, response_format="wav")
    assert wav.response.headers["content-type"] == "audio/wav"
    assert abs(len(_decode(wav.content, "wav", tmp_path)) - len(_hibari(SHORT))) < 2400

    # the default format is mp3, as OpenAI's; a custom-voice object names one of our ids
    mp3 = oai.audio.speech.create(model="gpt-4o-mini-tts", voice={"id": "hibari"}, input=SHORT,
                                  instructions="Speak cheerfully.")
    assert mp3.response.headers["content-type"] == "audio/mpeg"
    assert len(_decode(mp3.content, "mp3", tmp_path)) > 24_000

    with oai.audio.speech.with_streaming_response.create(
        model="tts-1-hd", voice="hibari", input=SHORT, response_format="opus", speed=1.25,
    ) as resp:
        assert resp.headers["content-type"] == "audio/ogg"
        opus = b"".join(resp.iter_bytes())
    assert opus[:4] == b"OggS"
    assert len(_decode(opus, "ogg-opus", tmp_path)) < len(_hibari(SHORT))  # faster than normal speed

    pcm = oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, response_format="pcm").content
    assert pcm == encoding.pcm16(_hibari(SHORT))


def test_openai_errors_reach_the_client_as_its_own_exceptions(oai):
    with pytest.raises(openai.BadRequestError, match="unknown voice 'nobody'.*alloy") as err:
        oai.audio.speech.create(model="tts-1", voice="nobody", input=SHORT)
    assert err.value.body["code"] == "invalid_input"  # the client unwraps our {"error": {...}} body
    with pytest.raises(openai.UnprocessableEntityError, match="speed"):
        oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, speed=4.01)
    with pytest.raises(openai.BadRequestError, match="sse"):
        oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, stream_format="sse")


def test_the_openai_client_gets_openais_speed_range(oai):
    normal = oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, response_format="pcm").content
    slowest = oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, response_format="pcm", speed=0.25)
    fastest = oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, response_format="pcm", speed=4.0)
    assert len(fastest.content) < len(normal) < len(slowest.content)


def test_models_are_listed_as_openai_lists_them(api, oai):
    listing = api.get("/v1/models").json()
    assert listing["object"] == "list"
    for m in listing["data"]:
        assert {"id", "object", "created", "owned_by"} <= set(m) and m["object"] == "model"
        assert isinstance(m["created"], int)
    assert [m.id for m in oai.models.list()] == [m["id"] for m in listing["data"]]
    speech = [m for m in listing["data"] if m["kind"] == "speech"]
    ids = [m["id"] for m in speech]
    assert ids[:3] == ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
    engines = {m["id"]: m["voices"] for m in speech[3:]}
    assert engines["hibari"] == ["hibari"] and "teacher" in engines["kokoro-82m-v1.0"]
    assert oai.models.retrieve("tts-1-hd").id == "tts-1-hd"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("tts-9")
    for model in ids:  # every listed speech model is one /v1/audio/speech takes
        assert oai.audio.speech.create(model=model, voice="hibari", input="Hi.", response_format="pcm").content


def test_voice_names_are_read_the_same_by_every_route(api, oai, env):
    env("MEDIAFLOW_TTS_DEFAULT_VOICE", "hibari")
    expected = encoding.pcm16(_hibari(SHORT))
    for voice in ("HIBARI", " Hibari ", "alloy", "NOVA"):
        r = api.post("/tts", json={"text": SHORT, "voice": voice, "format": "pcm"})
        assert r.status_code == 200 and r.headers["x-voice"] == "hibari" and r.content == expected, voice
        said = oai.audio.speech.create(model="tts-1", voice=voice, input=SHORT, response_format="pcm")
        assert said.response.headers["x-voice"] == "hibari" and said.content == expected, voice


def test_what_the_client_sent_is_echoed_cut(api, oai):
    for path, body in (("/tts", {"text": SHORT, "voice": "x" * 10_000}),
                       ("/v1/audio/speech", {"input": SHORT, "voice": "x" * 10_000}),
                       ("/v1/audio/speech", {"input": SHORT, "voice": {"id": "x" * 10_000}})):
        r = api.post(path, json=body)
        message = r.json()["error"]["message"]
        assert r.status_code == 400 and "(10,000 characters)" in message and len(message) < 500, path
    r = api.post("/tts", json={"text": SHORT, "y" * 10_000: 1})  # an unknown field's name is the client's text
    assert r.status_code == 422 and "(10,000 characters)" in r.json()["error"]["message"]
    assert len(r.json()["error"]["message"]) < 500


def test_markup_and_control_characters_are_not_read_aloud(api):
    expected = encoding.pcm16(_hibari(SHORT))
    for text in ('<speak>Try the next episode.<break time="10s"/>It is about <emphasis>volcanoes</emphasis>.</speak>',
                 "\x1b[31mTry the next episode.\x1b[0m It is about volcanoes.\x07",
                 "<p>Try the next episode.</p><p>It is about volcanoes.</p><!-- volcanoes -->"):
        r = api.post("/tts", json={"text": text, "voice": "hibari", "format": "pcm"})
        assert r.status_code == 200 and r.content == expected, text


@pytest.mark.parametrize("voice", ["hibari", "teacher", "piper-joe"])
def test_output_is_bounded_in_words_and_seconds_for_every_voice(api, env, voice):
    if not voices.voice_info(voice).available:
        pytest.skip(f"{voice} is not installed")
    r = api.post("/tts", json={"text": "9" * 4000, "voice": voice})  # 4,000 characters, 4,000 words spoken
    assert r.status_code == 413 and r.json()["error"]["code"] == "input_too_large"
    assert "4,000 words" in r.json()["error"]["message"]
    long = "Listeners who enjoy long conversations about science return for more. " * 60
    r = api.post("/v1/audio/speech", json={"input": long, "voice": voice, "speed": 0.25})
    assert r.status_code == 413 and "of audio at speed 0.25" in r.json()["error"]["message"]
    env("MEDIAFLOW_TTS_MAX_AUDIO_S", "1")  # the bound on seconds is a setting
    r = api.post("/tts", json={"text": SHORT, "voice": voice, "stream": False})
    assert r.status_code == 413 and "the limit is 1 s of audio" in r.json()["error"]["message"]


def test_synthesis_full_is_a_429_with_retry_after(base_url, api, env):
    """One request speaking, its second sentence held: with no queue the next is refused at once; with a
    queue of one, the next waits for a turn no longer than the bound, then is refused."""
    env("MEDIAFLOW_TTS_QUEUE", "0")
    env("MEDIAFLOW_TTS_QUEUE_WAIT_S", "0.2")
    text = "The first point is short. The second point is held back."
    with gate(_loaded("hibari").model, "from_ids", 2) as held, httpx.Client(base_url=base_url, timeout=120) as other, \
            other.stream("POST", "/tts", json={"text": text, "voice": "hibari", "format": "pcm"}) as first:
        assert first.status_code == 200 and held.holding.wait(120)
        full = api.post("/tts", json={"text": SHORT, "voice": "hibari"}, timeout=30)  # refused, not kept waiting
        assert full.status_code == 429 and full.json()["error"]["code"] == "overloaded"
        assert full.headers["retry-after"] == "1" and "at most 1" in full.json()["error"]["message"]
        oai = api.post("/v1/audio/speech", json={"input": SHORT, "voice": "hibari"}, timeout=30)
        assert oai.status_code == 429 and oai.headers["retry-after"] == "1"
        env("MEDIAFLOW_TTS_QUEUE", "1")  # slots are remade from the settings; the held request is in the old ones
        with gate(_loaded("hibari").model, "from_ids", 2) as held_too, \
                httpx.Client(base_url=base_url, timeout=120) as third, \
                third.stream("POST", "/tts", json={"text": text, "voice": "hibari", "format": "pcm"}) as second:
            assert second.status_code == 200 and held_too.holding.wait(120)
            waited = api.post("/tts", json={"text": SHORT, "voice": "hibari"}, timeout=30)  # no turn in 0.2 s
            assert waited.status_code == 429 and "no turn came within 0.2 s" in waited.json()["error"]["message"]
            held_too.released.set()
            second.read()
        held.released.set()
        first.read()
    assert api.post("/tts", json={"text": SHORT, "voice": "hibari"}).status_code == 200  # slots given back


# -- streaming -------------------------------------------------------------------------------------
@dataclass
class Gate:
    """Holds back the n-th call of a voice's per-sentence method until released; counts finished calls."""

    n: int
    finished: int = 0
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@contextmanager
def gate(obj, method: str, n: int) -> Iterator[Gate]:
    """`obj.method`'s n-th call waits for `released` (two minutes at most, so a broken stream fails, not hangs)."""
    g, calls, real = Gate(n), itertools.count(1), getattr(obj, method)

    def held(*args, **kwargs):
        if next(calls) == n:
            g.holding.set()
            g.released.wait(120)
        try:
            return real(*args, **kwargs)
        finally:
            g.finished += 1

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(obj, method, held)
        try:
            yield g
        finally:
            g.released.set()


def _loaded(voice_id: str) -> voices.Voice:
    """The voice object the server speaks with (voices are loaded once per process and thread count)."""
    return voices.get_voice(voice_id, threads=config.get_settings().tts_threads)


def test_mp3_leaves_sentence_by_sentence_through_the_encoder(api, tmp_path):
    text = " ".join(["The first point is short.", "The second point takes a little longer to make.",
                     "The third point is about coffee.", "The fourth point is about tea.", "And that is all."])
    api.post("/tts", json={"text": "Ready.", "voice": "piper-joe", "format": "mp3"})  # voice and phonemiser loaded
    with gate(_loaded("piper-joe"), "_say", 5) as last, \
            api.stream("POST", "/tts", json={"text": text, "voice": "piper-joe", "format": "mp3"}) as r:
        assert r.status_code == 200 and "chunked" in r.headers["transfer-encoding"]
        raw = r.iter_raw()
        data = bytearray(next(chunk for chunk in raw if chunk))
        assert last.finished < 5  # encoded MP3 reached the client while the last sentence was held back
        last.released.set()
        for chunk in raw:
            data += chunk
    assert last.finished == 5
    assert len(_decode(bytes(data), "mp3", tmp_path)) / 24_000 > 5  # all five sentences


@pytest.fixture(scope="module")
def teacher_run(base_url):
    """The teacher speaks three sentences through the OpenAI client (OpenAI's `alloy` is our default,
    the teacher), its last sentence held back until the client has audio and `/health` has answered."""
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=300)
    client.audio.speech.create(model="tts-1", voice="teacher", input="Ready.", response_format="pcm")  # loaded
    run = {"data": bytearray()}
    try:
        with gate(_loaded("teacher").teacher, "from_ids", 3) as last, \
                client.audio.speech.with_streaming_response.create(
                    model="tts-1", voice="alloy", input=TEACHER_TEXT, response_format="pcm") as resp:
            run["headers"] = dict(resp.headers)
            chunks = resp.iter_bytes()
            run["data"] += next(chunk for chunk in chunks if chunk)
            run["finished_at_first_audio"] = last.finished
            run["held"] = last.holding.wait(120)
            with httpx.Client(base_url=base_url, timeout=60) as h:  # while a synthesis holds the limiter
                run["health"] = [h.get("/health").status_code for _ in range(3)]
            last.released.set()
            for chunk in chunks:
                run["data"] += chunk
            run["finished"] = last.finished
    finally:
        client.close()
    return run


def test_the_first_sentence_is_heard_before_the_last_is_made(teacher_run):
    assert teacher_run["headers"]["x-voice"] == "teacher"
    assert teacher_run["finished_at_first_audio"] < 3 and teacher_run["held"]
    assert teacher_run["finished"] == 3 and len(teacher_run["data"]) / 2 / 24_000 > 3  # all three sentences


def test_health_answers_while_the_teacher_speaks(teacher_run):
    assert teacher_run["health"] == [200, 200, 200]


def test_whisper_hears_what_the_teacher_said_through_the_api(teacher_run, tmp_path):
    from mediaflow.asr import Transcriber

    path = tmp_path / "teacher.wav"
    path.write_bytes(encoding.wav_header(24_000) + bytes(teacher_run["data"]))
    heard = Transcriber("tiny.en", threads=2).transcribe(audio.decode(path)).text
    assert wer(TEACHER_TEXT, heard) <= 0.2, heard


# -- refusals: before the first byte, with the error body -------------------------------------------
@pytest.mark.parametrize(
    "body, status, code, says",
    [
        ({"text": ""}, 400, "invalid_input", "empty"),
        ({"text": " \n\t "}, 400, "invalid_input", "empty"),
        ({"text": "!!! ??? ..."}, 400, "invalid_input", "speakable"),
        ({"text": "word " * 1001}, 413, "input_too_large", "5000"),
        ({"text": SHORT, "voice": "nobody"}, 400, "invalid_input", "hibari"),
        ({"text": SHORT, "voice": "hibari", "speed": 4.5}, 422, "invalid_input", "speed"),
        ({"text": SHORT, "voice": "hibari", "speed": 0}, 422, "invalid_input", "speed"),
        ({"text": SHORT, "voice": "hibari", "format": "ogg"}, 422, "invalid_input", "format"),
        ({"text": SHORT, "voice": "hibari", "pitch": 2}, 422, "invalid_input", "pitch"),
        ({"voice": "hibari"}, 422, "invalid_input", "text"),
    ],
)
@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_bad_requests_are_refused_with_the_error_body(api, body, status, code, says, fmt):
    r = api.post("/tts", json={"format": fmt, **body})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error"} and r.json()["error"]["code"] == code
    assert says in r.json()["error"]["message"]


def test_a_format_this_server_cannot_encode_is_refused_by_name(api, monkeypatch):
    # as with a libav built without its AAC encoder
    monkeypatch.setattr(encoding, "encoders", lambda: frozenset({"libmp3lame", "libopus", "flac"}))
    r = api.post("/v1/audio/speech", json={"model": "tts-1", "voice": "hibari", "input": SHORT, "response_format": "aac"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_format"
    assert "cannot encode aac" in r.json()["error"]["message"] and "mp3" in r.json()["error"]["message"]


def test_the_length_limit_is_a_setting(api, env):
    env("MEDIAFLOW_TTS_MAX_CHARS", "40")
    r = api.post("/v1/audio/speech", json={"model": "tts-1", "voice": "hibari", "input": "x" * 41})
    assert r.status_code == 413 and "limit is 40" in r.json()["error"]["message"]
    assert api.post("/tts", json={"text": "x" * 40 + " hello", "voice": "hibari"}).status_code == 413
    assert api.post("/tts", json={"text": "Hello there.", "voice": "hibari"}).status_code == 200


def test_speech_needs_the_api_key_when_one_is_set(base_url, api, env):
    env("MEDIAFLOW_API_KEY", "s3cret-key")
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.audio.speech.create(model="tts-1", voice="hibari", input=SHORT)
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="s3cret-key", max_retries=0) as right:
        assert len(right.audio.speech.create(model="tts-1", voice="hibari", input=SHORT).content) > 1000
    assert api.post("/tts", json={"text": SHORT, "voice": "hibari"}).status_code == 401
    assert api.get("/tts/voices").status_code == 200  # listing stays public


# -- voices ----------------------------------------------------------------------------------------
def test_voices_are_listed_with_rate_licence_size_and_speed(api):
    for path in ("/tts/voices", "/v1/audio/voices"):
        listing = api.get(path).json()
        by_id = {v["id"]: v for v in listing["voices"]}
        assert {"teacher", "hibari"} <= set(by_id) and "student" not in by_id
        teacher, hibari = by_id["teacher"], by_id["hibari"]
        assert listing["default"] == "teacher" and teacher["default"] and not hibari["default"]
        assert teacher["sample_rate"] == hibari["sample_rate"] == 24_000
        assert teacher["parameters"] > 80e6 > 7e6 > hibari["parameters"]
        assert "Apache-2.0" in teacher["license"] and hibari["rtf"] < teacher["rtf"]
        assert "reference machine" in teacher["speed_measured"]  # not measured by this server
        assert listing["openai_voices"]["alloy"] == "teacher" and "alloy" in teacher["openai_names"]
        assert listing["openai_voices"]["echo"] == "kokoro-michael"
        assert listing["openai_voices"]["fable"] == "kokoro-emma"
    everything = api.get("/tts/voices", params={"all": "true"}).json()["voices"]
    student = next(v for v in everything if v["id"] == "student")
    assert not student["available"] and "checkpoint" in student["install"]


def test_the_default_voice_is_the_student_once_its_checkpoint_exists(api, env, tmp_path):
    checkpoint = tmp_path / "student.pt"
    checkpoint.write_bytes(b"not loaded by this test")
    env("MEDIAFLOW_TTS_STUDENT", str(checkpoint))
    listing = api.get("/v1/audio/voices").json()
    assert listing["default"] == "student" and listing["openai_voices"]["nova"] == "student"
    env("MEDIAFLOW_TTS_DEFAULT_VOICE", "hibari")  # an explicit setting wins
    assert api.get("/tts/voices").json()["default"] == "hibari"
    r = api.post("/tts", json={"text": SHORT, "format": "pcm"})
    assert r.status_code == 200 and r.headers["x-voice"] == "hibari"


def test_openapi_documents_the_speech_endpoints(api):
    spec = api.get("/openapi.json").json()
    for path in ("/tts", "/v1/audio/speech", "/tts/voices", "/v1/audio/voices"):
        assert path in spec["paths"]
    assert "audio/mpeg" in spec["paths"]["/tts"]["post"]["responses"]["200"]["content"]
