"""Unload the models when the service has sat idle, as speech servers do: a loaded service holds a
few GB (Whisper, the embedder, the voices) that an idle one gives back; the next request loads them
again (a second or two)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from mediaflow import resources

log = logging.getLogger("mediaflow.service")


class IdleUnloader:
    def __init__(self, idle_s: float, busy: Callable[[], bool]):
        self.idle_s, self.busy = idle_s, busy
        self.unloaded_at: float | None = None  # time.time() of the last unload
        self._stop = threading.Event()
        if idle_s > 0:
            threading.Thread(target=self._watch, name="mediaflow-idle", daemon=True).start()

    def _watch(self) -> None:
        calls, active = resources.model_calls(), time.monotonic()
        while not self._stop.wait(min(30.0, max(0.5, self.idle_s / 4))):
            try:
                now_calls = resources.model_calls()
                if now_calls != calls or self.busy():
                    calls, active = now_calls, time.monotonic()
                elif time.monotonic() - active >= self.idle_s and resources.loaded_models():
                    dropped = resources.unload_models()
                    self.unloaded_at = time.time()
                    log.info("models idle for %.0f s: unloaded %s", self.idle_s, ", ".join(dropped))
                    calls = resources.model_calls()
            except Exception:  # one bad round must not end the watch for the life of the server
                log.exception("idle check failed; trying again next round")

    def stop(self) -> None:
        self._stop.set()
