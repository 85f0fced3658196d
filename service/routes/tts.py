"""Speech: `POST /tts`, the OpenAI-compatible `POST /v1/audio/speech` and `GET /v1/models`, and the voice listings.

Everything that can be wrong with a request (empty or over-long text, nothing speakable, too many words
or seconds of audio once written out, unknown voice, voice not installed, speed, format, a full queue) is
found before the response starts, and the first sentence is synthesised before it starts too, so failures
are JSON errors with a status code, never a broken stream. After that, audio leaves sentence by sentence
(chunked): pcm and wav are written here (WAV with "unknown length" sizes), mp3, Ogg Opus, AAC (ADTS) and
FLAC are encoded in this process (`mediaflow.tts.encoding.Encoder`), each piece while the next is made.
`POST /tts/captioned` speaks the same body whole and answers JSON: the file, and each word's time.

Each input is checked once: the speed by the request schemas (a 422), the text (empty, over
`tts_max_chars`) and the format (this ffmpeg can encode it) by `_speak` on the event loop, the voice name by
the registry (`voices.resolve_voice`: the same rules for every route); the voice is then handed the checked
text through `Voice.say`, which bounds the output (words written out, `tts_max_audio_s` seconds: a 413).

Synthesis runs in worker threads, one sentence per call, behind `SynthesisSlots` (one per app, shared
with narration): `tts_concurrency` calls at once (1 by default), so two long texts take turns sentence by
sentence instead of fighting for the cores, and waiting for a turn holds no thread, so the event loop and
the threadpool stay free for `/health` and the rest of the API. At most `tts_queue` requests wait beyond
those; one more, or one whose first turn does not come within `tts_queue_wait_s`, is refused with 429
and `Retry-After`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import threading
import time
from typing import AsyncIterator, Callable, Iterator

import anyio
import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from mediaflow.config import Settings
from mediaflow.errors import InvalidInput, NotFound, Overloaded, excerpt
from mediaflow.tts import encoding, voices
from mediaflow.tts.frontend import check_text
from service.deps import require_api_key, settings
from service.tts_schemas import (
    CaptionedSpeechOut, ModelList, ModelOut, OpenAISpeechIn, SpeechIn, VoiceList, VoiceOut, VoiceRef, WordOut,
)

log = logging.getLogger("mediaflow.service.tts")
router = APIRouter(tags=["speech"])

OPENAI_FORMATS = {"mp3": "mp3", "opus": "ogg-opus", "aac": "aac", "flac": "flac", "wav": "wav", "pcm": "pcm"}
# OpenAI's speech models: `/v1/audio/speech` accepts these (and any name); the voice chooses the engine.
OPENAI_SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
_STARTED = int(time.time())  # `created` of the listed models: when this server loaded its registry
_READ = 1 << 16

_AUDIO_RESPONSES = {
    200: {"content": {t: {} for t in ("audio/wav", "audio/mpeg", "audio/ogg", "audio/aac", "audio/flac", "audio/pcm")},
          "description": "The audio, chunked sentence by sentence when streamed."},
    413: {"description": "The text is over `tts_max_chars` characters, or, written out, over 1,500 words or "
                         "`tts_max_audio_s` seconds of audio at the speed asked; the message says which."},
    429: {"description": "Synthesis is full (`tts_concurrency` + `tts_queue` requests, or no turn within "
                         "`tts_queue_wait_s`): try again after `Retry-After` seconds.",
          "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}},
}


class SynthesisSlots:
    """Turns at synthesis for every request of one app (speech and narration alike).

    `limiter` lets `concurrency` synthesis calls run at once. A request is admitted (`admit`) while fewer
    than `concurrency + queue` are in hand, else refused; its first turn (`first_turn`) must come within
    `wait_s`, else it is refused too. Both refusals are `Overloaded` (429, `Retry-After`).
    """

    def __init__(self, concurrency: int, queue: int, wait_s: float):
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.capacity = concurrency + queue
        self.wait_s = wait_s
        self.in_hand = 0
        self._lock = threading.Lock()  # `release` runs where a request's audio iterator ends: any thread

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.wait_s))

    def admit(self) -> Callable[[], None]:
        """Count one more request in hand, or Overloaded; returns its release (safe to call twice)."""
        with self._lock:
            if self.in_hand >= self.capacity:
                raise Overloaded(f"speech is busy: {self.in_hand} requests are being spoken or waiting (at most "
                                 f"{self.capacity}); try again in {self.retry_after} s", self.retry_after)
            self.in_hand += 1
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if not done.is_set():
                    done.set()
                    self.in_hand -= 1

        return release

    async def first_turn(self, fn: Callable, *args):
        """`fn(*args)` in a worker thread on a turn that comes within `wait_s`, else Overloaded."""
        turn = False
        with anyio.move_on_after(self.wait_s):
            await self.limiter.acquire()  # either takes a token or raises: nothing to hand back when cut short
            turn = True
        if not turn:
            raise Overloaded(f"speech is busy: no turn came within {self.wait_s:g} s; try again in "
                             f"{self.retry_after} s", self.retry_after)
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        finally:
            self.limiter.release()

    async def turn(self, fn: Callable, *args):
        """`fn(*args)` in a worker thread when a turn is free (a request already under way waits its turn)."""
        async with self.limiter:
            return await anyio.to_thread.run_sync(fn, *args)

    async def run(self, fn: Callable, *args):
        """One whole job (a narration) as one admitted request with one bounded turn."""
        release = self.admit()
        try:
            return await self.first_turn(fn, *args)
        finally:
            release()


async def synthesis_slots(request: Request, s: Settings = Depends(settings)) -> SynthesisSlots:
    """One `SynthesisSlots` per app (made on its own event loop: an app per test server, each with its
    loop), made anew if the settings it was made from change."""
    state, key = request.app.state, (s.tts_concurrency, s.tts_queue, s.tts_queue_wait_s)
    if getattr(state, "tts_slots", (None, None))[0] != key:
        state.tts_slots = (key, SynthesisSlots(*key))
    return state.tts_slots[1]


# -- endpoints -----------------------------------------------------------------------------------
@router.post("/tts", response_class=Response, responses=_AUDIO_RESPONSES, dependencies=[Depends(require_api_key)])
async def tts(body: SpeechIn, s: Settings = Depends(settings), slots: SynthesisSlots = Depends(synthesis_slots)):
    """Text to speech in wav, mp3, ogg-opus, flac, aac or pcm, sentence by sentence unless `stream` is false."""
    return await _speak(body.text, voices.resolve_voice(body.voice, s), body.speed, body.format, body.stream,
                        s, slots)


@router.post("/tts/captioned", response_model=CaptionedSpeechOut, dependencies=[Depends(require_api_key)],
             responses={k: v for k, v in _AUDIO_RESPONSES.items() if k != 200})
async def tts_captioned(body: SpeechIn, s: Settings = Depends(settings),
                        slots: SynthesisSlots = Depends(synthesis_slots)) -> CaptionedSpeechOut:
    """The `/tts` body's speech as one finished file (base64) with each word's start and end in seconds, from
    the durations the voice itself chose (the student and the Kokoro voices; another voice is a 400).
    `stream` is ignored: the answer is one JSON document. The same key, limits and 413/429 as `/tts`."""
    voice_id = voices.resolve_voice(body.voice, s)
    _check(body.text, body.format, s)
    captioned = await slots.run(_captioned, voice_id, body.text, body.speed, s)
    data = await anyio.to_thread.run_sync(encoding.encode_whole, captioned.audio, captioned.sample_rate, body.format)
    return CaptionedSpeechOut(
        audio=base64.b64encode(data).decode("ascii"), format=body.format,
        media_type=encoding.media_type(body.format, captioned.sample_rate), sample_rate=captioned.sample_rate,
        voice=voice_id, duration=round(captioned.seconds, 3), words=[WordOut(**w.to_dict()) for w in captioned.words],
    )


@router.post("/v1/audio/speech", response_class=Response, responses=_AUDIO_RESPONSES,
             dependencies=[Depends(require_api_key)])
async def openai_speech(body: OpenAISpeechIn, s: Settings = Depends(settings),
                        slots: SynthesisSlots = Depends(synthesis_slots)):
    """OpenAI's `audio.speech.create`: point the `openai` client's `base_url` at `<server>/v1`. Always streamed."""
    if body.stream_format != "audio":
        raise InvalidInput("stream_format 'sse' is not supported here; use 'audio' (the default)")
    name = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
    return await _speak(body.input, voices.resolve_voice(name, s), body.speed, OPENAI_FORMATS[body.response_format],
                        True, s, slots)


@router.get("/v1/models", response_model=ModelList)
def list_models(s: Settings = Depends(settings)) -> ModelList:
    """OpenAI's `models.list()`: the model names `/v1/audio/speech` takes, OpenAI's and our voices' engines."""
    return ModelList(data=models(s))


@router.get("/v1/models/{model_id}", response_model=ModelOut)
def get_model(model_id: str, s: Settings = Depends(settings)) -> ModelOut:
    """OpenAI's `models.retrieve(id)`."""
    for m in models(s):
        if m.id == model_id:
            return m
    raise NotFound(f"no model {excerpt(model_id)}; GET /v1/models lists them")


def models(s: Settings) -> list[ModelOut]:
    """Every model this server lists, in OpenAI's shape. A new kind (transcription) is one more list here."""
    from mediaflow import stt

    return speech_models(s) + [ModelOut(created=_STARTED, voices=[], **m) for m in stt.listed_models(s)]


def speech_models(s: Settings) -> list[ModelOut]:
    """OpenAI's speech model names, then one per engine of the installed voices. The `model` of a speech
    request selects nothing here, so any of these (or any name) works; the voice chooses the engine."""
    default = voices.default_voice_id(s)
    listed = [ModelOut(id=name, created=_STARTED, kind="speech", voices=[default],
                       description=f"OpenAI's name, accepted for compatibility: speaks with the voice asked "
                                   f"(OpenAI's voice names map to ours; none: {default})")
              for name in OPENAI_SPEECH_MODELS]
    engines: dict[str, ModelOut] = {}
    for v in voices.list_voices():
        model_id = v.engine.split(" (")[0].strip().lower().replace(" ", "-")
        m = engines.setdefault(model_id, ModelOut(id=model_id, created=_STARTED, kind="speech", voices=[],
                                                  description=v.engine))
        m.voices.append(v.id)
    return listed + list(engines.values())


@router.get("/tts/voices", response_model=VoiceList)
@router.get("/v1/audio/voices", response_model=VoiceList)
def list_voices(
    include_unavailable: bool = Query(False, alias="all", description="Also list voices not installed here."),
    s: Settings = Depends(settings),
) -> VoiceList:
    """The voices: sample rate, licence, size, parameter count, reference-machine speed, and their OpenAI names."""
    default = voices.default_voice_id(s)
    mapping = voices.openai_voices(s)
    names: dict[str, list[str]] = {}
    for name, target in mapping.items():
        names.setdefault(target, []).append(name)
    listed = [VoiceOut(**v.to_dict(), default=v.id == default, openai_names=names.get(v.id, []))
              for v in voices.list_voices(include_unavailable=include_unavailable)]
    return VoiceList(voices=listed, default=default, openai_voices=mapping)


# -- synthesis -----------------------------------------------------------------------------------
async def _speak(text: str, voice_id: str, speed: float, fmt: str, stream: bool, s: Settings,
                 slots: SynthesisSlots) -> Response:
    _check(text, fmt, s)
    release = slots.admit()
    try:
        # loading the voice (once), phonemising every sentence (where "nothing speakable" and the bounds on
        # output show up) and the first sentence: one turn, which must come within tts_queue_wait_s
        voice, chunks, first = await slots.first_turn(_open, voice_id, text, speed, stream, s, release)
    except BaseException:
        release()
        raise
    sr = voice.sample_rate
    headers = {"X-Voice": voice_id, "X-Sample-Rate": str(sr), "Cache-Control": "no-store"}
    media_type = encoding.media_type(fmt, sr)
    if not stream:
        if fmt in ("pcm", "wav"):
            parts = [first]
            try:
                while (audio := await _next(chunks, slots)) is not None:
                    parts.append(audio)
            finally:
                _close(chunks)
            data = encoding.encode_whole(np.concatenate(parts), sr, fmt)
        else:  # encoded piece by piece while the next is made; the file finished with exact lengths
            data = b"".join([part async for part in _encoded_stream(first, chunks, sr, fmt, slots, whole=True)])
        return Response(data, media_type=media_type, headers=headers)
    body = _raw_stream(first, chunks, sr, fmt, slots) if fmt in ("pcm", "wav") else \
        _encoded_stream(first, chunks, sr, fmt, slots)
    return StreamingResponse(body, media_type=media_type, headers=headers)


def _check(text: str, fmt: str, s: Settings) -> None:
    # cheap checks on the event loop first, so a bad request never waits behind a long synthesis; the
    # speed was checked by the request schema, the voice's name by `resolve_voice`
    check_text(text, s.tts_max_chars)
    encoding.check_format(fmt)


def _captioned(voice_id: str, text: str, speed: float, s: Settings):
    """The voice (loaded once) speaks the checked text whole, with word times, counted for /metrics."""
    from service.metrics import AUDIO_OUT, SYNTHESIS

    voice = voices.get_voice(voice_id, threads=s.tts_threads)
    t0 = time.perf_counter()
    captioned = voice.say_captioned(text, speed, s.tts_max_audio_s)
    SYNTHESIS.labels(voice_id).inc(time.perf_counter() - t0)
    AUDIO_OUT.labels(voice_id).inc(captioned.seconds)
    return captioned


def _open(voice_id: str, text: str, speed: float, stream: bool, s: Settings,
          release: Callable[[], None]) -> tuple[voices.Voice, Iterator[np.ndarray], np.ndarray]:
    """The voice, its audio iterator (which releases the request's slot when it ends, is closed or is
    collected) and the first piece's audio, for text and speed `_speak` and the schema have checked.
    Streamed, a voice's early pieces of a sentence; whole, one piece per sentence (fewer model calls)."""
    voice = voices.get_voice(voice_id, threads=s.tts_threads)
    chunks = _metered(voice_id, voice.sample_rate, voice.say(text, speed, s.tts_max_audio_s, pieces=stream),
                      release)
    return voice, chunks, next(chunks)


def _metered(voice_id: str, sr: int, chunks: Iterator[np.ndarray],
             release: Callable[[], None]) -> Iterator[np.ndarray]:
    """Count synthesis seconds and audio seconds per voice for /metrics; release the slot at the end."""
    from service.metrics import AUDIO_OUT, SYNTHESIS

    try:
        while True:
            t0 = time.perf_counter()
            audio = next(chunks, None)
            SYNTHESIS.labels(voice_id).inc(time.perf_counter() - t0)
            if audio is None:
                return
            AUDIO_OUT.labels(voice_id).inc(len(audio) / sr)
            yield audio
    finally:
        release()


async def _next(chunks: Iterator[np.ndarray], slots: SynthesisSlots) -> np.ndarray | None:
    """The next sentence's audio (None at the end), made in a worker thread on the request's next turn."""
    return await slots.turn(next, chunks, None)


def _close(chunks: Iterator[np.ndarray]) -> None:
    try:
        getattr(chunks, "close", lambda: None)()
    except ValueError:  # still running in a worker thread; it stops when the generator is collected
        pass


async def _raw_stream(
    first: np.ndarray, chunks: Iterator[np.ndarray], sr: int, fmt: str, slots: SynthesisSlots,
) -> AsyncIterator[bytes]:
    try:
        if fmt == "wav":
            yield encoding.wav_header(sr)
        audio = first
        while audio is not None:
            yield encoding.pcm16(audio)
            audio = await _next(chunks, slots)
    finally:
        _close(chunks)  # a dropped client stops the synthesis at the next sentence


async def _encoded_stream(
    first: np.ndarray, chunks: Iterator[np.ndarray], sr: int, fmt: str, slots: SynthesisSlots, whole: bool = False,
) -> AsyncIterator[bytes]:
    """Each piece of audio is encoded in a worker thread (in-process, `encoding.Encoder`) while the next
    piece is synthesised on the request's next turn, so the encoder's time hides behind the model's and
    only the last piece's shows. With `whole`, one finished file comes out at the end."""
    encoder = await anyio.to_thread.run_sync(encoding.Encoder, fmt, sr, whole)
    upcoming: asyncio.Future | None = None
    try:
        audio = first
        while audio is not None:
            upcoming = asyncio.ensure_future(_next(chunks, slots))
            data = await anyio.to_thread.run_sync(encoder.encode, audio)
            if data:
                yield data
            audio = await upcoming
            upcoming = None
        yield await anyio.to_thread.run_sync(encoder.finish)
    finally:
        if upcoming is not None:  # the client left, or the encoder failed, while a piece was being made
            upcoming.cancel()  # takes effect once the piece in hand is done (threads are not interrupted)
            upcoming.add_done_callback(lambda t: t.cancelled() or t.exception())
        _close(chunks)  # a dropped client stops the synthesis at the next piece
        encoder.close()
