"""The student voice: our model distilled from the teacher (`models/tts_student`; trained by `flows/distill.py`).

Listed when its checkpoint exists (`MEDIAFLOW_TTS_STUDENT`, else the shipped
`models/tts_student/student.pt`); from then on it is also the default voice, unless
`tts_default_voice` names another. `models.tts_student.load_voice` turns phoneme ids into audio;
the shared frontend here turns text into those ids.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from mediaflow.errors import DependencyMissing, ModelUnavailable
from mediaflow.tts.frontend import prepare
from mediaflow.tts.voices.base import NO_SPEED, Entry, ReferenceSpeed, Voice, VoiceInfo

STUDENT_ENV = "MEDIAFLOW_TTS_STUDENT"
SAMPLE_RATE = 24_000
PARAMETERS = 3_860_627  # of the shipped checkpoint; update with it
# bench/tts.py, 109 held-out sentences, 2 threads, load average 0.9-1.8; the shipped checkpoint only
SPEED = ReferenceSpeed(rtf=0.0082, cpu_rtf=0.0109, first_audio_s=0.03, measured="2026-11-30, otherwise idle")


def shipped_checkpoint() -> Path:
    """models/tts_student/student.pt, found without importing the package (which imports PyTorch)."""
    spec = importlib.util.find_spec("models.tts_student")
    return Path(spec.origin).parent / "student.pt"


def student_checkpoint() -> Path:
    """Where the distilled student's checkpoint is looked for."""
    env = os.environ.get(STUDENT_ENV)
    return Path(env).expanduser() if env else shipped_checkpoint()


class StudentVoice(Voice):
    """The distilled student, fed sentence by sentence by the shared frontend; streams half-second pieces."""

    voice_id = "student"

    def __init__(self, threads: int):
        try:
            from models.tts_student import CheckpointError, load_voice
        except ImportError as exc:
            raise DependencyMissing(f"the student voice needs PyTorch and the models/ package: {exc}") from exc
        self.path = student_checkpoint()
        try:
            self.model = load_voice(self.path, threads=threads)
        except CheckpointError as exc:
            raise ModelUnavailable(f"the student voice cannot load: {exc}. Retrain it (python -m flows.distill) "
                                   f"or point {STUDENT_ENV} at a good checkpoint") from exc
        self.sample_rate = self.model.sample_rate

    def _ids(self, text: str) -> list[list[int]]:
        return [c.ids for c in prepare(text, self.model.max_tokens, group=False)]

    def speak(self, text: str, speed: float) -> Iterator[np.ndarray]:
        chunks = self._ids(text)
        return (piece for ids in chunks for piece in self.model.pieces([0, *ids, 0], speed))

    def speak_whole(self, text: str, speed: float) -> np.ndarray:
        """One model call per sentence, no streaming pieces."""
        return np.concatenate([self.model.from_ids([0, *ids, 0], speed)[0] for ids in self._ids(text)])

    timed = True

    def speak_timed(self, text: str, speed: float):
        """One model call per sentence, with the durations its duration predictor chose."""
        frame = self.model.sample_rate * 600 // 24_000  # durations are in the teacher's 600-sample frames
        for c in prepare(text, self.model.max_tokens, group=False):
            audio, durations = self.model.from_ids([0, *c.ids, 0], speed)
            yield audio, c, np.asarray(durations, dtype=np.int64) * frame

    def files(self) -> list[Path]:
        return [self.path]

    def count_parameters(self) -> int:
        return self.model.parameters


def _info(available: bool) -> VoiceInfo:
    path = student_checkpoint()
    shipped = path == shipped_checkpoint()  # the parameter count and speeds are the shipped checkpoint's
    return VoiceInfo(
        id="student", description="our distilled student of Kokoro af_heart, American female (models/tts_student)",
        engine="mediaflow student (transformer acoustic model + Vocos-style vocoder, PyTorch)",
        sample_rate=SAMPLE_RATE, parameters=PARAMETERS if shipped else None,
        size_bytes=path.stat().st_size if path.is_file() else None, license="Apache-2.0 (distilled from Kokoro-82M)",
        **(SPEED.fields() if shipped else NO_SPEED), available=available,
        install=f"train one (python -m flows.distill) or put a checkpoint at {path}",
    )


ENTRY = Entry("student", _info, lambda: student_checkpoint().is_file(), StudentVoice)
