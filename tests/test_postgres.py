"""The store and a real flow on PostgreSQL: the same code as on SQLite, on a throwaway server."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect, text

from conftest import SPEECH_TEXT, wer
from mediaflow import config, lease, resources
from mediaflow.errors import InvalidInput, NotFound
from mediaflow.store import ChaptersRow, Episode, FeaturesRow, Store, TranscriptRow
from mediaflow.transcript import Segment, Transcript, Word
from pg import create_database, pgvector_server, postgres_server, postgres_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.postgres


def _fields(h: str = "a" * 64, title: str = "Ep", **extra) -> dict:
    return dict(content_hash=h, title=title, source_name="ep.mp3", audio_path=f"audio/{h[:16]}.mp3",
                size_bytes=10, duration_s=1.0, sample_rate=16000, channels=1, codec="mp3", container="mp3",
                **extra)


def _transcript(text: str) -> Transcript:
    words = [Word(0.0, 0.5, text.split()[0], 0.9)]
    return Transcript([Segment(0, 0.0, 1.0, text, words=words)], language="en", duration=1.0, model="m1")


def _features(*terms: str) -> dict:
    return {"version": "f1", "model_id": "mini", "keywords": [{"text": t, "score": 0.5} for t in terms],
            "entities": [{"text": "Zoë Café", "label": "ORG"}], "embedding": [0.25, -1.5, 3e-7]}


@pytest.fixture
def store(postgres_url):
    s = Store(postgres_url)
    assert s.engine.dialect.name == "postgresql"
    yield s
    s.engine.dispose()


def test_episodes_and_transcripts_round_trip(store):
    a = store.add_episode(**_fields(show="Science Weekly"))
    assert store.add_episode(**_fields(title="Another title")).id == a.id
    assert store.count() == 1 and store.get_episode(a.id).title == "Ep"
    store.save_transcript(a.id, _transcript("first try"), loudness_dbfs=-20.5)
    store.save_transcript(a.id, _transcript("second try"))
    with store.session() as s:
        assert s.query(TranscriptRow).count() == 1
    got = store.get_transcript(a.id)
    assert got.text == "second try" and got.segments[0].words[0].text == "second"
    ep = store.get_episode(a.id)
    assert ep.status == "done" and ep.loudness_dbfs == -20.5 and store.transcript_model(a.id) == "m1"
    for i in range(4):
        store.add_episode(**_fields(h=f"{i}" * 64, title=f"Ep {i}"))
    store.update_episode("1" * 16, status="failed", error="x")
    rows, total = store.list_episodes(limit=2)
    assert total == 5 and len(rows) == 2
    assert [e.id for e in store.list_episodes(status="failed")[0]] == ["1" * 16]
    with pytest.raises(NotFound, match="no transcript yet"):
        store.get_transcript("2" * 16)


def test_chapters_features_and_search(store):
    a = store.add_episode(**_fields(title="Volcanoes of Iceland", description="Lava, 100% molten"))
    b = store.add_episode(**_fields(h="b" * 64, title="Coffee_history", show="Morning Show"))
    chapters = [{"start": 0.0, "end": 30.5, "title": "Intro — “quoted”"},
                {"start": 30.5, "end": 60.0, "title": "Ash"}]
    store.save_chapters(a.id, chapters, "m-v1")
    assert store.get_chapters(a.id) == (chapters, "m-v1") and store.chapters_method(a.id) == "m-v1"
    store.save_features(a.id, _features("magma", "tectonic plates"))
    store.save_features(b.id, _features("espresso"))
    assert store.get_features(a.id).data == _features("magma", "tectonic plates")  # JSON round trip, unicode
    assert store.features_version(a.id) == ("f1", "mini")

    def found(q):
        return {e.id for e in store.search_episodes(q)[0]}

    assert found("VOLCANO") == {a.id}  # case-insensitive
    assert found("tectonic") == {a.id} and found("espresso") == {b.id}  # keywords
    assert found("morning") == {b.id} and found("zoë") == {a.id, b.id}  # show; entities, non-ASCII
    assert found("100%") == {a.id} and found("0%") == {a.id} and found("%") == {a.id}  # % is literal
    assert found("e_h") == {b.id} and found("s_o") == set()  # so is _
    rows, total = store.search_episodes("o", limit=1)
    assert total == 2 and len(rows) == 1
    store.save_semantic_ids({a.id: "3-1-4"}, "cb1")
    assert {e.id: f.semantic_id for e, f in store.all_features()} == {a.id: "3-1-4", b.id: None}
    assert store.catalogue_stamp()[0] == 2


def test_deleting_an_episode_removes_its_rows_and_the_database_cascades(store):
    for h in ("a", "b"):
        ep = store.add_episode(**_fields(h=h * 64))
        store.save_transcript(ep.id, _transcript("x y"))
        store.save_chapters(ep.id, [{"start": 0.0, "end": 1.0, "title": "t"}], "m")
        store.save_features(ep.id, _features("k"))
    store.delete_episode("a" * 16)
    with store.session() as s:  # the ORM deletes only the episode row: ON DELETE CASCADE does the rest
        s.execute(text("DELETE FROM episodes WHERE id = :id"), {"id": "b" * 16})
    with store.session() as s:
        assert [s.query(t).count() for t in (Episode, TranscriptRow, ChaptersRow, FeaturesRow)] == [0, 0, 0, 0]
    with pytest.raises(NotFound):
        store.delete_episode("a" * 16)


def test_columns_a_newer_version_added_are_added_to_old_tables(postgres_url):
    old = Store(postgres_url)
    old.add_episode(**_fields())
    with old.engine.begin() as conn:  # the tables as an older version made them
        conn.execute(text("ALTER TABLE episodes DROP COLUMN show, DROP COLUMN published_at"))
        conn.execute(text("ALTER TABLE features DROP COLUMN semantic_id, DROP COLUMN codebook_version"))
    old.engine.dispose()

    new = Store(postgres_url)
    columns = {t: {c["name"] for c in inspect(new.engine).get_columns(t)} for t in ("episodes", "features")}
    assert {"show", "published_at"} <= columns["episodes"]
    assert {"semantic_id", "codebook_version"} <= columns["features"]
    assert new.get_episode("a" * 16).show is None  # existing rows kept, new columns empty
    new.update_episode("a" * 16, show="Later Show")
    assert new.get_episode("a" * 16).show == "Later Show"
    new.engine.dispose()


def test_stores_opened_at_once_on_an_empty_database_all_work(postgres_url):
    # Dask workers open the store together on first use; creating the tables must not race.
    errors, stores = [], []

    def open_store():
        try:
            stores.append(Store(postgres_url))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 4
    for s in stores:
        s.engine.dispose()


def test_process_episode_flow_stores_to_postgres(settings, postgres_url, speech_wav, monkeypatch):
    from flows.episodes import process_episode

    monkeypatch.setenv("MEDIAFLOW_DATABASE_URL", postgres_url)
    config.get_settings.cache_clear()
    try:
        s = config.get_settings()
        assert s.db_url == postgres_url
        episode_id = process_episode(str(speech_wav), title="Volcano news")
        assert process_episode(str(speech_wav)) == episode_id  # a re-run finds the same episode
        store = resources.get_store(postgres_url)
        assert store.count() == 1 and store.get_episode(episode_id).status == "done"
        assert wer(SPEECH_TEXT, store.get_transcript(episode_id).text) <= 0.1
        assert store.get_chapters(episode_id)[0] and store.get_features(episode_id).data["keywords"]
        assert episode_id in {e.id for e in store.search_episodes("volcano")[0]}
    finally:
        lease.stop_renewing(postgres_url)  # else it keeps knocking on the server this test is about to stop
        resources.get_store(postgres_url).engine.dispose()
        resources.get_store.cache_clear()
        config.get_settings.cache_clear()


@pytest.fixture
def pgvector_url(pgvector_server) -> str:
    return create_database(pgvector_server)


def test_pgvector_index_answers_as_the_brute_force_index(pgvector_url):
    import numpy as np

    from mediaflow.vector_index import BruteForceIndex
    from mediaflow.vector_index_pg import PgVectorIndex

    rng = np.random.default_rng(8)
    ids = [f"ep{i:04d}" for i in range(400)]
    vectors = rng.normal(size=(400, 384)).astype(np.float32)
    replacements = rng.normal(size=(50, 384)).astype(np.float32)
    exact, pg = BruteForceIndex(384), PgVectorIndex(pgvector_url, dim=384)
    for index in (exact, pg):
        index.upsert(ids, vectors)
        index.upsert(ids[:50], replacements)  # replaces, never adds
        index.remove(ids[-20:])
    assert len(pg) == len(exact) == 380 and "ep0001" in pg and "ep0399" not in pg
    np.testing.assert_allclose(pg.vector("ep0007"), exact.vector("ep0007"), atol=1e-6)
    for query in rng.normal(size=(10, 384)):
        skip = ids[:5]
        want, got = exact.search(query, k=10, exclude=skip), pg.search(query, k=10, exclude=skip)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    with pytest.raises(NotFound):
        pg.vector("ep0399")

    approx = PgVectorIndex(pg.engine, dim=384, table="episode_vectors_hnsw", hnsw=True)
    approx.upsert(ids, vectors)
    exact.upsert(ids, vectors)  # the same 400 in both
    queries = vectors[:20] + 0.5 * rng.normal(size=(20, 384)).astype(np.float32)
    hits = sum(len({i for i, _ in exact.search(q, 10)} & {i for i, _ in approx.search(q, 10)}) for q in queries)
    assert hits / 200 >= 0.9  # HNSW is approximate; on 400 vectors it should miss little
    pg.engine.dispose()


def test_similar_episodes_searched_in_pgvector_match_the_in_memory_index(pgvector_url):
    """`vector_index=pgvector`: the catalogue's neighbours come from the database table, exactly as the
    in-memory index finds them, and an episode deleted since is dropped from the table."""
    import numpy as np

    from mediaflow import catalogue
    from mediaflow.features import EpisodeFeatures
    from mediaflow.terms import Term

    store = Store(pgvector_url)
    rng = np.random.default_rng(3)
    common = rng.normal(size=384)  # one topic: cosines near 0.5, above the recommender's similarity floor
    common *= 20 / np.linalg.norm(common)
    ids = []
    for i in range(12):
        ep = store.add_episode(**_fields(h=f"{i:02d}" * 32, title=f"Episode {i}", show=f"Show {i % 3}"))
        v = (common + rng.normal(size=384)).astype(np.float32)
        f = EpisodeFeatures("features-v2", "sentence-transformers/all-MiniLM-L6-v2", 384, ep.title, "en", 1.0,
                            600.0, 1500, 150.0, 0.9, "words", v / np.linalg.norm(v),
                            keywords=[Term(f"topic {i % 4}", 0.5)])
        store.save_features(ep.id, f.to_dict())
        ids.append(ep.id)

    memory = config.Settings(database_url=pgvector_url, vector_index="memory")
    pg = config.Settings(database_url=pgvector_url, vector_index="pgvector")
    try:
        catalogue._cache.clear()
        want = [s.recommendation.episode_id for s in catalogue.similar_episodes(ids[0], memory, k=5)]
        catalogue._cache.clear()
        got = [s.recommendation.episode_id for s in catalogue.similar_episodes(ids[0], pg, k=5)]
        assert got == want and len(got) == 5
        index = catalogue.load_catalogue(pg).index
        assert type(index).__name__ == "PgVectorIndex" and len(index) == 12

        store.delete_episode(ids[1])
        catalogue._cache.clear()
        assert ids[1] not in {s.recommendation.episode_id for s in catalogue.similar_episodes(ids[0], pg, k=11)}
        assert len(catalogue.load_catalogue(pg).index) == 11 and ids[1] not in catalogue.load_catalogue(pg).index
    finally:
        catalogue._cache.clear()
        resources.get_store(pgvector_url).engine.dispose()
        resources.get_store.cache_clear()
        store.engine.dispose()
    with pytest.raises(InvalidInput, match="PostgreSQL"):
        catalogue.load_catalogue(config.Settings(database_url="sqlite:///:memory:", vector_index="pgvector"))
