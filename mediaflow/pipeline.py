"""The episode pipeline as plain steps: `ingest`, then the chain `STEPS` (transcribe → store →
speakers → chapterize → featurize) over a `Run`, then `finish`.

The chain is listed once, here. `process` runs it in this process; the Prefect flows map one task
per step over a batch (`flows/episodes.py`). A step skips what is already done with the configured
model or method, so re-runs are cheap and an upgrade redoes exactly the steps it changed.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from sqlalchemy.exc import IntegrityError

from mediaflow import vad
from mediaflow.asr import Progress
from mediaflow.audio import AudioInfo, LoudnessMeter, atomic_copy, probe, sha256_file
from mediaflow.config import AUDIO_EXTENSIONS, Settings
from mediaflow.errors import MediaflowError, NotFound
from mediaflow.files import speech_path, sweep_stale_temp_files
from mediaflow.resources import get_store, get_transcriber
from mediaflow.store import EPISODE_ID_LEN, Episode
from mediaflow.transcript import Transcript
from mediaflow.vad import SpeechTrack


# -- ingest ----------------------------------------------------------------------------------------
def title_from(info: AudioInfo, source: Path) -> str:
    if info.title:
        return info.title
    stem = re.sub(r"[_\-]+", " ", source.stem).strip()
    return (stem[:1].upper() + stem[1:]) if stem else source.name


def ingest(
    source: str | Path,
    settings: Settings,
    title: str | None = None,
    description: str | None = None,
    show: str | None = None,
    published_at=None,
    persons: list[dict] | None = None,
) -> Episode:
    """Validate the audio, copy it into the data dir under its content hash, and record the episode.

    Raises a `MediaflowError` before anything is written if the input is not usable audio.
    `persons`: the feed's `podcast:person` tags (`feeds.Person.to_dict()`), candidate speaker names.
    Idempotent: the same bytes give back the same episode. The only step that reads the source;
    everything after it starts from the episode id.
    """
    source = Path(source)
    store = get_store(settings.db_url)
    info = probe(source, max_bytes=settings.max_upload_bytes, max_duration_s=settings.max_duration_h * 3600)
    digest = sha256_file(source)
    suffix = source.suffix.lower() if source.suffix.lower() in AUDIO_EXTENSIONS else ".bin"
    rel = Path("audio") / f"{digest[:EPISODE_ID_LEN]}{suffix}"
    target = settings.data_path / rel
    sweep_stale_temp_files(settings)
    existing = store.get_by_hash(digest)
    if existing is not None:
        stored = settings.data_path / existing.audio_path
        if not stored.exists():  # the row survived but the file was lost: restore it
            atomic_copy(source, stored)
        return existing
    copied = not target.exists()
    if source.resolve() != target.resolve():
        atomic_copy(source, target)
    try:
        return store.add_episode(
            content_hash=digest,
            title=(title or title_from(info, source))[:500],
            description=(description or info.description or None),
            show=(show or info.album or None),
            persons=persons or None,
            published_at=published_at,
            source_name=source.name[:500],
            audio_path=rel.as_posix(),
            status="pending",
            size_bytes=info.size_bytes,
            duration_s=round(info.duration_s, 3),
            sample_rate=info.sample_rate,
            channels=info.channels,
            codec=info.codec,
            container=info.container,
        )
    except IntegrityError:  # a concurrent ingest of the same bytes won the race
        return store.get_by_hash(digest)
    except BaseException:
        # No row points at the copy we just made (the database is locked or down): do not leave it
        # behind. If even the lookup fails, keep it: another ingest of the same bytes may own it.
        try:
            if copied and store.get_by_hash(digest) is None:
                target.unlink(missing_ok=True)
        except Exception:
            pass
        raise


# -- the building blocks ---------------------------------------------------------------------------
@dataclass
class TranscribeResult:
    transcript: Transcript
    loudness_dbfs: float | None
    peak_dbfs: float | None
    speech: np.ndarray | None = None  # the VAD's speech probabilities, kept for the speaker step


def transcribe_episode(episode_id: str, settings: Settings, progress: Progress | None = None) -> TranscribeResult:
    """Transcribe the stored audio of an episode (streamed; loudness measured and the VAD's speech
    probabilities kept in the same pass)."""
    store = get_store(settings.db_url)
    ep = store.update_episode(episode_id, status="processing", error=None)
    meter, track = LoudnessMeter(), SpeechTrack()
    transcript = get_transcriber(settings).transcribe(
        settings.data_path / ep.audio_path,
        progress=progress,
        max_duration_s=settings.max_duration_h * 3600,
        meter=meter,
        speech=track,
    )
    return TranscribeResult(transcript, meter.loudness_dbfs, meter.peak_dbfs, track.array())


def store_transcript(episode_id: str, result: TranscribeResult, settings: Settings) -> Episode:
    """Save the transcript and the measured loudness with the episode, atomically. The episode's duration
    becomes the one measured by decoding: a header can overstate it (a truncated MP3 keeps its Xing count)."""
    store = get_store(settings.db_url)
    measured = {"duration_s": result.transcript.duration} if result.transcript.duration > 0 else {}
    if result.speech is not None and len(result.speech):
        vad.save(speech_path(store.get_episode(episode_id), settings), result.speech)
    store.save_transcript(
        episode_id, result.transcript, status="processing",
        loudness_dbfs=result.loudness_dbfs, peak_dbfs=result.peak_dbfs, **measured,
    )
    return store.get_episode(episode_id)


def chapterize_episode(episode_id: str, settings: Settings) -> list:
    """Chapters from the stored transcript, conditioned on the episode's title and description; stored.
    When the language model writes the titles it also writes the episode's summary and synthetic search
    queries (from our chapters' titles and summaries), stored with the chapters in the same transaction."""
    from mediaflow.chapters import chapterize, summarize_episode, title_method
    from mediaflow.queries import episode_queries

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    opts = chapter_options(settings)
    method = chapters_method(settings)
    chapters = chapterize(store.get_transcript(episode_id), title=ep.title, description=ep.description, options=opts)
    summary, queries = None, None
    if title_method(opts) == "model":
        summary = summarize_episode(chapters, ep.title, ep.description, opts)
        queries = episode_queries(ep.title, ep.description, chapters)
    from mediaflow.chapters.creator import for_episode

    theirs = for_episode(episode_id, settings)  # chapters the creator wrote win; ours are kept beside them
    if theirs is not None:
        store.save_chapters(episode_id, [c.to_dict() for c in theirs.chapters], method,
                            generated=[c.to_dict() for c in chapters], summary=summary, queries=queries)
        return theirs.chapters
    store.save_chapters(episode_id, [c.to_dict() for c in chapters], method, summary=summary, queries=queries)
    return chapters


def featurize_episode(episode_id: str, settings: Settings):
    """Content features from the transcript, chapters and audio; stored, replacing older ones."""
    from mediaflow.features import extract_features

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    try:
        chapters, _ = store.get_chapters(episode_id)
    except NotFound:
        chapters = []
    from mediaflow import speakers

    transcript = store.get_transcript(episode_id)
    found = speakers.load(episode_id, settings)
    features = extract_features(transcript, chapters, ep.title, ep.description,
                                audio_path=settings.data_path / ep.audio_path,
                                speakers=speakers.summary(transcript, found) if found else None)
    store.save_features(episode_id, features.to_dict())
    from mediaflow.rss import soundbites

    soundbites(episode_id, settings)  # chosen now, with the embedder loaded, not when a feed is read
    return features


def needs_transcript(episode_id: str, settings: Settings) -> bool:
    """False when the stored transcript came from the configured model."""
    return get_store(settings.db_url).transcript_model(episode_id) != get_transcriber(settings).model_id


def needs_speakers(episode_id: str, settings: Settings) -> bool:
    """True when the episode has not been diarized with the current method."""
    from mediaflow.diarize import METHOD

    return get_store(settings.db_url).speakers_method(episode_id) != METHOD


def chapter_options(settings: Settings):
    from mediaflow.chapters import ChapterOptions

    return ChapterOptions(title_method=settings.chapter_titles)


def chapters_method(settings: Settings) -> str:
    """The chapter method these settings give: keyphrase titles, or the language model's (when installed),
    which also writes the episode's summary and search queries."""
    from mediaflow.chapters import MODEL_METHOD, method
    from mediaflow.queries import METHOD as QUERIES_METHOD

    chosen = method(chapter_options(settings))
    return f"{chosen}+{QUERIES_METHOD}" if chosen == MODEL_METHOD else chosen


def needs_chapters(episode_id: str, settings: Settings) -> bool:
    return get_store(settings.db_url).chapters_method(episode_id) != chapters_method(settings)


def needs_features(episode_id: str, settings: Settings) -> bool:
    from mediaflow.features import is_stale

    return is_stale(*(get_store(settings.db_url).features_version(episode_id) or (None, None)))


def mark_done(episode_id: str, settings: Settings) -> None:
    get_store(settings.db_url).update_episode(episode_id, status="done", error=None)


def describe(error: BaseException) -> str:
    """A reason a person can read: our errors say it themselves; others get their type too (a bare
    `SystemExit(1)` would otherwise read "1")."""
    if isinstance(error, MediaflowError):
        return str(error) or type(error).__name__
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def mark_failed(episode_id: str, error: BaseException, settings: Settings) -> None:
    """Record a readable reason on the episode; the previous transcript, if any, stays."""
    get_store(settings.db_url).update_episode(episode_id, status="failed", error=describe(error)[:2000])


# -- the chain -------------------------------------------------------------------------------------
@dataclass
class Run:
    """One episode's way through the chain, handed from step to step (and from task to task)."""

    episode_id: str
    force: bool = False  # redo every step even if its product is current
    redone: bool = False  # a product was (re)made in this run, so the steps after it follow
    speakers_redone: bool = False  # the speakers were (re)made: features follow, chapters need not
    seconds: dict[str, float] = field(default_factory=dict)  # step → seconds inside the library
    pids: dict[str, int] = field(default_factory=dict)  # step → the process that ran it
    result: TranscribeResult | None = None  # between transcribe and store only

    def timed(self, step: str, started: float) -> Run:
        self.seconds[step] = time.perf_counter() - started
        self.pids[step] = os.getpid()
        return self


def transcribe_step(run: Run, settings: Settings, progress: Progress | None = None) -> Run:
    if run.force or needs_transcript(run.episode_id, settings):
        run.result, run.redone = transcribe_episode(run.episode_id, settings, progress), True
    return run


def store_step(run: Run, settings: Settings) -> Run:
    if run.result is not None:
        store_transcript(run.episode_id, run.result, settings)
        run.result = None  # the transcript is in the database; don't carry it on
    return run


def speakers_step(run: Run, settings: Settings) -> Run:
    """Who speaks when, and their names (after the transcript: introductions name them)."""
    from mediaflow.speakers import identify

    if run.redone or needs_speakers(run.episode_id, settings):
        identify(run.episode_id, settings)
        run.speakers_redone = True  # features count speakers; chapters do not depend on them
    return run


def chapterize_step(run: Run, settings: Settings) -> Run:
    if run.redone or needs_chapters(run.episode_id, settings):
        chapterize_episode(run.episode_id, settings)
        run.redone = True
    return run


def featurize_step(run: Run, settings: Settings) -> Run:
    if run.redone or run.speakers_redone or needs_features(run.episode_id, settings):
        featurize_episode(run.episode_id, settings)
    return run


STEPS: dict[str, Callable[..., Run]] = {
    "transcribe": transcribe_step,
    "store": store_step,
    "speakers": speakers_step,
    "chapterize": chapterize_step,
    "featurize": featurize_step,
}


def run_step(name: str, run: Run, settings: Settings, **kwargs) -> Run:
    """One step of the chain, timed."""
    started = time.perf_counter()
    return STEPS[name](run, settings, **kwargs).timed(name, started)


def finish(run: Run, settings: Settings) -> None:
    """Mark the episode done once the chain has run (a no-op re-run of a done episode writes nothing)."""
    if run.redone or get_store(settings.db_url).get_episode(run.episode_id).status != "done":
        mark_done(run.episode_id, settings)


def process(episode_id: str, settings: Settings, force: bool = False, progress: Progress | None = None) -> Run:
    """The whole chain for a stored episode in this process, without Prefect (a failure marks it failed)."""
    run = Run(episode_id, force=force)
    try:
        for name in STEPS:
            run = run_step(name, run, settings, **({"progress": progress} if name == "transcribe" else {}))
        finish(run, settings)
    except Exception as exc:
        mark_failed(episode_id, exc, settings)
        raise
    return run
