"""Background processing: each accepted episode becomes one `process-stored-episode` flow run.

Requests return at once; one daemon worker runs the flows in turn, so transcription never fights
itself for the CPU and a shutdown never waits for an episode to finish (its lease is handed back
and the next start resumes it). An episode is queued at most once however many requests ask, and
episodes whose run died elsewhere (a killed server, a reboot) are found by their lapsed lease and
queued again, at start and then every half lease.
"""

from __future__ import annotations

import logging
import queue
import threading

from mediaflow import lease, pipeline
from mediaflow.config import Settings
from mediaflow.resources import get_store

log = logging.getLogger("mediaflow.service")


class Jobs:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._active: dict[str, bool] = {}  # queued or running → force
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.running: str | None = None
        threading.Thread(target=self._work, name="mediaflow-flows", daemon=True).start()
        threading.Thread(target=self._resume_loop, name="mediaflow-resume", daemon=True).start()

    def submit_episode(self, episode_id: str, force: bool = False) -> bool:
        """Queue a flow run for a stored episode; False when one is queued or running already
        (here, or in another live process that holds the episode's lease)."""
        with self._lock:
            if self._stop.is_set():
                return False
            if episode_id in self._active:
                self._active[episode_id] |= force  # a reprocess asked while queued still forces
                return False
            if not lease.take(episode_id, self.settings):
                return False
            self._active[episode_id] = force
        self._queue.put(episode_id)
        return True

    def is_active(self, episode_id: str) -> bool:
        with self._lock:
            return episode_id in self._active

    def resume_orphans(self) -> list[str]:
        """Queue the episodes whose run died; returns their ids."""
        resumed = [ep.id for ep in lease.orphans(self.settings) if self.submit_episode(ep.id)]
        if resumed:
            log.warning("resuming %d episode(s) whose processing was interrupted: %s", len(resumed), ", ".join(resumed))
        return resumed

    def _resume_loop(self) -> None:
        while True:
            try:
                self.resume_orphans()
            except Exception:  # the database may be away for a moment; try again next round
                log.exception("could not look for interrupted episodes")
            if self._stop.wait(self.settings.lease_s / 2):
                return

    def _work(self) -> None:
        from flows import wait_for_api
        from flows.episodes import process_stored
        from service.metrics import FLOW_RUNS

        wait_for_api()
        while (episode_id := self._queue.get()) is not None:
            with self._lock:
                force = self._active.get(episode_id, False)
            self.running = episode_id
            FLOW_RUNS.labels("process-episode", "started").inc()
            try:
                process_stored(episode_id, force=force)
                FLOW_RUNS.labels("process-episode", "completed").inc()
            except Exception as exc:
                FLOW_RUNS.labels("process-episode", "failed").inc()
                # The flow marks the episode failed with its reason; if the run never started
                # (orchestration down), say so here rather than leave it pending forever.
                log.exception("process-episode failed for %s", episode_id)
                _mark_failed_if_unfinished(episode_id, exc, self.settings)
            finally:
                self.running = None
                with self._lock:
                    self._active.pop(episode_id, None)
                lease.release(episode_id, self.settings)

    def shutdown(self) -> None:
        """Stop taking work and hand back the leases of what is queued or running, so the next start
        resumes it at once; the running flow is not waited for."""
        with self._lock:
            self._stop.set()
            unfinished = list(self._active)
        self._queue.put(None)
        for episode_id in unfinished:
            try:
                lease.release(episode_id, self.settings)
            except Exception:
                log.exception("could not hand back the lease of episode %s", episode_id)


def _mark_failed_if_unfinished(episode_id: str, exc: Exception, settings: Settings) -> None:
    try:
        if get_store(settings.db_url).get_episode(episode_id).status in ("pending", "processing"):
            pipeline.mark_failed(episode_id, exc, settings)
    except Exception:  # the database itself may be the trouble; the log has the original error
        log.exception("could not mark episode %s failed", episode_id)
