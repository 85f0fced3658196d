"""Speech probabilities: Silero VAD (the ONNX model faster-whisper bundles), one value per 32 ms frame.

Transcription already runs this VAD over the whole episode (faster-whisper's `vad_filter`), and the
speaker step needs the same probabilities. `recording()` keeps what faster-whisper computed, on the
thread that asks, without changing what it does with them (the transcript is the same to the bit);
a `SpeechTrack` places them on the episode's frame grid and is stored with the episode, so the
speaker step reads them instead of running the VAD a second time (~11 CPU s per hour of audio).
"""

from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from mediaflow.audio import SAMPLE_RATE, atomic_write_bytes

FRAME = 512  # samples per probability at 16 kHz


def model():
    from faster_whisper.vad import get_vad_model

    return get_vad_model()


def probabilities(audio: np.ndarray) -> np.ndarray:
    """One speech probability per `FRAME` samples of `audio` (its length a multiple of `FRAME`)."""
    return np.asarray(model()(audio), np.float32).reshape(-1)


class _Tap:
    """Stands in for the VAD's onnxruntime session: runs it, and hands a copy of each answer to the
    thread that is recording (faster-whisper computes the probabilities inside its transcribe call)."""

    def __init__(self, session):
        self.session = session
        self.local = threading.local()

    def run(self, *args, **kwargs):
        out = self.session.run(*args, **kwargs)
        seen = getattr(self.local, "seen", None)
        if seen is not None:
            seen.append(np.asarray(out[0], np.float32).reshape(-1))
        return out

    def __getattr__(self, name):
        return getattr(self.session, name)


_tap_lock = threading.Lock()


@contextmanager
def recording() -> Iterator[list[np.ndarray]]:
    """Collect the probabilities the VAD computes on this thread inside the block, in order (a list
    of arrays; joined, one per frame of the audio it was given, padded to whole frames)."""
    vad = model()
    with _tap_lock:
        if not isinstance(vad.session, _Tap):
            vad.session = _Tap(vad.session)
        tap = vad.session
    seen: list[np.ndarray] = []
    tap.local.seen = seen
    try:
        yield seen
    finally:
        tap.local.seen = None


class SpeechTrack:
    """An episode's speech probabilities on its own frame grid (frame j: samples 512j to 512j + 512),
    put together from passes over overlapping buffers (the transcriber's windows with their carry)."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._next = 0  # first frame not yet filled

    def add(self, probs: np.ndarray, start: int, keep: int) -> None:
        """`probs` were computed over audio starting at sample `start`; the samples
        [start, start + keep) are this pass's to give (the rest is given by the next one)."""
        end = start + keep
        first, last = self._next, -(-end // FRAME)
        if last <= first:
            return
        # each grid frame takes the pass's frame under its middle sample
        mid = np.arange(first, last) * FRAME + FRAME // 2
        k = np.clip((mid - start) // FRAME, 0, max(len(probs) - 1, 0))
        self._parts.append(probs[k] if len(probs) else np.zeros(last - first, np.float32))
        self._next = last

    def array(self) -> np.ndarray:
        return np.concatenate(self._parts).astype(np.float32) if self._parts else np.zeros(0, np.float32)


def save(path: str | Path, probs: np.ndarray) -> Path:
    """Write probabilities as float16 .npy (~225 kB per hour), atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(probs, np.float16))
    return atomic_write_bytes(path, buf.getvalue())


def load(path: str | Path, duration_s: float) -> np.ndarray | None:
    """The stored probabilities, or None when missing, unreadable or not `duration_s` long (± 1 s)."""
    try:
        probs = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError):
        return None
    if probs.ndim != 1 or abs(len(probs) * FRAME / SAMPLE_RATE - duration_s) > 1.0:
        return None
    return probs.astype(np.float32)
