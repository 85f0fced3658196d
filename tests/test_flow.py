"""The Prefect flows on the embedded server: idempotent, and bad input stores nothing."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import SPEECH_TEXT, wer
from flows.episodes import process_episode, process_folder
from mediaflow.errors import AudioDecodeError
from mediaflow.resources import get_store
from mediaflow.store import TranscriptRow


def _files(settings):
    return sorted(p.name for p in (settings.data_path / "audio").glob("*")) if (settings.data_path / "audio").exists() else []


def test_processing_the_same_file_twice_stores_one_episode(settings, speech_mp3):
    first = process_episode(str(speech_mp3))
    store = get_store(settings.db_url)
    stamp = store.get_episode(first).updated_at
    second = process_episode(str(speech_mp3))
    assert first == second
    assert store.count() == 1
    with store.session() as s:
        assert s.query(TranscriptRow).count() == 1
    ep = store.get_episode(first)
    assert ep.status == "done" and ep.updated_at == stamp  # the re-run skipped finished work
    assert ep.loudness_dbfs is not None and -40 < ep.loudness_dbfs < 0
    assert wer(SPEECH_TEXT, store.get_transcript(first).text) <= 0.1
    assert len(_files(settings)) == 1


def test_force_reprocesses_in_place(settings, speech_wav):
    from mediaflow.store import ChaptersRow, FeaturesRow

    eid = process_episode(str(speech_wav))
    store = get_store(settings.db_url)

    def made_at() -> tuple:
        with store.session() as s:
            return tuple(s.get(t, eid).created_at for t in (TranscriptRow, ChaptersRow, FeaturesRow))

    before = made_at()
    assert process_episode(str(speech_wav)) == eid and made_at() == before  # without force: nothing redone
    again = process_episode(str(speech_wav), force=True)
    after = made_at()
    assert again == eid and store.count() == 1
    assert all(a > b for a, b in zip(after, before))  # transcript, chapters and features all made anew
    with store.session() as s:
        assert s.query(TranscriptRow).count() == 1 and s.query(ChaptersRow).count() == 1
    assert store.get_episode(eid).status == "done"


def test_bad_input_fails_the_flow_and_stores_nothing(settings, tmp_path):
    bad = tmp_path / "episode.mp3"
    bad.write_bytes(os.urandom(20_000))
    with pytest.raises(AudioDecodeError):
        process_episode(str(bad))
    assert get_store(settings.db_url).count() == 0
    assert _files(settings) == []


def test_process_folder_picks_up_new_files_once(settings, speech_wav, speech_mp3, tmp_path):
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    shutil.copy(speech_wav, inbox / "a.wav")
    shutil.copy(speech_mp3, inbox / "b.mp3")
    (inbox / "broken.mp3").write_bytes(b"\x00" * 4000)
    (inbox / "notes.txt").write_text("ignored: not an audio extension")
    for p in inbox.iterdir():
        os.utime(p, (p.stat().st_mtime - 60, p.stat().st_mtime - 60))  # settled
    result = process_folder()
    assert len(result["processed"]) == 2
    assert list(result["failed"]) == ["broken.mp3"]
    assert get_store(settings.db_url).count() == 2
    again = process_folder()
    assert again["processed"] == [] and list(again["failed"]) == ["broken.mp3"]


def test_chapters_are_stored_and_a_rerun_replaces_them(settings, long_speech_wav):
    from mediaflow.store import ChaptersRow

    eid = process_episode(str(long_speech_wav), title="Coffee, sleep and computers")
    store = get_store(settings.db_url)
    chapters, method = store.get_chapters(eid)
    assert chapters and chapters[0]["start"] == 0.0
    assert chapters[-1]["end"] == pytest.approx(store.get_episode(eid).duration_s, abs=1.0)
    assert all(c["title"] and len(c["title"]) <= 40 for c in chapters)
    store.save_chapters(eid, [{"start": 0.0, "end": 1.0, "title": "stale"}], method="an-older-method")
    process_episode(str(long_speech_wav))  # the method changed: chapters are redone, not added
    with store.session() as s:
        assert s.query(ChaptersRow).count() == 1
    again, method2 = store.get_chapters(eid)
    assert method2 != "an-older-method" and again == chapters
