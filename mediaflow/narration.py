"""Narrated recommendation explanations: the sentence saying why, spoken and kept with the pair.

"Because you listened to X, try Y: it gets into Z", synthesised by the configured voice (the
distilled student once it is trained) and cached as MP3 under `narration/` in the data dir, keyed by
the text and the voice, so a nightly flow can make them ahead and the player gets them at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mediaflow.audio import atomic_write_bytes
from mediaflow.catalogue import load_catalogue
from mediaflow.config import Settings
from mediaflow.explain import explain
from mediaflow.files import narration_path
from mediaflow.recommend import explain_pair


@dataclass
class Narration:
    source_id: str
    target_id: str
    text: str
    voice: str
    path: Path
    duration_s: float
    cached: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = self.path.name
        return d


def explanation_for(source_id: str, target_id: str, settings: Settings) -> str:
    """Why `target_id` follows `source_id`, in one or two sentences drawn from their features."""
    catalogue = load_catalogue(settings)
    reason = explain_pair(catalogue.get(source_id), catalogue.get(target_id), catalogue, kind="because_you_listened")
    return explain(reason).text


def narrate(source_id: str, target_id: str, settings: Settings, voice: str | None = None,
            speed: float = 1.0) -> Narration:
    """Speak the explanation for (source → target); reuse the file if this text was spoken before."""
    from mediaflow.tts.encoding import encode_whole
    from mediaflow.tts.voices import default_voice_id, get_voice

    text = explanation_for(source_id, target_id, settings)
    voice_id = voice or default_voice_id(settings)
    key = hashlib.sha256(json.dumps([text, voice_id, round(speed, 3)]).encode()).hexdigest()[:12]
    path = narration_path(settings, source_id, target_id, key)
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        return Narration(source_id, target_id, text, voice_id, path, json.loads(meta.read_text())["duration_s"], True)
    v = get_voice(voice_id, threads=settings.tts_threads)
    audio = v.synthesize(text, speed=speed)
    atomic_write_bytes(path, encode_whole(audio, v.sample_rate, "mp3"))
    duration = round(len(audio) / v.sample_rate, 3)
    atomic_write_bytes(meta, json.dumps({"text": text, "voice": voice_id, "duration_s": duration}).encode())
    return Narration(source_id, target_id, text, voice_id, path, duration, False)

