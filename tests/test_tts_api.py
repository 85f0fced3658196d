"""The speech endpoints end to end: a real uvicorn on loopback, real voices, ffmpeg to check the audio.

Most tests speak with `hibari` (fast, and repeatable: a fixed seed per request), so its output can be
compared with what the library makes; the teacher speaks once, for streaming, `/health` under load
and Whisper.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import openai
import pytest

from conftest import running_server, wer
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
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAFLOW_DATA_DIR", str(tmp_path_factory.mktemp("tts-data")))
        mp.setenv("MEDIAFLOW_TTS_STUDENT", str(tmp_path_factory.mktemp("no-student") / "student.pt"))
        mp.delenv("MEDIAFLOW_API_KEY", raising=False)
        config.get_settings.cache_clear()
        with running_server() as url:
            yield url
    config.get_settings.cache_clear()


@pytest.fixture
def api(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


@pytest.fixture
def oai(base_url):
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture
def env(monkeypatch):
    """Change a setting for one test: set the variable, and the server reads it on the next request."""
    def set_env(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        config.get_settings.cache_clear()
    yield set_env
    monkeypatch.undo()
    config.get_settings.cache_clear()


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
    assert 0 < metrics['mediaflow_synthesis_seconds_total{voice="hibari"}'] < audio_s


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
        oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, speed=4.0)
    with pytest.raises(openai.BadRequestError, match="sse"):
        oai.audio.speech.create(model="tts-1", voice="hibari", input=SHORT, stream_format="sse")


# -- streaming -------------------------------------------------------------------------------------
@dataclass
class Timed:
    """A streamed response: when each chunk arrived and how big it was, and the bytes."""

    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (seconds after the request, bytes)
    data: bytearray = field(default_factory=bytearray)
    headers: dict = field(default_factory=dict)

    def read(self, chunks, started: float) -> Timed:
        for chunk in chunks:
            self.arrivals.append((time.perf_counter() - started, len(chunk)))
            self.data += chunk
        return self

    @property
    def first(self) -> float:
        return next(t for t, n in self.arrivals if n)

    @property
    def total(self) -> float:
        return self.arrivals[-1][0]


def test_mp3_leaves_sentence_by_sentence_through_the_encoder(api, tmp_path):
    text = " ".join(["The first point is short.", "The second point takes a little longer to make.",
                     "The third point is about coffee.", "The fourth point is about tea.", "And that is all."])
    api.post("/tts", json={"text": "Ready.", "voice": "piper-joe", "format": "mp3"})  # voice and phonemiser loaded
    started = time.perf_counter()
    with api.stream("POST", "/tts", json={"text": text, "voice": "piper-joe", "format": "mp3"}) as r:
        assert r.status_code == 200
        got = Timed().read(r.iter_raw(), started)
    assert got.first < 0.6 * got.total, (got.first, got.total)
    assert len({round(t, 1) for t, _ in got.arrivals}) >= 3  # audio arrived at several moments, not in one burst
    assert len(_decode(bytes(got.data), "mp3", tmp_path)) / 24_000 > 5


@pytest.fixture(scope="module")
def teacher_run(base_url):
    """The teacher speaks three sentences through the OpenAI client (OpenAI's `alloy` is our default,
    the teacher) while another client polls `/health`."""
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=300)
    # voice and phonemiser loaded before the clock starts: the timing is synthesis only
    client.audio.speech.create(model="tts-1", voice="teacher", input="Ready.", response_format="pcm")
    got, health = Timed(), []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as h:
            while not done.is_set():
                t = time.perf_counter()
                health.append((h.get("/health").status_code, time.perf_counter() - t))
                time.sleep(0.2)

    poller = threading.Thread(target=poll)
    started = time.perf_counter()
    poller.start()
    try:
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=TEACHER_TEXT, response_format="pcm",
        ) as resp:
            got.headers = dict(resp.headers)
            got.read(resp.iter_bytes(), started)
    finally:
        done.set()
        poller.join()
        client.close()
    return got, health


def test_the_first_sentence_is_heard_before_the_last_is_made(teacher_run):
    got, _ = teacher_run
    assert got.headers["x-voice"] == "teacher"
    # three sentences of about the same length: the first is out about a third of the way through
    assert got.first < 0.6 * got.total, (got.first, got.total)
    assert len(got.data) / 2 / 24_000 > 3


def test_health_answers_quickly_while_the_teacher_speaks(teacher_run):
    _, health = teacher_run
    assert len(health) >= 3
    assert all(code == 200 for code, _ in health)
    assert max(s for _, s in health) < 1.0, health


def test_whisper_hears_what_the_teacher_said_through_the_api(teacher_run, tmp_path):
    from mediaflow.asr import Transcriber

    got, _ = teacher_run
    path = tmp_path / "teacher.wav"
    path.write_bytes(encoding.wav_header(24_000) + bytes(got.data))
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
        ({"text": SHORT, "voice": "hibari", "speed": 2.5}, 422, "invalid_input", "speed"),
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


def test_a_format_this_ffmpeg_cannot_encode_is_refused_by_name(api, monkeypatch):
    # as on an ffmpeg built without its AAC encoder
    monkeypatch.setattr(encoding, "ffmpeg_encoders", lambda: frozenset({"libmp3lame", "libopus", "flac"}))
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
