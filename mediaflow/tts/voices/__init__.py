"""Every voice mediaflow can speak with, by id: the registry.

    get_voice("teacher").synthesize("Because you listened to X, try Y.")   # float32, 24 kHz
    for audio in get_voice("hibari").stream(text): ...                      # one array per sentence
    [v.id for v in list_voices()]
    default_voice_id(settings)          # the student once its checkpoint exists, else the teacher
    resolve_voice(" Alloy ", settings)  # the id any caller's name stands for (None: the default)

One module per engine (`kokoro`, `hibari`, `piper`, `student`), each a `Voice` subclass (`base.py`)
and its `Entry`; `REGISTRY` below lists them. A new voice is a module like those and one line here.
Every voice reads the same normalised words (`mediaflow.tts.frontend`), so differences between them
are the models'. Listed sizes and parameter counts are the models' own (the tests count them); listed
speeds are reference-machine figures from `bench/tts.py` (`ReferenceSpeed`), not measured here.

Voice names are read the same way everywhere (`/tts`, `/v1/audio/speech`, narration, the library):
`resolve_voice` ignores case and surrounding space and maps OpenAI's voice names (`OPENAI_VOICES`);
an unknown name is an InvalidInput that echoes at most 40 of its characters.

On the way from a request to audio, each input is checked once:
- text (empty, too long): `frontend.check_text`, by `Voice.stream`/`synthesize`, or by the API route
  (with the configured limit) before it calls `Voice.speak`; "nothing speakable" shows up when the
  engine's `speak` phonemises it;
- speed: `base.check_speed`, by `Voice.stream`/`synthesize`; in the API, by the request schema
  (`service/tts_schemas.py`, the same MIN_SPEED..MAX_SPEED), whose route calls `Voice.speak`;
- format: `encoding.check_format`, by the API route (the schema admits only the names it knows);
  the encoders after it trust the name.
"""

from __future__ import annotations

import os
from functools import lru_cache

from mediaflow.errors import DependencyMissing, InvalidInput, ModelUnavailable, excerpt
from mediaflow.tts.voices import hibari, kokoro, piper, student
from mediaflow.tts.voices.base import MAX_SPEED, MIN_SPEED, Entry, Voice, VoiceInfo, check_speed
from mediaflow.tts.voices.student import STUDENT_ENV, student_checkpoint

__all__ = [
    "MAX_SPEED", "MIN_SPEED", "OPENAI_VOICES", "REGISTRY", "STUDENT_ENV", "Voice", "VoiceInfo", "check_speed",
    "default_voice_id", "get_voice", "list_voices", "openai_voices", "resolve_voice", "student_checkpoint",
    "voice_info",
]

REGISTRY: dict[str, Entry] = {e.id: e for e in (
    kokoro.entry("teacher", "af_heart", "Kokoro-82M af_heart, American female: the teacher"),
    kokoro.entry("kokoro-michael", "am_michael", "Kokoro-82M am_michael, American male"),
    kokoro.entry("kokoro-emma", "bf_emma", "Kokoro-82M bf_emma, British female"),
    hibari.ENTRY,
    piper.ENTRY,
    student.ENTRY,
    student.MALE_ENTRY,
)}

DEFAULT = "default"  # in OPENAI_VOICES: the configured default voice (`default_voice_id`)
# OpenAI's voices by their published character: the female and neutral ones speak with our default
# (the student, or the teacher af_heart), the male ones with Kokoro am_michael, British `fable` with bf_emma.
OPENAI_VOICES = {
    **dict.fromkeys(("alloy", "coral", "nova", "sage", "shimmer", "marin"), DEFAULT),
    **dict.fromkeys(("ash", "ballad", "cedar", "echo", "onyx", "verse"), "kokoro-michael"),
    "fable": "kokoro-emma",
}


def resolve_voice(name: str | None, settings=None) -> str:
    """The voice id `name` stands for, however a caller spelt it: None or "" is the default voice; case
    and surrounding space are ignored; an OpenAI voice name is the voice it maps to. InvalidInput when
    it names no registered voice (whether it is installed is `get_voice`'s question)."""
    key = _key(name)
    if not key:
        return default_voice_id(settings)
    key = OPENAI_VOICES.get(key, key)  # no OpenAI name is one of our ids, so the order does not matter
    return default_voice_id(settings) if key == DEFAULT else _entry(key).id


def openai_voices(settings=None) -> dict[str, str]:
    """OpenAI voice name → our voice id, with the default resolved."""
    return {name: resolve_voice(name, settings) for name in OPENAI_VOICES}


def list_voices(include_unavailable: bool = False) -> list[VoiceInfo]:
    """The voices this installation can speak with (all registered ones with include_unavailable)."""
    out = []
    for entry in REGISTRY.values():
        ok = entry.available()
        if ok or include_unavailable:
            out.append(entry.info(ok))
    return out


def voice_info(voice_id: str) -> VoiceInfo:
    entry = _entry(voice_id)
    return entry.info(entry.available())


def _key(name: object) -> str:
    """The one spelling rule for voice names: case and surrounding space do not count."""
    return name.strip().lower() if isinstance(name, str) else ""


def _entry(voice_id: str) -> Entry:
    entry = REGISTRY.get(_key(voice_id))
    if entry is None:
        known = ", ".join(v.id for v in list_voices())
        raise InvalidInput(f"unknown voice {excerpt(voice_id)}; available voices: {known}; "
                           f"or one of OpenAI's names: {', '.join(OPENAI_VOICES)}")
    return entry


def default_voice_id(settings=None) -> str:
    """The voice for requests that name none: `settings.tts_default_voice` unless it is `auto`
    (the default), in which case the distilled student once its checkpoint exists, else the teacher."""
    chosen = _key(getattr(settings, "tts_default_voice", None)) or "auto"
    if chosen != "auto":
        return _entry(chosen).id
    return "student" if REGISTRY["student"].available() else "teacher"


def get_voice(voice_id: str = "teacher", threads: int = 0) -> Voice:
    """The loaded voice (once per process and thread count). threads=0 uses every core."""
    entry = _entry(voice_id)
    if not entry.available():
        error = ModelUnavailable if entry.id == "student" else DependencyMissing
        raise error(f"voice {entry.id!r} is not installed here: {entry.info(False).install}")
    return _load(entry.id, threads or os.cpu_count() or 1)


@lru_cache(maxsize=None)
def _load(voice_id: str, threads: int) -> Voice:
    return REGISTRY[voice_id].load(threads)
