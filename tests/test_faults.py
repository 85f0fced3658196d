"""Faults survived: a worker killed mid-copy, mid-transcription and mid-commit; the database locked or
gone for a moment; the disk full while generated audio is written; reads hammered during a batch.

Afterwards there is one complete episode per input, no duplicates, no orphaned or half-written files.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import ffmpeg, wait_done
from flows.episodes import process_episode, process_folder
from mediaflow import store as store_mod
from mediaflow.audio import atomic_write_bytes, sha256_file
from mediaflow.errors import StorageError
from mediaflow.resources import get_store
from mediaflow.store import Store, TranscriptRow
from test_bad_audio import audio_files, leftovers

REPO = Path(__file__).resolve().parent.parent

# The worker: `process_episode` in its own process, optionally made to stop at one exact point
# (half of the audio copied into its temp file; Whisper's first segment decoded; the transcript's rows
# flushed but not committed) and signal it with a marker file, so the test can SIGKILL it there.
WORKER = r"""
import pathlib, sys, time
mode, source, marker = sys.argv[1:4]

def hold():
    pathlib.Path(marker).touch()
    time.sleep(900)  # until killed

if mode == "copy":
    import shutil
    real_copy = shutil.copyfile
    def half_copy(src, dst, *args, **kwargs):
        if not (str(dst).endswith(".tmp") and pathlib.Path(dst).parent.name == "audio"):
            return real_copy(src, dst, *args, **kwargs)
        data = pathlib.Path(src).read_bytes()
        with open(dst, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
        hold()
    shutil.copyfile = half_copy
elif mode == "transcribe":
    import faster_whisper
    real_transcribe = faster_whisper.BatchedInferencePipeline.transcribe
    def first_segment_then_hold(self, *args, **kwargs):
        segments, info = real_transcribe(self, *args, **kwargs)
        def held():
            for s in segments:
                yield s
                hold()  # one segment decoded, the rest of the speech not yet
        return held(), info
    faster_whisper.BatchedInferencePipeline.transcribe = first_segment_then_hold
elif mode == "commit":
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    from mediaflow.store import TranscriptRow
    @event.listens_for(Session, "after_flush")
    def flushed(session, _ctx):
        if any(isinstance(o, TranscriptRow) for o in session.new):
            hold()

from flows.episodes import process_episode
process_episode(source)
"""


def kill_worker_when(settings, tmp_path, mode: str, source: Path, ready) -> None:
    """Run the worker and SIGKILL it (and the Prefect server it started: its whole process group)
    as soon as `ready(marker)` is true."""
    marker = tmp_path / f"{mode}.reached"
    log = tmp_path / f"{mode}.log"
    env = {**os.environ, "MEDIAFLOW_DATA_DIR": str(settings.data_dir), "PREFECT_HOME": str(tmp_path / f"prefect-{mode}")}
    env.pop("PREFECT_API_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", WORKER, mode, str(source), str(marker)], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while not ready(marker):
            assert proc.poll() is None, f"the worker ended before the kill point:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the worker never reached the kill point"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def episode_id_of(source: Path) -> str:
    return sha256_file(source)[:16]


def assert_one_complete_episode(settings, source: Path) -> None:
    store = get_store(settings.db_url)
    eps, total = store.list_episodes()
    assert total == 1 and eps[0].id == episode_id_of(source)
    assert eps[0].status == "done" and eps[0].error is None
    assert store.get_transcript(eps[0].id).text.strip()
    with store.session() as s:
        assert s.query(TranscriptRow).count() == 1
    assert audio_files(settings) == [Path(eps[0].audio_path).name]
    assert (settings.data_path / eps[0].audio_path).read_bytes() == source.read_bytes()  # whole, not half
    assert leftovers(settings) == []


def test_worker_killed_mid_copy_then_rerun(settings, tmp_path, speech_wav):
    kill_worker_when(settings, tmp_path, "copy", speech_wav, lambda m: m.exists())
    half = [p for p in (settings.data_path / "audio").iterdir()]
    assert len(half) == 1 and half[0].name.endswith(".tmp"), half  # killed with the copy half written
    assert get_store(settings.db_url).count() == 0  # the row comes after the copy: none yet
    # the sweep takes temp files untouched for an hour; age this one so (a live writer's stays)
    old = time.time() - 2 * 3600
    os.utime(half[0], (old, old))
    live = settings.data_path / "audio" / ".someone-else.wav.x1y2.tmp"
    live.write_bytes(b"still being written")

    assert process_episode(str(speech_wav)) == episode_id_of(speech_wav)
    assert not half[0].exists() and live.exists()
    live.unlink()
    assert_one_complete_episode(settings, speech_wav)


def test_worker_killed_mid_transcription_then_rerun(settings, tmp_path, long_speech_wav):
    store = get_store(settings.db_url)
    # killed once Whisper has decoded the first segment of 70 s of speech, however fast the machine
    kill_worker_when(settings, tmp_path, "transcribe", long_speech_wav, lambda m: m.exists())
    ep = store.get_episode(episode_id_of(long_speech_wav))
    assert ep.status == "processing" and store.transcript_model(ep.id) is None  # killed before any transcript

    process_episode(str(long_speech_wav))
    assert_one_complete_episode(settings, long_speech_wav)


def test_worker_killed_mid_commit_then_rerun(settings, tmp_path, speech_wav):
    kill_worker_when(settings, tmp_path, "commit", speech_wav, lambda m: m.exists())
    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id_of(speech_wav))
    # the transcript's rows were written into the open transaction; the kill rolled them back
    assert ep.status == "processing" and store.transcript_model(ep.id) is None

    process_episode(str(speech_wav))
    assert_one_complete_episode(settings, speech_wav)


# -- the database locked or gone -----------------------------------------------------------------
@pytest.fixture
def quick_busy(monkeypatch):
    """SQLite gives up on a lock after 0.2 s instead of 30 s, so retries show within seconds."""
    def pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=200")
        cur.close()

    monkeypatch.setattr(store_mod, "_sqlite_pragmas", pragmas)


@contextmanager
def exclusive_lock(settings):
    """Another connection holds SQLite's write lock (BEGIN EXCLUSIVE); yields a function that lets go early."""
    get_store(settings.db_url)  # the database and its tables exist first
    con = sqlite3.connect(settings.data_path / "mediaflow.db", isolation_level=None, check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    done = threading.Lock()

    def release():
        if done.acquire(blocking=False):
            con.execute("ROLLBACK")

    try:
        yield release
    finally:
        release()
        con.close()


class Refusals(list):
    """The messages of the StorageErrors seen; `on_error` (if set) runs after each."""

    on_error = None


@pytest.fixture
def add_episode_errors(monkeypatch) -> Refusals:
    """What `Store.add_episode` refused with StorageError: each one a try that Prefect may retry."""
    seen = Refusals()
    real = Store.add_episode

    def spy(self, **fields):
        try:
            return real(self, **fields)
        except StorageError as exc:
            seen.append(str(exc))
            if seen.on_error:
                seen.on_error()
            raise

    monkeypatch.setattr(Store, "add_episode", spy)
    return seen


def test_a_lock_held_for_a_moment_is_retried_through(settings, quick_busy, add_episode_errors, speech_wav):
    with exclusive_lock(settings) as release:
        # the lock goes with the second refused write (the first retry's), so the second retry gets through
        add_episode_errors.on_error = lambda: release() if len(add_episode_errors) == 2 else None
        eid = process_episode(str(speech_wav))
    assert add_episode_errors == ["database unavailable: database is locked"] * 2
    assert_one_complete_episode(settings, speech_wav)
    assert eid == episode_id_of(speech_wav)


def test_a_lock_that_persists_fails_clearly_and_leaves_nothing(settings, quick_busy, add_episode_errors, speech_wav):
    with exclusive_lock(settings):
        state = process_episode(str(speech_wav), return_state=True)
    assert state.is_failed() and "database is locked" in state.message
    with pytest.raises(StorageError, match="database unavailable: database is locked"):
        state.result()
    assert len(add_episode_errors) == 3  # the first try and both retries
    assert get_store(settings.db_url).count() == 0
    assert audio_files(settings) == [], "the audio copy must not outlive the row that was never written"
    assert leftovers(settings) == []


def test_api_answers_503_while_the_database_is_locked_and_recovers(settings, quick_busy, api, speech_wav):
    with exclusive_lock(settings):
        r = api.post("/episodes", files={"file": ("talk.wav", speech_wav.read_bytes(), "audio/wav")})
        assert r.status_code == 503, r.text
        assert r.json()["error"] == {"code": "storage_error", "message": "database unavailable: database is locked"}
        assert api.get("/health").status_code == 200  # WAL: reads go on under a writer's lock
        assert api.get("/episodes").json()["total"] == 0
    assert audio_files(settings) == [] and leftovers(settings) == []
    r = api.post("/episodes", files={"file": ("talk.wav", speech_wav.read_bytes(), "audio/wav")})
    assert r.status_code == 202
    assert wait_done(api, r.json()["id"])["status"] == "done"
    assert_one_complete_episode(settings, speech_wav)


def test_database_gone_for_a_moment_while_storing_the_transcript(settings, monkeypatch, speech_wav):
    """Simulated at the driver: the next two connections fail as an unreachable SQLite file does."""
    store = get_store(settings.db_url)
    real_save, real_connect = Store.save_transcript, store.engine.dialect.connect
    left = {"failures": 2, "armed": False}

    def unreachable(*args, **kwargs):
        if left["failures"]:
            left["failures"] -= 1
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(*args, **kwargs)

    def save(self, *args, **kwargs):
        if not left["armed"]:  # first call: drop the pooled connections, so the next query must connect
            left["armed"] = True
            self.engine.dispose()
            monkeypatch.setattr(self.engine.dialect, "connect", unreachable)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Store, "save_transcript", save)
    process_episode(str(speech_wav))
    assert left["failures"] == 0  # both failed; the store task's retries carried on
    assert_one_complete_episode(settings, speech_wav)


# -- the disk full -------------------------------------------------------------------------------
@contextmanager
def full_disk(folder: Path, size: str = "64k"):
    """`folder` on a tiny tmpfs (we run as root); where mounting is not allowed, ENOSPC is simulated at
    fsync, the last step of every atomic write. Yields True when the full disk is real."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    with pytest.MonkeyPatch.context() as mp:
        if not mounted:
            def no_space(_fd):
                raise OSError(28, "No space left on device")

            mp.setattr(os, "fsync", no_space)
        try:
            yield mounted
        finally:
            if mounted:
                subprocess.run(["umount", str(folder)], check=True)


def test_disk_full_while_writing_generated_audio(settings, api, speech_wav):
    eid = process_episode(str(speech_wav), title="Ash at dawn")
    derived = settings.data_path / "derived"
    with full_disk(derived) as real:
        print("\nfull disk:", "a real 64 KiB tmpfs" if real else "simulated ENOSPC at fsync")
        old = derived / "kept.mp3"
        if real:
            atomic_write_bytes(old, b"old" * 5000)  # 15 kB fit
        else:
            old.write_bytes(b"old" * 5000)
        with pytest.raises(StorageError, match="no space left"):
            atomic_write_bytes(old, b"new" * 40_000)  # 120 kB do not
        assert old.read_bytes() == b"old" * 5000  # the old file is intact, whole
        assert [p.name for p in derived.iterdir()] == ["kept.mp3"]  # and no half-written temp file

        r = api.get(f"/episodes/{eid}/chapters.mp3")  # transcodes the WAV into derived/: too big
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "storage_error" and "no space left" in r.json()["error"]["message"]
        assert str(settings.data_path) not in r.text
        assert [p.name for p in derived.iterdir()] == ["kept.mp3"]
        assert api.get("/health").status_code == 200
        assert api.get(f"/episodes/{eid}").json()["status"] == "done"
        assert api.get(f"/episodes/{eid}/transcript").status_code == 200
        old.unlink()
    r = api.get(f"/episodes/{eid}/chapters.mp3")  # space again: it works
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
    assert leftovers(settings) == []


# -- load on reads while a batch is written -------------------------------------------------------
def test_reads_under_load_while_a_batch_is_processed(settings, api, speech_wav, tmp_path, monkeypatch):
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    for i, gain in enumerate((1.0, 0.8, 0.6)):  # three different files of the same talk
        ffmpeg("-i", str(speech_wav), "-af", f"volume={gain}", str(inbox / f"talk-{i}.wav"))
        os.utime(inbox / f"talk-{i}.wav", (time.time() - 60, time.time() - 60))  # settled in the inbox
    batch: dict = {}
    worker = threading.Thread(target=lambda: batch.update(process_folder()), daemon=True)

    # The first transcript to be stored waits until every reader has read twice more: reads are
    # answered while the batch is mid-way, however fast the machine (speeds are bench/service.py's).
    writing, finished = threading.Event(), threading.Event()
    rounds_while_writing = [0] * 4
    real_save = Store.save_transcript

    def save_transcript(self, *args, **kwargs):
        if not writing.is_set():
            writing.set()
            deadline = time.monotonic() + 120
            while min(rounds_while_writing) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Store, "save_transcript", save_transcript)
    results: list[tuple[str, int]] = []
    failures: list[str] = []
    lock = threading.Lock()
    base = str(api.base_url)

    def reader(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            i = 0
            while not finished.is_set():
                during = writing.is_set()
                listing = c.get("/episodes")
                ids = [e["id"] for e in listing.json().get("items", [])] if listing.status_code == 200 else []
                paths = ["/health", "/episodes?limit=5", "/episodes?q=talk"]
                if ids:
                    eid = ids[(i + k) % len(ids)]
                    paths += [f"/episodes/{eid}", f"/episodes/{eid}/transcript", f"/episodes/{eid}/chapters"]
                for path in [None, *paths]:
                    try:
                        r = listing if path is None else c.get(path)
                    except httpx.HTTPError as exc:
                        with lock:
                            failures.append(f"{path}: {type(exc).__name__}")
                        continue
                    with lock:
                        results.append((path or "/episodes", r.status_code))
                    # before an episode is done its transcript and chapters are honestly 404
                    if r.status_code >= 500 or (r.status_code >= 400 and r.json()["error"]["code"] != "not_found"):
                        with lock:
                            failures.append(f"{path}: {r.status_code} {r.text[:200]}")
                if during:
                    rounds_while_writing[k] += 1
                i += 1
                time.sleep(0.8)  # bounded: some 30 requests a second from the four readers

    readers = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(4)]
    for t in readers:
        t.start()
    worker.start()
    worker.join(timeout=400)
    finished.set()
    for t in readers:
        t.join(timeout=60)
    assert not worker.is_alive()
    assert failures == [], failures[:10]
    assert min(rounds_while_writing) >= 2, rounds_while_writing  # every reader, twice, with the batch mid-way
    assert sorted(batch["processed"]) == sorted(set(batch["processed"])) and len(batch["processed"]) == 3
    store = get_store(settings.db_url)
    eps, total = store.list_episodes()
    assert total == 3 and {e.id for e in eps} == set(batch["processed"])
    assert all(e.status == "done" for e in eps)
    with store.session() as s:
        assert s.query(TranscriptRow).count() == 3
    assert len(audio_files(settings)) == 3 and leftovers(settings) == []
    assert {p for p, _ in results} >= {"/episodes", "/health", "/episodes?limit=5", "/episodes?q=talk"}
    print(f"\n{len(results)} reads during the batch")
