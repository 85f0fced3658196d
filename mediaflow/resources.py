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
