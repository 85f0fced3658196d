"""Files in the data dir: safe user paths, the inbox, derived files, deletes and temp-file sweeping.

Layout under the data dir: `audio/` (episodes, named by content hash), `derived/` (files made from
an episode, named `<episode id>-…`), `narration/` (`<source>--<target>--<key>.mp3`), `incoming/`
(uploads being received), `inbox/` (the watched folder), `trash/` (a delete in progress).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from pathlib import Path

from mediaflow.audio import MP3_BITRATES, sha256_file, transcode_mp3
from mediaflow.config import AUDIO_EXTENSIONS, Settings
from mediaflow.errors import InvalidInput
from mediaflow.resources import get_store

STALE_TEMP_S = 3600.0  # a temp file untouched this long belongs to a writer that died


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


def narration_path(settings: Settings, source_id: str, target_id: str, key: str) -> Path:
    return settings.data_path / "narration" / f"{source_id}--{target_id}--{key}.mp3"


def pair_files(episode_id: str, settings: Settings) -> list[Path]:
    """Every narration and kept explanation that names the episode, as source or target (for deletes)."""
    found: set[Path] = set()
    for root in (settings.data_path / "narration", settings.data_path / "explanations"):
        if root.is_dir():
            found |= set(root.glob(f"{episode_id}--*")) | set(root.glob(f"*--{episode_id}--*"))
    return sorted(found)


def sweep_stale_temp_files(settings: Settings, max_age_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove what killed writers left behind: half-written `.*.tmp` files beside audio and generated
    files, and upload folders under incoming/. A live writer's files are younger, so they stay."""
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


def pending_files(settings: Settings, folder: Path | None = None, settle_s: float = 2.0) -> list[Path]:
    """Audio files in the watched folder not yet stored as finished episodes."""
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


def chapters_mp3(episode_id: str, settings: Settings) -> Path:
    """An MP3 copy of the episode with ID3 CHAP/CTOC frames (cached until the chapters change)."""
    from mediaflow.chapters import Chapter
    from mediaflow.chapters.formats import write_id3_chapters

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    data, _ = store.get_chapters(episode_id)
    key = hashlib.sha256(json.dumps([ep.title, data, ep.duration_s, MP3_BITRATES]).encode()).hexdigest()[:12]
    out = settings.data_path / "derived" / f"{episode_id}-chapters-{key}.mp3"
    if out.exists():
        return out
    src = settings.data_path / ep.audio_path
    if ep.codec != "mp3" or "mp3" not in ep.container.split(","):  # an MP3 gets its tags, never a re-encode
        channels = 1 if ep.channels == 1 else 2
        mp3 = settings.data_path / "derived" / f"{episode_id}-{channels}ch-{MP3_BITRATES[channels]}.mp3"
        if not mp3.exists():  # transcode once, keeping stereo stereo
            transcode_mp3(src, mp3, channels)
        src = mp3
    return write_id3_chapters(src, out, [Chapter(**c) for c in data], title=ep.title, duration=ep.duration_s)


def speech_path(ep, settings: Settings) -> Path:
    """Where an episode's speech probabilities (`mediaflow.vad`) are kept: a derived file named after the
    audio they were computed on (audio is named by its content), so new audio never reads old ones."""
    return settings.data_path / "derived" / f"{ep.id}-speech-{Path(ep.audio_path).stem[:16]}.npy"


def delete_episode(episode_id: str, settings: Settings) -> None:
    """Remove an episode, its transcript, chapters, features and every file made from it.

    Files are first moved into a trash folder (a rename), then the rows go in one transaction;
    if that fails the files are moved back, so the episode is either whole or gone.
    """
    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    root = settings.data_path
    files = [root / ep.audio_path, *(root / "derived").glob(f"{episode_id}*"), *pair_files(episode_id, settings)]
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
