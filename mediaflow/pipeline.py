"""The episode pipeline as plain steps: ingest → transcribe → store. Flows and the CLI call these."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from mediaflow.asr import Progress, Transcriber
from mediaflow.audio import AudioInfo, LoudnessMeter, atomic_copy, probe, sha256_file
from mediaflow.config import AUDIO_EXTENSIONS, Settings
from mediaflow.errors import InvalidInput, NotFound
from mediaflow.store import EPISODE_ID_LEN, Episode, Store
from mediaflow.transcript import Transcript


_new_store = threading.Lock()


@lru_cache(maxsize=8)
def get_store(url: str) -> Store:
    """One `Store` (engine and connection pool) per database URL and process."""
    with _new_store:  # concurrent first requests would each create the tables, and all but one fail
        return Store(url)


@lru_cache(maxsize=2)
def _transcriber(model: str, compute_type: str, threads: int, batch_size: int, beam_size: int, window_s: float,
                 language):
    return Transcriber(model, compute_type, threads, batch_size, beam_size, window_s=window_s, language=language)


def get_transcriber(settings: Settings) -> Transcriber:
    """The process's Whisper model for these settings, loaded once."""
    return _transcriber(
        settings.asr_model, settings.asr_compute_type, settings.threads,
        settings.asr_batch_size, settings.asr_beam_size, settings.asr_window_s, settings.asr_language,
    )


def resolve_in_data_dir(settings: Settings, path: str | Path) -> Path:
    """Resolve a user-given path and refuse anything outside the data dir (`..`, absolute, symlinks)."""
    root = settings.data_path
    try:
        candidate = (root / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
        candidate.exists()  # a NUL byte or an over-long name fails here rather than in the caller
    except (OSError, ValueError):
        raise InvalidInput("the path is not usable: it has a NUL byte or a name too long") from None
    if candidate != root and root not in candidate.parents:
        raise InvalidInput("the path must be inside the data dir")
    return candidate


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
) -> Episode:
    """Validate the audio, copy it into the data dir under its content hash, and record the episode.

    Raises a `MediaflowError` before anything is written if the input is not usable audio.
    Idempotent: the same bytes give back the same episode.
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


STALE_TEMP_S = 3600.0  # a temp file untouched this long belongs to a writer that died


def sweep_stale_temp_files(settings: Settings, max_age_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove what killed writers left behind: half-written `.*.tmp` files beside audio and generated
    files, and upload folders under incoming/. A live writer's files are younger, so they stay."""
    import shutil
    import time

    root = settings.data_path
    cutoff = time.time() - max_age_s
    found = [p for d in ("audio", "derived", "narration") if (root / d).is_dir() for p in (root / d).glob(".*.tmp")]
    if (root / "incoming").is_dir():
        found += list((root / "incoming").iterdir())
    removed = []
    for p in found:
        try:
            folder = p.is_dir() and not p.is_symlink()
            # an upload folder is as fresh as the file still being streamed into it
            touched = max([p.lstat().st_mtime, *(c.lstat().st_mtime for c in p.iterdir())] if folder
                          else [p.lstat().st_mtime])
            if touched < cutoff:
                shutil.rmtree(p) if folder else p.unlink()
                removed.append(p)
        except FileNotFoundError:  # its writer finished (or another sweep took it) meanwhile
            pass
    return removed


def needs_transcript(episode: Episode, settings: Settings) -> bool:
    """False when the stored transcript came from the configured model: re-runs skip finished work."""
    store = get_store(settings.db_url)
    return store.transcript_model(episode.id) != get_transcriber(settings).model_id


@dataclass
class TranscribeResult:
    transcript: Transcript
    loudness_dbfs: float | None
    peak_dbfs: float | None


def transcribe_episode(episode_id: str, settings: Settings, progress: Progress | None = None) -> TranscribeResult:
    """Transcribe the stored audio of an episode (streamed; loudness measured in the same pass)."""
    store = get_store(settings.db_url)
    ep = store.update_episode(episode_id, status="processing", error=None)
    meter = LoudnessMeter()
    transcript = get_transcriber(settings).transcribe(
        settings.data_path / ep.audio_path,
        progress=progress,
        max_duration_s=settings.max_duration_h * 3600,
        meter=meter,
    )
    return TranscribeResult(transcript, meter.loudness_dbfs, meter.peak_dbfs)


def store_transcript(episode_id: str, result: TranscribeResult, settings: Settings) -> Episode:
    """Save the transcript and the measured loudness with the episode, atomically."""
    store = get_store(settings.db_url)
    store.save_transcript(
        episode_id, result.transcript, status="processing",
        loudness_dbfs=result.loudness_dbfs, peak_dbfs=result.peak_dbfs,
    )
    return store.get_episode(episode_id)


def mark_done(episode_id: str, settings: Settings) -> None:
    get_store(settings.db_url).update_episode(episode_id, status="done", error=None)


def needs_chapters(episode: Episode, settings: Settings) -> bool:
    from mediaflow.chapters import METHOD

    return get_store(settings.db_url).chapters_method(episode.id) != METHOD


def chapterize_episode(episode_id: str, settings: Settings) -> list:
    """Chapters from the stored transcript, conditioned on the episode's title and description; stored."""
    from mediaflow.chapters import METHOD, chapterize

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    chapters = chapterize(store.get_transcript(episode_id), title=ep.title, description=ep.description)
    store.save_chapters(episode_id, [c.to_dict() for c in chapters], METHOD)
    return chapters


def needs_features(episode: Episode, settings: Settings) -> bool:
    """True when there are no features, or they came from another method or embedding model."""
    from mediaflow.embed import MODEL_ID
    from mediaflow.features import FEATURES_VERSION

    return get_store(settings.db_url).features_version(episode.id) != (FEATURES_VERSION, MODEL_ID)


def featurize_episode(episode_id: str, settings: Settings):
    """Content features from the transcript, chapters and audio; stored, replacing older ones."""
    from mediaflow.features import extract_features

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    try:
        chapters, _ = store.get_chapters(episode_id)
    except NotFound:
        chapters = []
    features = extract_features(store.get_transcript(episode_id), chapters, ep.title, ep.description,
                                audio_path=settings.data_path / ep.audio_path)
    store.save_features(episode_id, features.to_dict())
    return features


def chapters_mp3(episode_id: str, settings: Settings) -> Path:
    """An MP3 copy of the episode with ID3 CHAP/CTOC frames (cached until the chapters change)."""
    import hashlib
    import json

    from mediaflow.audio import atomic_write_bytes, decode
    from mediaflow.chapters import Chapter
    from mediaflow.chapters.formats import write_id3_chapters

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    data, _ = store.get_chapters(episode_id)
    key = hashlib.sha256(json.dumps([ep.title, data]).encode()).hexdigest()[:12]
    out = settings.data_path / "derived" / f"{episode_id}-chapters-{key}.mp3"
    if out.exists():
        return out
    src = settings.data_path / ep.audio_path
    if ep.codec != "mp3":  # transcode once to a podcast-friendly MP3
        from mediaflow.audio import encode

        mp3 = settings.data_path / "derived" / f"{episode_id}.mp3"
        if not mp3.exists():
            atomic_write_bytes(mp3, encode(decode(src, sample_rate=44100), 44100, "mp3", bitrate="96k"))
        src = mp3
    return write_id3_chapters(src, out, [Chapter(**c) for c in data], title=ep.title)


def delete_episode(episode_id: str, settings: Settings) -> None:
    """Remove an episode, its transcript, chapters, features and every file made from it.

    Files are first moved into a trash folder (a rename), then the rows go in one transaction;
    if that fails the files are moved back, so the episode is either whole or gone.
    """
    import shutil
    import uuid

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    root = settings.data_path
    from mediaflow.narration import narration_files

    files = [root / ep.audio_path, *(root / "derived").glob(f"{episode_id}*"), *narration_files(episode_id, settings)]
    trash = root / "trash" / uuid.uuid4().hex
    moved: list[tuple[Path, Path]] = []
    try:
        for f in files:
            if f.is_file():
                trash.mkdir(parents=True, exist_ok=True)
                dst = trash / f"{len(moved)}-{f.name}"
                f.rename(dst)
                moved.append((f, dst))
        store.delete_episode(episode_id)
    except BaseException:
        for original, dst in moved:
            dst.rename(original)
        raise
    finally:
        if trash.exists():
            shutil.rmtree(trash, ignore_errors=True)


def mark_failed(episode_id: str, error: BaseException, settings: Settings) -> None:
    """Record a readable reason on the episode; the previous transcript, if any, stays."""
    store = get_store(settings.db_url)
    store.update_episode(episode_id, status="failed", error=str(error)[:2000] or type(error).__name__)


def pending_files(settings: Settings, folder: Path | None = None, settle_s: float = 2.0) -> list[Path]:
    """Audio files in the watched folder not yet stored as finished episodes."""
    import time

    folder = folder or settings.inbox_dir
    if not folder.is_dir():
        return []
    store = get_store(settings.db_url)
    out = []
    now = time.time()
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.suffix.lower() not in AUDIO_EXTENSIONS or p.name.startswith("."):
            continue
        if now - p.stat().st_mtime < settle_s:  # still being copied in
            continue
        ep = store.get_by_hash(sha256_file(p))
        if ep is None or ep.status != "done":
            out.append(p)
    return out
