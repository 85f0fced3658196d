"""The process's shared resources, each made once: the store per database URL, Whisper per settings,
the sentence embedder. Everything that needs one asks here, so a worker process loads each once."""

from __future__ import annotations

import threading
from functools import lru_cache

from mediaflow.asr import Transcriber
from mediaflow.config import Settings
from mediaflow.embed import Embedder, get_embedder
from mediaflow.store import Store

__all__ = ["get_store", "get_transcriber", "get_embedder", "Embedder"]

_new_store = threading.Lock()


@lru_cache(maxsize=8)
def get_store(url: str) -> Store:
    """One `Store` (engine and connection pool) per database URL and process."""
    with _new_store:  # concurrent first requests would each create the tables, and all but one fail
        return Store(url)


def get_transcriber(settings: Settings) -> Transcriber:
    """Whisper for these settings; the model itself is loaded once per process (`asr._load`)."""
    return Transcriber.from_settings(settings)


# Every cache that holds a model, by the module that owns it: (module, cache attribute, what it is).
# A module not imported yet has loaded nothing, so it is not imported here either.
_MODEL_CACHES = (
    ("mediaflow.asr", "_load", "whisper"),
    ("mediaflow.embed", "get_embedder", "embedder"),
    ("mediaflow.diarize", "_encoder", "speaker-encoder"),
    ("mediaflow.tts.voices", "_load", "voices"),
    ("mediaflow.tts.kokoro", "_session", "kokoro"),
    ("mediaflow.tts.frontend", "_g2p", "g2p"),
    ("mediaflow.tts.piper", "_voice", "piper"),
    ("mediaflow.llm", "get_llm", "llm"),
)


def _caches():
    import sys

    for module, attr, name in _MODEL_CACHES:
        # a module another thread is importing sits in sys.modules before its cache is defined
        cache = getattr(sys.modules.get(module), attr, None)
        if cache is not None:
            yield name, cache


def loaded_models() -> list[str]:
    """The models this process holds in memory now."""
    return [name for name, cache in _caches() if cache.cache_info().currsize]


def model_calls() -> int:
    """How often any model was asked for: unchanged over a while means the models sat idle."""
    return sum(cache.cache_info().hits + cache.cache_info().misses for _, cache in _caches())


def unload_models() -> list[str]:
    """Drop every loaded model (the next use loads it again) and give the memory back to the system.
    A call still running keeps its own reference and finishes normally. Returns what was dropped."""
    import ctypes
    import gc

    dropped = loaded_models()
    for _, cache in _caches():
        cache.cache_clear()
    gc.collect()
    try:  # glibc keeps freed arenas for reuse; hand them back so the process's RSS falls
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return dropped
