"""Features, similar episodes, recommendations and semantic IDs through the flows and the API."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from conftest import running_server
from flows.catalogue import refresh_semantic_ids
from flows.episodes import process_episode
from mediaflow.resources import get_store
from test_features import chords

COFFEE = [
    "Coffee beans are roasted until they turn brown and smell of caramel.",
    "A barista grinds the coffee finely and pulls an espresso shot under pressure.",
    "Arabica coffee grows in the highlands, while robusta coffee tolerates heat.",
]


@pytest.fixture(scope="module")
def coffee_wav(media_dir):
    from mediaflow.audio import encode
    from mediaflow.tts.piper import PiperSpeaker

    sp = PiperSpeaker()
    path = media_dir / "coffee.wav"
    path.write_bytes(encode(sp.speak_paragraphs(COFFEE), sp.sample_rate, "wav"))
    return path


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """One data dir for the module: the three episodes are processed once, not per test."""
    from mediaflow import config

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAFLOW_DATA_DIR", str(tmp_path_factory.mktemp("catalogue") / "data"))
        mp.delenv("MEDIAFLOW_API_KEY", raising=False)
        config.get_settings.cache_clear()
        yield config.get_settings()
    config.get_settings.cache_clear()


@pytest.fixture(scope="module")
def three_episodes(settings, speech_wav, long_speech_wav, coffee_wav):
    ids = {
        "volcano": process_episode(str(speech_wav), title="Volcano at dawn", show="Earth Weekly"),
        "mixed": process_episode(str(long_speech_wav), title="Coffee, sleep and computers", show="The Curious Hour"),
        "coffee": process_episode(str(coffee_wav), title="How coffee is made", show="Cup by Cup"),
    }
    return ids


def test_features_similar_and_recommendations(api, settings, three_episodes):
    ids = three_episodes
    f = api.get(f"/episodes/{ids['coffee']}/features").json()
    assert f["model_id"].endswith("all-MiniLM-L6-v2") and f["dim"] == 384 and "embedding" not in f
    assert any("coffee" in k["text"].lower() for k in f["keywords"])
    assert f["duration_s"] > 5 and f["words_per_minute"] > 60 and f["audio"]["label"] == "speech"
    # two speech shares, two names: inside transcribed words (of all the time), and speech-like (of the sound)
    assert 0.5 < f["transcribed_fraction"] <= 1 and 0.5 < f["audio"]["speech_share_of_sound"] <= 1
    assert "speech_fraction" not in json.dumps(f)
    documented = api.get("/openapi.json").json()["components"]["schemas"]
    for schema, field in (("FeaturesOut", "transcribed_fraction"), ("AudioFeaturesOut", "speech_share_of_sound")):
        assert "share" in documented[schema]["properties"][field]["description"]
    assert "embedding" in api.get(f"/episodes/{ids['coffee']}/features", params={"vectors": True}).json()

    sim = api.get(f"/episodes/{ids['coffee']}/similar", params={"k": 2}).json()["items"]
    assert [s["episode_id"] for s in sim][0] == ids["mixed"]  # the other episode that talks about coffee
    assert all(ids["coffee"] != s["episode_id"] for s in sim)
    assert "Coffee, sleep and computers" in sim[0]["explanation"] or "coffee" in sim[0]["explanation"].lower()

    rec = api.post("/recommendations", json={"history": [{"episode_id": ids["coffee"], "fraction": 1.0}], "k": 5})
    items = rec.json()["items"]
    assert rec.status_code == 200 and ids["coffee"] not in [r["episode_id"] for r in items]
    assert items[0]["episode_id"] == ids["mixed"] and items[0]["reason"]["source_id"] == ids["coffee"]
    assert len(items[0]["explanation"].split()) <= 32

    newest = api.post("/recommendations", json={"history": []}).json()["items"]
    assert {r["reason"]["kind"] for r in newest} == {"newest"} and len(newest) == 3
    capped = api.post("/recommendations", json={"history": [], "per_show_cap": 1, "exclude": [ids["volcano"]]})
    assert [r["episode_id"] for r in capped.json()["items"]] and ids["volcano"] not in capped.text
    bad = api.post("/recommendations", json={"history": [{"episode_id": "x", "fraction": 3}]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    assert api.get("/episodes/nope/similar").status_code == 404

    # "why this?": the explanation spoken, cached, and its text in a header
    from urllib.parse import unquote

    from mediaflow.audio import decode

    url = f"/episodes/{ids['coffee']}/similar/{ids['mixed']}/narration"
    said = api.get(url, params={"voice": "hibari"})
    assert said.status_code == 200 and said.headers["content-type"] == "audio/mpeg", said.text
    text = unquote(said.headers["x-explanation"])
    assert "Coffee, sleep and computers" in text or "Coffee, Sleep and Computers" in text
    clip = settings.data_path / "clip.mp3"
    clip.write_bytes(said.content)
    assert 1.0 < len(decode(clip)) / 16000 < 20
    assert api.get(url, params={"voice": "hibari"}).content == said.content  # cached
    assert api.get(url, params={"voice": "nobody"}).status_code == 400
    itself = api.get(f"/episodes/{ids['coffee']}/similar/{ids['coffee']}/narration", params={"voice": "hibari"})
    assert itself.status_code == 400 and itself.json()["error"]["code"] == "invalid_input"
    assert "same episode" in itself.json()["error"]["message"]


def test_semantic_ids_are_unique_and_stable_across_a_rerun(settings, three_episodes):
    first = refresh_semantic_ids()
    store = get_store(settings.db_url)
    ids1 = {e.id: f.semantic_id for e, f in store.all_features()}
    assert first["episodes"] == 3 and len(set(ids1.values())) == 3 and None not in ids1.values()
    second = refresh_semantic_ids()
    ids2 = {e.id: f.semantic_id for e, f in store.all_features()}
    assert ids1 == ids2 and first["codebook_version"] == second["codebook_version"]
    assert (settings.data_path / "models" / "semantic-ids").is_dir()


def test_a_rerun_does_not_redo_features(settings, three_episodes, coffee_wav):
    store = get_store(settings.db_url)
    before = store.get_features(three_episodes["coffee"]).created_at
    process_episode(str(coffee_wav))
    assert store.get_features(three_episodes["coffee"]).created_at == before


LAVA = ["Lava from the volcano flowed down the mountain towards the sea.",
        "The eruption threw ash and hot rocks high into the sky.",
        "Geologists watched the crater with drones and thermal cameras."]


def test_silence_and_copies_are_never_suggested_through_the_api(tmp_path, media_dir, speech_wav, speech_mp3):
    """Silent files, a stray tone and a re-encode of one episode beside real speech, through the flow
    and the API: the silent ones get no neighbours and are nobody's, and two copies are one."""
    from mediaflow import config
    from mediaflow.audio import encode
    from mediaflow.tts.piper import PiperSpeaker

    sp = PiperSpeaker()
    lava = media_dir / "lava.wav"
    lava.write_bytes(encode(sp.speak_paragraphs(LAVA), sp.sample_rate, "wav"))
    silence, liar = tmp_path / "bad silence.wav", tmp_path / "bad liar.wav"
    silence.write_bytes(encode(np.zeros(16000 * 8, np.float32), 16000, "wav"))
    liar.write_bytes(encode(chords(8.0), 16000, "wav"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAFLOW_DATA_DIR", str(tmp_path / "data"))
        mp.delenv("MEDIAFLOW_API_KEY", raising=False)
        config.get_settings.cache_clear()
        try:
            ids = {name: process_episode(str(path)) for name, path in (
                ("volcano", speech_wav), ("volcano-mp3", speech_mp3), ("silence", silence), ("liar", liar),
                ("lava", lava))}  # processed in this order: the WAV is the older copy
            with running_server() as url, httpx.Client(base_url=url, timeout=60) as api:
                _check_odd_catalogue(api, ids)
        finally:
            config.get_settings.cache_clear()


def _check_odd_catalogue(api, ids: dict) -> None:
    def similar_to(name: str) -> list[str]:
        r = api.get(f"/episodes/{ids[name]}/similar", params={"k": 10})
        assert r.status_code == 200, r.text
        return [s["episode_id"] for s in r.json()["items"]]

    quiet = {ids["silence"], ids["liar"]}
    for name in ("silence", "liar"):
        assert api.get(f"/episodes/{ids[name]}/features").json()["word_count"] < 10
        assert similar_to(name) == []
    assert similar_to("lava")[0] == ids["volcano"]  # the older copy stands for both
    assert not {ids["volcano-mp3"], *quiet} & set(similar_to("lava"))
    assert not {ids["volcano-mp3"], *quiet} & set(similar_to("volcano"))  # nor is its copy a neighbour
    heard = api.post("/recommendations", json={"history": [{"episode_id": ids["lava"]}], "k": 10}).json()["items"]
    assert heard[0]["episode_id"] == ids["volcano"]
    assert not {ids["volcano-mp3"], *quiet} & {r["episode_id"] for r in heard}
    new = api.post("/recommendations", json={"history": [{"episode_id": ids["silence"]}], "k": 10}).json()["items"]
    assert {r["reason"]["kind"] for r in new} == {"newest"}  # a silent history says nothing: a new listener
    assert {r["episode_id"] for r in new} == {ids["volcano"], ids["lava"]}  # no silence, one copy, the older
    for a, b, why in (("silence", "liar", "no speech"), ("volcano", "volcano-mp3", "copy")):
        r = api.get(f"/episodes/{ids[a]}/similar/{ids[b]}/narration", params={"voice": "hibari"})
        assert r.status_code == 400 and why in r.json()["error"]["message"], r.text
