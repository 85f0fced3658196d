"""Background processing: each accepted episode becomes a Prefect flow run on a worker thread.

Requests return at once; one worker keeps transcription from fighting itself for the CPU.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger("mediaflow.service")


class Jobs:
    def __init__(self, workers: int = 1):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mediaflow-flow")
        self.futures: dict[str, Future] = {}

    def submit_episode(self, episode_id: str, source: str, force: bool = False) -> Future:
        from flows.episodes import process_episode

        def run():
            from service.metrics import FLOW_RUNS

            FLOW_RUNS.labels("process-episode", "started").inc()
            try:
                out = process_episode(source, force=force)
            except Exception as exc:
                FLOW_RUNS.labels("process-episode", "failed").inc()
                # The flow marks the episode failed with its reason; if the run never started
                # (orchestration down), say so here rather than leave it pending forever.
                log.exception("process-episode failed for %s", episode_id)
                _mark_failed_if_unfinished(episode_id, exc)
                raise
            FLOW_RUNS.labels("process-episode", "completed").inc()
            return out

        fut = self._pool.submit(run)
        self.futures[episode_id] = fut
        return fut

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _mark_failed_if_unfinished(episode_id: str, exc: Exception) -> None:
    from mediaflow import pipeline
    from mediaflow.config import get_settings

    settings = get_settings()
    try:
        if pipeline.get_store(settings.db_url).get_episode(episode_id).status in ("pending", "processing"):
            pipeline.mark_failed(episode_id, exc, settings)
    except Exception:  # the database itself may be the trouble; the log has the original error
        log.exception("could not mark episode %s failed", episode_id)
