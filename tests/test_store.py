"""The store: one episode per content hash, transcripts replaced in one transaction."""

from __future__ import annotations

import pytest

from mediaflow.errors import NotFound
from mediaflow.store import Episode, Store, TranscriptRow
from mediaflow.transcript import Segment, Transcript


def _fields(h: str = "a" * 64, title: str = "Ep") -> dict:
    return dict(content_hash=h, title=title, source_name="ep.mp3", audio_path=f"audio/{h[:16]}.mp3",
                size_bytes=10, duration_s=1.0, sample_rate=16000, channels=1, codec="mp3", container="mp3")


def _transcript(text: str) -> Transcript:
    return Transcript([Segment(0, 0.0, 1.0, text)], language="en", duration=1.0, model="m1")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_same_content_hash_is_one_episode(store):
    a = store.add_episode(**_fields())
    b = store.add_episode(**_fields(title="Another title"))
    assert a.id == b.id == "a" * 16
    assert store.count() == 1 and store.get_episode(a.id).title == "Ep"


def test_saving_a_transcript_twice_replaces_it(store):
    ep = store.add_episode(**_fields())
    store.save_transcript(ep.id, _transcript("first"), loudness_dbfs=-20.0)
    store.save_transcript(ep.id, _transcript("second"))
    with store.session() as s:
        assert s.query(TranscriptRow).count() == 1
    assert store.get_transcript(ep.id).text == "second"
    got = store.get_episode(ep.id)
    assert got.status == "done" and got.loudness_dbfs == -20.0


def test_a_failed_transaction_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError):
        with store.session() as s:
            s.add(Episode(id="b" * 16, **_fields("b" * 64)))
            s.flush()
            raise RuntimeError("crash mid-write")
    assert store.count() == 0


def test_missing_things_are_not_found(store):
    with pytest.raises(NotFound):
        store.get_episode("nope")
    ep = store.add_episode(**_fields())
    with pytest.raises(NotFound, match="no transcript yet"):
        store.get_transcript(ep.id)


def test_list_is_paginated_and_filtered(store):
    for i in range(5):
        store.add_episode(**_fields(h=f"{i}" * 64, title=f"Ep {i}"))
    store.update_episode("1" * 16, status="done")
    rows, total = store.list_episodes(limit=2, offset=0)
    assert total == 5 and len(rows) == 2
    rows, total = store.list_episodes(limit=10, offset=4)
    assert len(rows) == 1
    rows, total = store.list_episodes(status="done")
    assert total == 1 and rows[0].id == "1" * 16


def test_deleting_an_episode_cascades_to_its_transcript(store):
    ep = store.add_episode(**_fields())
    store.save_transcript(ep.id, _transcript("x"))
    with store.session() as s:
        s.delete(s.get(Episode, ep.id))
    with store.session() as s:
        assert s.query(TranscriptRow).count() == 0
