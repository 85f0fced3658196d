"""Text to speech: `frontend` (text → phonemes, with `g2p`, the packed phonemiser), the engines `kokoro`
(the teacher) and `piper`, `voices` (one module per voice engine and the registry), `student_onnx` (the
student without PyTorch), `encoding` (the audio formats sent out)."""

from __future__ import annotations

from pathlib import Path

from mediaflow.cache import cache_dir


def default_cache_dir() -> Path:
    """`MEDIAFLOW_TTS_CACHE`, else `$XDG_CACHE_HOME/mediaflow/tts` (~/.cache/mediaflow/tts): Kokoro's voice
    packs and the packed phonemiser."""
    return cache_dir("tts", "MEDIAFLOW_TTS_CACHE")
