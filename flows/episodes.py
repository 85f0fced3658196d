"""Prefect flows for episodes: thin tasks over `mediaflow.pipeline`, adding only orchestration."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from mediaflow import pipeline
from mediaflow.config import get_settings
from mediaflow.errors import MediaflowError


def retry_transient(task, task_run, state) -> bool:
    """Retry storage hiccups and unexpected crashes; never retry input that is simply bad."""
    try:
        state.result()
    except MediaflowError as exc:
        return exc.transient
    except Exception:
        return True
    return False


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_transient)
def ingest_audio(source: str, title: str | None = None, description: str | None = None,
                 show: str | None = None, published_at: datetime | None = None) -> str:
    """Probe, hash and copy the audio into the data dir; returns the episode id."""
    return pipeline.ingest(source, get_settings(), title=title, description=description, show=show,
                           published_at=published_at).id


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient)
def transcribe(episode_id: str) -> pipeline.TranscribeResult:
    logger = get_run_logger()
    settings = get_settings()
    duration = pipeline.get_store(settings.db_url).get_episode(episode_id).duration_s
    marks = {"next": 0.25}
    artifact = create_progress_artifact(0.0, description=f"transcribing episode {episode_id}")

    def progress(done_s: float) -> None:
        if duration and done_s / duration >= marks["next"]:
            logger.info("transcribed %.0f%% of %.0f s", 100 * done_s / duration, duration)
            update_progress_artifact(artifact, min(100.0, 100 * done_s / duration))
            marks["next"] += 0.25

    return pipeline.transcribe_episode(episode_id, settings, progress=progress)


@task(retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=retry_transient)
def store_transcript(episode_id: str, result: pipeline.TranscribeResult) -> None:
    pipeline.store_transcript(episode_id, result, get_settings())


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient)
def chapterize(episode_id: str) -> int:
    """Chapters from the stored transcript; replaces earlier chapters. Returns how many."""
    return len(pipeline.chapterize_episode(episode_id, get_settings()))


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient)
def featurize(episode_id: str) -> int:
    """Content features for recommendation; replaces older ones. Returns the keyword count."""
    return len(pipeline.featurize_episode(episode_id, get_settings()).keywords)


@flow(name="process-episode")
def process_episode(source: str, title: str | None = None, force: bool = False,
                    description: str | None = None, show: str | None = None,
                    published_at: datetime | None = None) -> str:
    """One episode end to end: ingest → transcribe → store → chapterize → featurize.

    Re-runs skip finished work; a newer chapter or feature method redoes exactly that step.
    """
    settings = get_settings()
    logger = get_run_logger()
    episode_id = ingest_audio(source, title, description, show, published_at)
    episode = pipeline.get_store(settings.db_url).get_episode(episode_id)
    try:
        redo = force or pipeline.needs_transcript(episode, settings)
        if redo:
            store_transcript(episode_id, transcribe(episode_id))
        else:
            logger.info("episode %s already transcribed with this model; skipping", episode_id)
        rechaptered = redo or pipeline.needs_chapters(episode, settings)
        if rechaptered:
            chapterize(episode_id)
        if rechaptered or pipeline.needs_features(episode, settings):
            featurize(episode_id)
        if redo or episode.status != "done":
            pipeline.mark_done(episode_id, settings)
    except BaseException as exc:
        pipeline.mark_failed(episode_id, exc, settings)
        raise
    return episode_id


@flow(name="process-folder")
def process_folder(folder: str | None = None) -> dict:
    """Process every new audio file in the watched folder; one bad file does not stop the rest.
    With the Dask task runner the files go to the workers together, as one `process-batch`."""
    settings = get_settings()
    logger = get_run_logger()
    pending = pipeline.pending_files(settings, Path(folder) if folder else None)
    if settings.task_runner == "dask" and pending:
        from flows.batch import process_batch  # flows.batch imports this module

        out = process_batch([str(p) for p in pending])
        return {"processed": list(out["done"].values()),
                "failed": {Path(src).name: error for src, error in out["failed"].items()}}
    done, failed = [], {}
    for path in pending:
        try:
            done.append(process_episode(str(path)))
        except MediaflowError as exc:
            logger.warning("%s: %s", path.name, exc)
            failed[path.name] = str(exc)
    return {"processed": done, "failed": failed}
