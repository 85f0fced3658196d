"""Prefect flows for episodes: one task per step of `mediaflow.pipeline.STEPS`, mapped over a batch.

    process_episode(path)     a file: ingest, then the chain (the CLI, feeds, tests)
    process_stored(id)        an episode already ingested: the chain (the service: uploads, reprocess, resumes)
    process_batch(paths)      many files side by side, on the configured task runner (thread pool or Dask)
    process_folder()          the watched folder, as one batch
    refresh_episodes(ids)     stored episodes brought up to date with the current methods (a backfill)

All of them go through `_process`: the chain is written once. A run holds each episode's lease
(`mediaflow.lease`) from ingest to the end, so a run that dies leaves the episode to be resumed.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from flows.runners import FromSettings
from mediaflow import lease, pipeline
from mediaflow.config import get_settings
from mediaflow.errors import MediaflowError
from mediaflow.files import pending_files
from mediaflow.resources import get_store, get_transcriber


def retry_transient(task, task_run, state) -> bool:
    """Retry storage hiccups and unexpected crashes; never retry input that is simply bad."""
    try:
        state.result()
    except MediaflowError as exc:
        return exc.transient
    except Exception:
        return True
    return False


# Prefect's input cache is off: transcripts are large to hash, and re-runs are made cheap by the
# content hash and the steps' own checks instead.
_TASK = dict(cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
# Storage is retried longest: a locked database should not cost a transcription.
RETRIES = {"transcribe": (1, 5), "store": (3, [1, 5, 15]), "speakers": (1, 5), "chapterize": (1, 5),
           "featurize": (1, 5)}
_model_lock = threading.Lock()


@task(retries=2, retry_delay_seconds=[1, 5], **_TASK)
def ingest(source: str, owner: str, force: bool = False, title: str | None = None, description: str | None = None,
           show: str | None = None, published_at: datetime | None = None,
           persons: list[dict] | None = None) -> pipeline.Run:
    """Probe, hash and copy into the data dir, and take the episode's lease for the flow's process."""
    import time

    settings = get_settings()
    t0 = time.perf_counter()
    episode = pipeline.ingest(source, settings, title=title, description=description, show=show,
                              published_at=published_at, persons=persons)
    lease.hold(episode.id, settings, owner)
    return pipeline.Run(episode.id, force=force).timed("ingest", t0)


@task(**_TASK)
def step(run: pipeline.Run, name: str) -> pipeline.Run:
    """One step of the chain (its name is the task's)."""
    settings = get_settings()
    kwargs = {}
    if name == "transcribe":
        _warm_model(settings)
        kwargs["progress"] = _progress_reporter(run.episode_id)
    return pipeline.run_step(name, run, settings, **kwargs)


def _warm_model(settings) -> None:
    # Two cold threads would each load Whisper; later tasks reuse the process's model. A plain function:
    # Dask pickles the task's function by value, and this by name, so the lock itself is never pickled.
    with _model_lock:
        get_transcriber(settings)


def _progress_reporter(episode_id: str) -> Callable[[float], None]:
    logger = get_run_logger()
    duration = get_store(get_settings().db_url).get_episode(episode_id).duration_s
    marks = {"next": 0.25}
    artifact = create_progress_artifact(0.0, description=f"transcribing episode {episode_id}")

    def progress(done_s: float) -> None:
        if duration and done_s / duration >= marks["next"]:
            logger.info("transcribed %.0f%% of %.0f s", 100 * done_s / duration, duration)
            update_progress_artifact(artifact, min(100.0, 100 * done_s / duration))
            marks["next"] += 0.25

    return progress


_watchers: list[Callable[[str, str | None, str | None], None]] = []


@contextmanager
def watch(callback: Callable[[str, str | None, str | None], None]) -> Iterator[None]:
    """Call `callback(source, episode_id, error)` as each episode of a batch in this process finishes."""
    _watchers.append(callback)
    try:
        yield
    finally:
        _watchers.remove(callback)


def _process(sources: list, force: bool = False, **meta) -> dict:
    """The chain over a batch: ingest (for paths) or start from stored ids (`pipeline.Run`s), then one
    task per step, chained per episode. Each episode succeeds or fails on its own."""
    settings = get_settings()
    logger = get_run_logger()
    lease.keep_renewing(settings)
    if sources and isinstance(sources[0], pipeline.Run):
        stages = [sources]
    else:
        stages = [ingest.map(sources, unmapped(lease.OWNER), unmapped(force), **{k: unmapped(v) for k, v in meta.items()})]
    for name in pipeline.STEPS:
        retries, delay = RETRIES[name]
        stages.append(step.with_options(name=name, retries=retries, retry_delay_seconds=delay)
                      .map(stages[-1], unmapped(name)))
    done, failed, errors, runs = {}, {}, {}, {}
    for i, source in enumerate(sources):
        key = source.episode_id if isinstance(source, pipeline.Run) else source
        chain = [futures[i] for futures in stages[1:]]
        first = stages[0][i]
        if not isinstance(first, pipeline.Run):
            chain.insert(0, first)
        wait(chain)
        episode_id = first.episode_id if isinstance(first, pipeline.Run) else (
            first.result().episode_id if first.state.is_completed() else None)
        broken = next((f.state for f in chain if not f.state.is_completed()), None)
        try:
            if broken is None:
                run = chain[-1].result()
                pipeline.finish(run, settings)
                done[key], runs[run.episode_id] = run.episode_id, run
            else:
                # Later steps of a broken chain wait on a failed input ("NotReady"): the first failure is the cause.
                error = broken.result(raise_on_failure=False)
                if not isinstance(error, BaseException):
                    error = RuntimeError(broken.message or broken.name)
                logger.warning("%s: %s", key, pipeline.describe(error))
                failed[key], errors[key] = pipeline.describe(error), error
                if episode_id is not None:
                    pipeline.mark_failed(episode_id, error, settings)
        finally:
            if episode_id is not None:
                lease.release(episode_id, settings)
        for callback in list(_watchers):
            callback(str(key), done.get(key) or episode_id, failed.get(key))
    return {"done": done, "failed": failed, "errors": errors, "steps": runs}


def _single(out: dict) -> str:
    """The one episode's id, or its error raised."""
    if out["errors"]:
        raise next(iter(out["errors"].values()))
    return next(iter(out["done"].values()))


@flow(name="process-episode")
def process_episode(source: str, title: str | None = None, force: bool = False,
                    description: str | None = None, show: str | None = None,
                    published_at: datetime | None = None, persons: list[dict] | None = None) -> str:
    """One file end to end: ingest → transcribe → store → chapterize → featurize; returns the episode id.

    Re-runs skip finished work; a newer chapter or feature method redoes exactly that step.
    `persons`: a feed item's `podcast:person` tags, candidate speaker names.
    """
    return _single(_process([source], force, title=title, description=description, show=show,
                            published_at=published_at, persons=persons))


@flow(name="process-stored-episode")
def process_stored(episode_id: str, force: bool = False) -> str:
    """An episode already ingested (its audio in the data dir): the chain, from its id."""
    settings = get_settings()
    get_store(settings.db_url).get_episode(episode_id)  # NotFound before any task runs
    lease.hold(episode_id, settings)
    return _single(_process([pipeline.Run(episode_id, force=force)], force))


@flow(name="process-batch", task_runner=FromSettings())
def process_batch(sources: list[str], force: bool = False) -> dict:
    """Process a batch in parallel; a file that fails fails its own episode, not the batch.

    Returns {"done": {source: episode id}, "failed": {source: error}, "steps": {episode id: pipeline.Run}}.
    """
    out = _process(list(dict.fromkeys(sources)), force)  # a file listed twice would be transcribed twice at once
    out.pop("errors")
    return out


@flow(name="refresh-episodes", task_runner=FromSettings())
def refresh_episodes(episode_ids: list[str] | None = None) -> dict:
    """Bring stored episodes (all finished ones by default) up to date: each step whose method changed
    since (a new diarizer, chapter or feature method) is redone, and only those. Episodes another live
    run holds are left to it."""
    settings = get_settings()
    store = get_store(settings.db_url)
    if episode_ids is None:
        episode_ids = [e.id for e in store.list_episodes(limit=1_000_000, status="done")[0]]
    held = [i for i in dict.fromkeys(episode_ids) if lease.take(i, settings)]
    if not held:
        return {"done": {}, "failed": {}, "busy": len(episode_ids)}
    out = _process([pipeline.Run(i) for i in held])
    out.pop("errors")
    out.pop("steps")
    out["busy"] = len(episode_ids) - len(held)
    return out


@flow(name="process-folder")
def process_folder(folder: str | None = None) -> dict:
    """Every new audio file in the watched folder, as one batch; one bad file does not stop the rest."""
    pending = pending_files(get_settings(), Path(folder) if folder else None)
    if not pending:
        return {"processed": [], "failed": {}}
    out = process_batch([str(p) for p in pending])
    return {"processed": list(out["done"].values()),
            "failed": {Path(src).name: error for src, error in out["failed"].items()}}
