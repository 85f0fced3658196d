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
            except Exception:
                FLOW_RUNS.labels("process-episode", "failed").inc()
                # The flow marked the episode failed with its reason; the log keeps the trace.
                log.exception("process-episode failed for %s", episode_id)
                raise
            FLOW_RUNS.labels("process-episode", "completed").inc()
            return out

        fut = self._pool.submit(run)
        self.futures[episode_id] = fut
        return fut

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
