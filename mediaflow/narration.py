"""Narrated recommendation explanations: the sentence saying why, spoken and kept with the pair.

The sentence is the one `/similar` shows for the pair (`catalogue.similar_pair`: one source for both;
the language model's when the `explanations` setting has it write them, kept per pair, else the template's),
synthesised by the voice asked for (the configured one by default: the distilled student once it is
trained) and cached as MP3 under `narration/` in the data dir, keyed by the text, the voice and the speed,
so a nightly flow can make them ahead and the player gets them at once.

The cache is bounded: voice names are resolved by the registry (one id however they are spelt) and the
speed is rounded to `SPEED_STEP`, so each pair has at most (voices × speeds) files for its current text.
`plan` says what a narration would be and whether it is made, without synthesising; `speak` makes it
(within `tts_max_audio_s`); `narrate` does both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mediaflow.audio import atomic_write_bytes
from mediaflow.catalogue import similar_pair
from mediaflow.config import Settings
from mediaflow.files import narration_path

SPEED_STEP = 0.25  # speeds are rounded to this: 0.25, 0.5, ..., 4.0


@dataclass
class Narration:
    source_id: str
    target_id: str
    text: str
    voice: str
    path: Path
    duration_s: float
    cached: bool
    speed: float = 1.0
    method: str = "template"  # who wrote `text`: "model" or "template" (as the pair's `explanation_method`)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = self.path.name
        return d


def explanation_for(source_id: str, target_id: str, settings: Settings) -> str:
    """Why `target_id` follows `source_id`: the sentence `/similar` shows for the pair."""
    return similar_pair(source_id, target_id, settings).explanation


def narration_speed(speed: float) -> float:
    """`speed` checked (MIN_SPEED..MAX_SPEED) and rounded to `SPEED_STEP`."""
    from mediaflow.tts.voices import check_speed

    return round(check_speed(speed) / SPEED_STEP) * SPEED_STEP


def plan(source_id: str, target_id: str, settings: Settings, voice: str | None = None,
         speed: float = 1.0) -> Narration:
    """The narration for (source → target) as it would be made, and whether it is made already (`cached`,
    with its duration). Synthesises nothing; unknown episodes, refused pairs and voices raise here."""
    from mediaflow.tts.voices import resolve_voice

    pair = similar_pair(source_id, target_id, settings)
    text, method = pair.explanation, pair.explanation_method
    voice_id, speed = resolve_voice(voice, settings), narration_speed(speed)
    key = hashlib.sha256(json.dumps([text, voice_id, speed]).encode()).hexdigest()[:12]
    path = narration_path(settings, source_id, target_id, key)
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        duration = json.loads(meta.read_text())["duration_s"]
        return Narration(source_id, target_id, text, voice_id, path, duration, True, speed, method)
    return Narration(source_id, target_id, text, voice_id, path, 0.0, False, speed, method)


def speak(n: Narration, settings: Settings) -> Narration:
    """Synthesise and store the narration `plan` described (InputTooLarge past `tts_max_audio_s`)."""
    from mediaflow.tts.encoding import encode_whole
    from mediaflow.tts.voices import get_voice

    v = get_voice(n.voice, threads=settings.tts_threads)
    audio = v.synthesize(n.text, speed=n.speed, max_seconds=settings.tts_max_audio_s)
    atomic_write_bytes(n.path, encode_whole(audio, v.sample_rate, "mp3"))
    duration = round(len(audio) / v.sample_rate, 3)
    meta = {"text": n.text, "voice": n.voice, "speed": n.speed, "duration_s": duration, "method": n.method}
    atomic_write_bytes(n.path.with_suffix(".json"), json.dumps(meta).encode())
    return replace(n, duration_s=duration, cached=False)


def narrate(source_id: str, target_id: str, settings: Settings, voice: str | None = None,
            speed: float = 1.0) -> Narration:
    """Speak the explanation for (source → target); reuse the file if this text was spoken before."""
    n = plan(source_id, target_id, settings, voice, speed)
    return n if n.cached else speak(n, settings)
