"""The student voice: our model distilled from the teacher (`models/tts_student`; trained by `flows/distill.py`).

Listed when its checkpoint exists (`MEDIAFLOW_TTS_STUDENT`, else the shipped
`models/tts_student/student.pt`); from then on it is also the default voice, unless
`tts_default_voice` names another. The shared frontend turns text into phoneme ids; the network
turns those into audio on one of two runtimes:

- ONNX Runtime (`mediaflow.tts.student_onnx`), when the checkpoint's graphs lie beside it
  (`student.encoder.onnx`, `.decoder.onnx`, `.vocoder.onnx`, written by `python -m
  models.tts_student.export`) and were exported from this very checkpoint (its sha256 is in their
  metadata). PyTorch is never imported: this is how the shipped student is served.
- PyTorch (`models.tts_student.load_voice`) otherwise: a checkpoint just trained and not exported yet.

`MEDIAFLOW_TTS_STUDENT_RUNTIME` = `onnx` or `torch` forces one (default `auto`: as above).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from mediaflow.errors import DependencyMissing, ModelUnavailable
from mediaflow.tts.frontend import prepare
from mediaflow.tts.student_onnx import DEFAULT_VOICE
from mediaflow.tts.voices.base import NO_SPEED, Entry, ReferenceSpeed, Voice, VoiceInfo

log = logging.getLogger("mediaflow.tts.student")

STUDENT_ENV = "MEDIAFLOW_TTS_STUDENT"
RUNTIME_ENV = "MEDIAFLOW_TTS_STUDENT_RUNTIME"
GRAPHS = ("encoder", "decoder", "vocoder")  # models/tts_student/export.py writes `<stem>.<part>.onnx` beside it
SAMPLE_RATE = 24_000
PARAMETERS = 3_860_883  # of the shipped checkpoint (two voices); update with it
# bench/tts.py, 109 held-out sentences, 2 threads, nothing else running; the shipped checkpoint only
SPEED = ReferenceSpeed(rtf=0.0040, cpu_rtf=0.0056, first_audio_s=0.011, measured="2026-12-03, otherwise idle")


def shipped_checkpoint() -> Path:
    """models/tts_student/student.pt, found without importing the package (which imports PyTorch)."""
    spec = importlib.util.find_spec("models.tts_student")
    return Path(spec.origin).parent / "student.pt"


def student_checkpoint() -> Path:
    """Where the distilled student's checkpoint is looked for."""
    env = os.environ.get(STUDENT_ENV)
    return Path(env).expanduser() if env else shipped_checkpoint()


def onnx_graphs(checkpoint: Path) -> dict[str, Path]:
    """Where the ONNX graphs exported from `checkpoint` lie (they may not exist)."""
    return {part: checkpoint.with_name(f"{checkpoint.stem}.{part}.onnx") for part in GRAPHS}


def runtime(checkpoint: Path) -> str:
    """`onnx` or `torch`: what the voice will run `checkpoint` on (`RUNTIME_ENV`, else ONNX when its graphs exist)."""
    chosen = os.environ.get(RUNTIME_ENV, "auto").strip().lower() or "auto"
    if chosen not in ("auto", "onnx", "torch"):  # the server's setting, not the request's: not a 400
        raise ModelUnavailable(f"{RUNTIME_ENV}={chosen!r}: use auto, onnx or torch")
    if chosen == "auto":
        return "onnx" if all(p.is_file() for p in onnx_graphs(checkpoint).values()) else "torch"
    return chosen


@lru_cache(maxsize=4)
def _sha256(path: Path, stamp: tuple[int, int]) -> str:  # stamp: size and mtime, so a new file is hashed anew
    return hashlib.sha256(path.read_bytes()).hexdigest()


class StudentVoice(Voice):
    """The distilled student, fed sentence by sentence by the shared frontend; streams half-second pieces.
    A student of several teacher voices speaks in the one named `teacher` (its `speaker` index)."""

    voice_id = "student"
    teacher = DEFAULT_VOICE

    def __init__(self, threads: int):
        self.path = student_checkpoint()
        self.runtime = runtime(self.path)
        if self.runtime == "onnx":
            self.model = self._onnx(threads)
        if self.runtime == "torch":  # chosen, or the graphs are of another checkpoint
            self.model = self._torch(threads)
        self.sample_rate = self.model.sample_rate
        if self.teacher not in self.model.voices:
            raise ModelUnavailable(f"the student at {self.path} learned {', '.join(self.model.voices)}, not "
                                   f"{self.teacher}: train one with both voices (python -m flows.distill)")
        self.speaker = self.model.voices.index(self.teacher)

    def _onnx(self, threads: int):
        from mediaflow.tts.student_onnx import OnnxStudent

        if not self.path.is_file():
            raise ModelUnavailable(f"no student checkpoint at {self.path}: the ONNX graphs are served only beside "
                                   f"the checkpoint they were exported from")
        model = OnnxStudent(onnx_graphs(self.path), threads=threads)
        stat = self.path.stat()
        if model.checkpoint_sha256 == _sha256(self.path, (stat.st_size, stat.st_mtime_ns)):
            return model
        if os.environ.get(RUNTIME_ENV, "").strip().lower() == "onnx":
            raise ModelUnavailable(f"the student's ONNX graphs were exported from another checkpoint than {self.path}:"
                                   f" re-export them (python -m models.tts_student.export {self.path})")
        log.warning("the student's ONNX graphs beside %s are of another checkpoint; speaking with PyTorch "
                    "(re-export: python -m models.tts_student.export)", self.path)
        self.runtime = "torch"
        return None

    def _torch(self, threads: int):
        try:
            from models.tts_student import CheckpointError, load_voice
        except ImportError as exc:
            raise DependencyMissing(f"the student voice needs PyTorch and the models/ package: {exc}") from exc
        try:
            return load_voice(self.path, threads=threads)
        except CheckpointError as exc:
            raise ModelUnavailable(f"the student voice cannot load: {exc}. Retrain it (python -m flows.distill) "
                                   f"or point {STUDENT_ENV} at a good checkpoint") from exc

    def _ids(self, text: str) -> list[list[int]]:
        return [c.ids for c in prepare(text, self.model.max_tokens, group=False)]

    def speak(self, text: str, speed: float) -> Iterator[np.ndarray]:
        chunks = self._ids(text)
        return (piece for ids in chunks for piece in self.model.pieces([0, *ids, 0], speed, speaker=self.speaker))

    def speak_sentences(self, text: str, speed: float) -> Iterator[np.ndarray]:
        """One model call per sentence, no streaming pieces (the first piece's own decoder and vocoder calls
        cost about a fifth of an 8 s sentence's synthesis)."""
        chunks = self._ids(text)
        return (self.model.from_ids([0, *ids, 0], speed, self.speaker)[0] for ids in chunks)

    timed = True

    def speak_timed(self, text: str, speed: float):
        """One model call per sentence, with the durations its duration predictor chose."""
        frame = 600  # durations are in the teacher's frames: 600 samples at 24 kHz
        for c in prepare(text, self.model.max_tokens, group=False):
            audio, durations = self.model.from_ids([0, *c.ids, 0], speed, self.speaker)
            yield audio, c, np.asarray(durations, dtype=np.int64) * frame

    def files(self) -> list[Path]:
        return list(onnx_graphs(self.path).values()) if self.runtime == "onnx" else [self.path]

    def count_parameters(self) -> int:
        if self.runtime == "onnx":
            from mediaflow.tts.student_onnx import count_parameters

            return count_parameters(onnx_graphs(self.path))  # counted in the graphs, not their metadata
        return self.model.parameters


def _info(available: bool) -> VoiceInfo:
    path = student_checkpoint()
    shipped = path == shipped_checkpoint()  # the parameter count and speeds are the shipped checkpoint's
    try:
        files = list(onnx_graphs(path).values()) if runtime(path) == "onnx" else [path]
    except ModelUnavailable:
        files = [path]
    return VoiceInfo(
        id="student", description="our distilled student of Kokoro af_heart, American female (models/tts_student)",
        engine="mediaflow student (transformer acoustic model + Vocos-style vocoder, ONNX Runtime or PyTorch)",
        sample_rate=SAMPLE_RATE, parameters=PARAMETERS if shipped else None,
        size_bytes=sum(f.stat().st_size for f in files) if all(f.is_file() for f in files) else None,
        license="Apache-2.0 (distilled from Kokoro-82M)",
        **(SPEED.fields() if shipped else NO_SPEED), available=available,
        install=f"train one (python -m flows.distill) or put a checkpoint at {path}",
    )


ENTRY = Entry("student", _info, lambda: student_checkpoint().is_file(), StudentVoice)


class MaleStudentVoice(StudentVoice):
    """The same student in its second teacher voice, Kokoro am_michael, when it learned that one."""

    voice_id = "student-male"
    teacher = "am_michael"


def learned_voices(path: Path) -> list[str]:
    """The teacher voices the student at `path` learned, read from its ONNX encoder's metadata (no PyTorch);
    [] when there are no graphs to read."""
    graph = onnx_graphs(path)["encoder"]
    if not graph.is_file():
        return []
    stat = graph.stat()
    return list(_learned(graph, (stat.st_size, stat.st_mtime_ns)))


@lru_cache(maxsize=4)
def _learned(graph: Path, stamp: tuple[int, int]) -> tuple[str, ...]:
    import json

    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(str(graph), load_external_data=False).metadata_props}
        return tuple(json.loads(props["config"]).get("voices") or [DEFAULT_VOICE])
    except Exception:  # a foreign or broken graph: the voice loader says what is wrong
        return ()


def _male_info(available: bool) -> VoiceInfo:
    return replace(_info(available), id="student-male", **NO_SPEED,  # the same checkpoint: the same parameters
                   description="our distilled student in Kokoro am_michael's voice, American male (models/tts_student)",
                   install=f"train a student with both teacher voices (python -m flows.distill) and put it at "
                           f"{student_checkpoint()}")


MALE_ENTRY = Entry("student-male", _male_info,
                   lambda: student_checkpoint().is_file() and "am_michael" in learned_voices(student_checkpoint()),
                   MaleStudentVoice)
