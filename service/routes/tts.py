"""Speech: `POST /tts`, the OpenAI-compatible `POST /v1/audio/speech`, and the voice listings.

Everything that can be wrong with a request (empty or over-long text, nothing speakable, unknown
voice, voice not installed, speed, format) is found before the response starts, and the first
sentence is synthesised before it starts too, so failures are JSON errors with a status code, never a
broken stream. After that, audio leaves sentence by sentence (chunked): pcm and wav are written here
(WAV with "unknown length" sizes), mp3, Ogg Opus, AAC (ADTS) and FLAC through one ffmpeg pipe per
request (`mediaflow.tts.encoding`).

Each input is checked once: the speed by the request schemas (a 422), the text (empty, over
`tts_max_chars`) and the format (this ffmpeg can encode it) by `_speak` on the event loop, the voice by
the registry; the voice is then handed the checked text through `Voice.speak`, which checks nothing again.

Synthesis runs in worker threads, one sentence per call, behind a limiter of `tts_concurrency`
calls (1 by default) shared by all requests: two long texts take turns sentence by sentence
instead of fighting for the cores, and waiting for a turn holds no thread, so the event loop and
the threadpool stay free for `/health` and the rest of the API.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Iterator

import anyio
import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from mediaflow.config import Settings
from mediaflow.errors import InvalidInput
from mediaflow.tts import encoding, voices
from mediaflow.tts.frontend import check_text
from service.deps import require_api_key, settings
from service.tts_schemas import OpenAISpeechIn, SpeechIn, VoiceList, VoiceOut, VoiceRef

log = logging.getLogger("mediaflow.service.tts")
router = APIRouter(tags=["speech"])

DEFAULT = "default"  # in OPENAI_VOICES: the configured default voice (the teacher now, the student later)
# OpenAI's voices by their published character: the female and neutral ones speak with our default
# (Kokoro af_heart, or its student), the male ones with Kokoro am_michael, British `fable` with bf_emma.
OPENAI_VOICES = {
    **dict.fromkeys(("alloy", "coral", "nova", "sage", "shimmer", "marin"), DEFAULT),
    **dict.fromkeys(("ash", "ballad", "cedar", "echo", "onyx", "verse"), "kokoro-michael"),
    "fable": "kokoro-emma",
}
OPENAI_FORMATS = {"mp3": "mp3", "opus": "ogg-opus", "aac": "aac", "flac": "flac", "wav": "wav", "pcm": "pcm"}
_READ = 1 << 16

_AUDIO_RESPONSES = {200: {"content": {t: {} for t in (
    "audio/wav", "audio/mpeg", "audio/ogg", "audio/aac", "audio/flac", "audio/pcm")},
    "description": "The audio, chunked sentence by sentence when streamed."}}


async def synthesis_limiter(request: Request, s: Settings = Depends(settings)) -> anyio.CapacityLimiter:
    """One limiter per app, made on its own event loop (an app per test server, each with its loop)."""
    state = request.app.state
    if getattr(state, "tts_limiter", None) is None:
        state.tts_limiter = anyio.CapacityLimiter(s.tts_concurrency)
    return state.tts_limiter


# -- endpoints -----------------------------------------------------------------------------------
@router.post("/tts", response_class=Response, responses=_AUDIO_RESPONSES, dependencies=[Depends(require_api_key)])
async def tts(
    body: SpeechIn, s: Settings = Depends(settings), limiter: anyio.CapacityLimiter = Depends(synthesis_limiter),
):
    """Text to speech in wav, mp3, ogg-opus, flac, aac or pcm, sentence by sentence unless `stream` is false."""
    voice_id = body.voice if body.voice is not None else voices.default_voice_id(s)
    return await _speak(body.text, voice_id, body.speed, body.format, body.stream, s, limiter)


@router.post("/v1/audio/speech", response_class=Response, responses=_AUDIO_RESPONSES,
             dependencies=[Depends(require_api_key)])
async def openai_speech(
    body: OpenAISpeechIn, s: Settings = Depends(settings),
    limiter: anyio.CapacityLimiter = Depends(synthesis_limiter),
):
    """OpenAI's `audio.speech.create`: point the `openai` client's `base_url` at `<server>/v1`. Always streamed."""
    if body.stream_format != "audio":
        raise InvalidInput("stream_format 'sse' is not supported here; use 'audio' (the default)")
    return await _speak(body.input, _openai_voice(body.voice, s), body.speed, OPENAI_FORMATS[body.response_format],
                        True, s, limiter)


@router.get("/tts/voices", response_model=VoiceList)
@router.get("/v1/audio/voices", response_model=VoiceList)
def list_voices(
    include_unavailable: bool = Query(False, alias="all", description="Also list voices not installed here."),
    s: Settings = Depends(settings),
) -> VoiceList:
    """The voices: sample rate, licence, size, parameter count, reference-machine speed, and their OpenAI names."""
    default = voices.default_voice_id(s)
    names: dict[str, list[str]] = {}
    mapping = {name: default if target == DEFAULT else target for name, target in OPENAI_VOICES.items()}
    for name, target in mapping.items():
        names.setdefault(target, []).append(name)
    listed = [VoiceOut(**v.to_dict(), default=v.id == default, openai_names=names.get(v.id, []))
              for v in voices.list_voices(include_unavailable=include_unavailable)]
    return VoiceList(voices=listed, default=default, openai_voices=mapping)


def _openai_voice(voice: str | VoiceRef | None, s: Settings) -> str:
    """Our voice id for what an OpenAI client sent: one of our ids, or an OpenAI name mapped to one."""
    if voice is None:
        return voices.default_voice_id(s)
    name = (voice.id if isinstance(voice, VoiceRef) else voice).strip().lower()
    target = OPENAI_VOICES.get(name, name)  # no OpenAI name is one of our ids, so the order does not matter
    target = voices.default_voice_id(s) if target == DEFAULT else target
    try:
        voices.voice_info(target)
    except InvalidInput as exc:
        raise InvalidInput(f"{exc}; or one of OpenAI's names: {', '.join(OPENAI_VOICES)}") from None
    return target


# -- synthesis -----------------------------------------------------------------------------------
async def _speak(
    text: str, voice_id: str, speed: float, fmt: str, stream: bool, s: Settings, limiter: anyio.CapacityLimiter,
) -> Response:
    # cheap checks on the event loop first, so a bad request never waits behind a long synthesis; the
    # speed was checked by the request schema
    check_text(text, s.tts_max_chars)
    encoding.check_format(fmt)
    voices.voice_info(voice_id)
    # loading the voice (once) and phonemising every sentence is where "nothing speakable" shows up
    voice, chunks = await anyio.to_thread.run_sync(_open, voice_id, text, speed, s.tts_threads, limiter=limiter)
    first = await _next(chunks, limiter)
    sr = voice.sample_rate
    headers = {"X-Voice": voice_id, "X-Sample-Rate": str(sr), "Cache-Control": "no-store"}
    media_type = encoding.media_type(fmt, sr)
    if not stream:
        parts = [first]
        while (audio := await _next(chunks, limiter)) is not None:
            parts.append(audio)
        data = await anyio.to_thread.run_sync(encoding.encode_whole, np.concatenate(parts), sr, fmt)
        return Response(data, media_type=media_type, headers=headers)
    body = _raw_stream(first, chunks, sr, fmt, limiter) if fmt in ("pcm", "wav") else \
        _ffmpeg_stream(first, chunks, sr, fmt, limiter)
    return StreamingResponse(body, media_type=media_type, headers=headers)


def _open(voice_id: str, text: str, speed: float, threads: int) -> tuple[voices.Voice, Iterator[np.ndarray]]:
    """The voice and its audio iterator for text and speed `_speak` and the schema have checked."""
    voice = voices.get_voice(voice_id, threads=threads)
    return voice, _metered(voice_id, voice.sample_rate, voice.speak(text, speed))


def _metered(voice_id: str, sr: int, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Count synthesis seconds and audio seconds per voice for /metrics."""
    import time

    from service.metrics import AUDIO_OUT, SYNTHESIS

    while True:
        t0 = time.perf_counter()
        audio = next(chunks, None)
        SYNTHESIS.labels(voice_id).inc(time.perf_counter() - t0)
        if audio is None:
            return
        AUDIO_OUT.labels(voice_id).inc(len(audio) / sr)
        yield audio


async def _next(chunks: Iterator[np.ndarray], limiter: anyio.CapacityLimiter) -> np.ndarray | None:
    """The next sentence's audio (None at the end), made in a worker thread when the limiter allows."""
    return await anyio.to_thread.run_sync(next, chunks, None, limiter=limiter)


def _close(chunks: Iterator[np.ndarray]) -> None:
    try:
        getattr(chunks, "close", lambda: None)()
    except ValueError:  # still running in a worker thread; it stops when the generator is collected
        pass


async def _raw_stream(
    first: np.ndarray, chunks: Iterator[np.ndarray], sr: int, fmt: str, limiter: anyio.CapacityLimiter,
) -> AsyncIterator[bytes]:
    try:
        if fmt == "wav":
            yield encoding.wav_header(sr)
        audio = first
        while audio is not None:
            yield encoding.pcm16(audio)
            audio = await _next(chunks, limiter)
    finally:
        _close(chunks)  # a dropped client stops the synthesis at the next sentence


async def _ffmpeg_stream(
    first: np.ndarray, chunks: Iterator[np.ndarray], sr: int, fmt: str, limiter: anyio.CapacityLimiter,
) -> AsyncIterator[bytes]:
    """Sentences go into ffmpeg's stdin from one task while this generator sends what comes out of its
    stdout, so the next sentence is synthesised while the previous one is being encoded and sent."""
    proc = await asyncio.create_subprocess_exec(
        *encoding.ffmpeg_command(fmt, sr), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def feed() -> None:
        try:
            audio = first
            while audio is not None:
                proc.stdin.write(encoding.pcm16(audio))
                await proc.stdin.drain()
                audio = await _next(chunks, limiter)
        finally:
            proc.stdin.close()
            _close(chunks)

    producer = asyncio.create_task(feed())
    # when the client leaves, nobody awaits the producer: retrieve its error so asyncio does not log it
    producer.add_done_callback(lambda t: t.cancelled() or t.exception())
    try:
        while data := await proc.stdout.read(_READ):
            yield data
        await producer  # a synthesis error surfaces here and the stream ends broken, not short but "complete"
        if (code := await proc.wait()) != 0:
            raise RuntimeError(f"ffmpeg exited with {code} while encoding {fmt}")
    finally:
        producer.cancel()  # takes effect once the sentence in hand is done (threads are not interrupted)
        if proc.returncode is None:
            proc.kill()
            with anyio.CancelScope(shield=True):
                await proc.wait()
