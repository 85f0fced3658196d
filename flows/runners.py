"""Task-runner selection: `MEDIAFLOW_TASK_RUNNER=default|dask`, read when a flow run starts.

`default` is Prefect's thread pool inside the flow's process. `dask` runs tasks in Dask worker
processes: a local cluster of `MEDIAFLOW_DASK_WORKERS` processes with one thread each, or the
scheduler at `MEDIAFLOW_DASK_ADDRESS`. Each worker process keeps its own models (the lru_caches in
`mediaflow.resources`, `mediaflow.asr` and `mediaflow.embed`), so Whisper loads once per worker.
"""

from __future__ import annotations

import os

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from mediaflow.config import Settings, get_settings


def task_runner(settings: Settings) -> TaskRunner:
    """The task runner these settings name."""
    if settings.task_runner != "dask":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        # Workers of an existing cluster are set up by whoever runs them (PREFECT_API_URL, MEDIAFLOW_*).
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,  # no web UI port to collide with the service's
            "env": _worker_env(settings),
        },
    )


def _worker_env(settings: Settings) -> dict[str, str]:
    """Environment for local worker processes, on top of the one they inherit from this process."""
    from prefect import get_client

    # Cores are shared out rather than each worker taking all of them (oversubscription slows every worker).
    share = str(max(1, (os.cpu_count() or 1) // settings.dask_workers))
    env = {"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}
    if not settings.asr_threads:
        env["MEDIAFLOW_ASR_THREADS"] = share
    # Without an API URL a worker would start an ephemeral Prefect server of its own; point it at the
    # flow's (the ephemeral one this process started, or the configured server).
    env["PREFECT_API_URL"] = str(get_client(sync_client=True).api_url)
    return env


class FromSettings(ThreadPoolTaskRunner):
    """Give this to `@flow(task_runner=...)`: each flow run uses the runner the settings name then.

    Prefect starts every flow run with `task_runner.duplicate()`, so choosing there (instead of at
    import) lets a deployment or a test change `MEDIAFLOW_TASK_RUNNER` without re-importing flows.
    """

    def duplicate(self) -> TaskRunner:
        return task_runner(get_settings())
