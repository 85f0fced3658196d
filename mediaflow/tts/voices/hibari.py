"""The hibari voice: hibari-tts 0.2.1, a 6.2 M-parameter int8 student of Kokoro af_heart (Apache-2.0).

It shares Kokoro's phoneme vocab, so the shared frontend feeds it the same ids as the teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from mediaflow.errors import DependencyMissing, ModelUnavailable
from mediaflow.tts.frontend import prepare, vocab
from mediaflow.tts.voices.base import Entry, ReferenceSpeed, Voice, VoiceInfo, installed, onnx_parameters

SAMPLE_RATE = 24_000
BYTES = 7_936_868  # hibari/assets/hibari.onnx
PARAMETERS = 6_152_988  # its ONNX initializer elements
# bench/tts.py, 109 held-out sentences, 2 threads, load average 0.9-1.8
SPEED = ReferenceSpeed(rtf=0.0054, cpu_rtf=0.0108, first_audio_s=0.04, measured="2026-11-30, otherwise idle")


class HibariVoice(Voice):
    """hibari's acoustic model and DSP vocoder, fed by the shared frontend."""

    voice_id = "hibari"
    sample_rate = SAMPLE_RATE
    max_tokens = 400  # hibari splits sentences longer than this itself

    def __init__(self, threads: int):
        try:
            from hibari import Hibari
        except ImportError as exc:
            raise DependencyMissing("the hibari voice needs hibari-tts: pip install hibari-tts==0.2.1") from exc
        self.model = Hibari(threads=threads)
        if self.model.vocab != vocab():
            raise ModelUnavailable("hibari's phoneme vocab differs from Kokoro's; the shared frontend cannot feed it")

    def speak(self, text: str, speed: float, seed: int = 0) -> Iterator[np.ndarray]:
        chunks = prepare(text, self.max_tokens, group=False)
        rng = np.random.default_rng(seed)  # its vocoder adds noise: a fixed seed makes output repeatable
        return (self.model.from_ids([0, *c.ids, 0], speed, rng) for c in chunks)

    def files(self) -> list[Path]:
        return [Path(self.model.model_path)]

    def count_parameters(self) -> int:
        return onnx_parameters(self.model.model_path)


def _info(available: bool) -> VoiceInfo:
    return VoiceInfo(
        id="hibari", description="hibari-tts 0.2.1: 6.2 M-parameter student of Kokoro af_heart, American female",
        engine="hibari (int8 ONNX + DSP vocoder)", sample_rate=SAMPLE_RATE, parameters=PARAMETERS,
        size_bytes=BYTES, license="Apache-2.0", **SPEED.fields(), available=available,
        install="pip install hibari-tts==0.2.1",
    )


ENTRY = Entry("hibari", _info, lambda: installed("hibari"), HibariVoice)
