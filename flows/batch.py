"""A batch of episodes in parallel: each stage is a task, so a Dask runner spreads them over workers.

Per episode the chain is ingest → transcribe → store → chapterize → featurize; the chains of a
batch run side by side (`MEDIAFLOW_TASK_RUNNER`, see `flows/runners.py`). Every task returns a
`Step` carrying the episode id, the seconds of library work per stage and the worker's pid, so a
benchmark can tell work from orchestration and a test can see where tasks ran.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from flows.episodes import retry_transient
from flows.runners import FromSettings
from mediaflow import pipeline
from mediaflow.config import get_settings

# Prefect's input cache is off: transcripts are large to hash, and re-runs are made cheap by the
# content hash and the needs_* checks instead.
_TASK = dict(cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
_model_lock = threading.Lock()


def _warm_model(settings) -> None:
    # With the thread-pool runner two cold tasks would each load Whisper; later tasks reuse the
    # process's model. (A plain function, so Dask pickles it by name and never the lock itself.)
    with _model_lock:
        pipeline.get_transcriber(settings)


@dataclass
class Step:
    """One episode's progress through the batch, handed from task to task."""

    episode_id: str
    redone: bool = False  # the transcript was (re)made in this run, so chapters and features follow
    seconds: dict[str, float] = field(default_factory=dict)  # stage → seconds inside the library call
    pids: dict[str, int] = field(default_factory=dict)  # stage → process that ran it
    result: pipeline.TranscribeResult | None = None  # between transcribe and store only

    def timed(self, stage: str, started: float) -> Step:
        self.seconds[stage] = time.perf_counter() - started
        self.pids[stage] = os.getpid()
        return self


@task(retries=2, retry_delay_seconds=[1, 5], **_TASK)
def ingest(source: str) -> Step:
    """Probe, hash and copy into the data dir; the same bytes give back the same episode."""
    t0 = time.perf_counter()
    episode = pipeline.ingest(source, get_settings())
    return Step(episode.id).timed("ingest", t0)


@task(retries=1, retry_delay_seconds=5, **_TASK)
def transcribe(step: Step, force: bool = False) -> Step:
    """Whisper on this worker's model, unless the stored transcript came from the same model."""
    settings = get_settings()
    t0 = time.perf_counter()
    _warm_model(settings)
    episode = pipeline.get_store(settings.db_url).get_episode(step.episode_id)
    if force or pipeline.needs_transcript(episode, settings):
        step.result, step.redone = pipeline.transcribe_episode(step.episode_id, settings), True
    return step.timed("transcribe", t0)


@task(retries=3, retry_delay_seconds=[1, 5, 15], **_TASK)
def store(step: Step) -> Step:
    t0 = time.perf_counter()
    if step.result is not None:
        pipeline.store_transcript(step.episode_id, step.result, get_settings())
        step.result = None  # the transcript is in the database; don't ship it on
    return step.timed("store", t0)


@task(retries=1, retry_delay_seconds=5, **_TASK)
def chapterize(step: Step) -> Step:
    settings = get_settings()
    t0 = time.perf_counter()
    episode = pipeline.get_store(settings.db_url).get_episode(step.episode_id)
    if step.redone or pipeline.needs_chapters(episode, settings):
        pipeline.chapterize_episode(step.episode_id, settings)
        step.redone = True
    return step.timed("chapterize", t0)


@task(retries=1, retry_delay_seconds=5, **_TASK)
def featurize(step: Step) -> Step:
    settings = get_settings()
    t0 = time.perf_counter()
    episode = pipeline.get_store(settings.db_url).get_episode(step.episode_id)
    if step.redone or pipeline.needs_features(episode, settings):
        pipeline.featurize_episode(step.episode_id, settings)
    return step.timed("featurize", t0)


@flow(name="process-batch", task_runner=FromSettings())
def process_batch(sources: list[str], force: bool = False) -> dict:
    """Process a batch in parallel; a file that fails fails its own episode, not the batch.

    Returns {"done": {source: episode id}, "failed": {source: error}, "steps": {episode id: Step}}.
    """
    settings = get_settings()
    logger = get_run_logger()
    sources = list(dict.fromkeys(sources))  # a file listed twice would be transcribed twice at once
    stages = [ingest.map(sources)]
    stages.append(transcribe.map(stages[-1], unmapped(force)))
    for stage in (store, chapterize, featurize):
        stages.append(stage.map(stages[-1]))
    wait([f for futures in stages for f in futures])

    done, failed, steps = {}, {}, {}
    for i, source in enumerate(sources):
        chain = [futures[i] for futures in stages]
        episode_id = chain[0].result().episode_id if chain[0].state.is_completed() else None
        broken = next((f.state for f in chain if not f.state.is_completed()), None)
        if broken is None:
            step = chain[-1].result()
            if step.redone or pipeline.get_store(settings.db_url).get_episode(step.episode_id).status != "done":
                pipeline.mark_done(step.episode_id, settings)
            done[source], steps[step.episode_id] = step.episode_id, step
            continue
        # Later stages of a broken chain wait on a failed input ("NotReady"): the first failure is the cause.
        error = broken.result(raise_on_failure=False)
        if not isinstance(error, BaseException):
            error = RuntimeError(broken.message or broken.name)
        logger.warning("%s: %s", source, error)
        failed[source] = str(error) or type(error).__name__
        if episode_id is not None:
            pipeline.mark_failed(episode_id, error, settings)
    return {"done": done, "failed": failed, "steps": steps}
