"""Narrated "why this?": one sentence for the page and the speech, the key for synthesis, a bounded cache.

A real server with `MEDIAFLOW_API_KEY` set, over a catalogue of the twelve test episodes' features
(tests/test_features.py) stored without audio, so no transcription is needed. Narrations are spoken by
the fast voices (the shipped student by default, and hibari).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from urllib.parse import unquote

import httpx
import pytest

from conftest import running_server
from mediaflow import config, narration
from mediaflow.errors import InputTooLarge
from mediaflow.resources import get_store
from mediaflow.tts import voices
from test_features import corpus

KEY = "narration-key"
TITLES = {"volcanoes": "Hot Rocks", "coffee": "Cup by Cup", "football": "Match Day", "computers": "Silicon Stories"}


@pytest.fixture(scope="module")
def catalogue_ids(tmp_path_factory):
    """The data dir's store holds twelve episodes with features; yields {corpus id: episode id}."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAFLOW_DATA_DIR", str(tmp_path_factory.mktemp("narration-data")))
        mp.setenv("MEDIAFLOW_API_KEY", KEY)
        mp.delenv("MEDIAFLOW_TTS_STUDENT", raising=False)  # the shipped student is the default voice
        config.get_settings.cache_clear()
        store = get_store(config.get_settings().db_url)
        ids = {}
        for name, features in sorted(corpus().items()):
            topic, n = name.split("-")
            ep = store.add_episode(
                content_hash=hashlib.sha256(name.encode()).hexdigest(), title=f"{topic.title()} part {int(n) + 1}",
                show=TITLES[topic], source_name=f"{name}.mp3", audio_path=f"audio/{name}.mp3", size_bytes=1,
                duration_s=features.duration_s, sample_rate=16_000, channels=1, codec="mp3", container="mp3",
                status="done")
            store.save_features(ep.id, features.to_dict())
            ids[name] = ep.id
        yield ids
    config.get_settings.cache_clear()


@pytest.fixture(scope="module")
def base_url(catalogue_ids):
    with running_server() as url:
        yield url


@pytest.fixture
def api(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


def _files(pair: tuple[str, str]) -> list[str]:
    folder = config.get_settings().data_path / "narration"
    return sorted(p.name for p in folder.glob(f"{pair[0]}--{pair[1]}--*.mp3")) if folder.is_dir() else []


AUTH = {"Authorization": f"Bearer {KEY}"}


# -- one sentence -----------------------------------------------------------------------------------
def test_the_narration_speaks_the_sentence_similar_shows(api, catalogue_ids):
    src = catalogue_ids["coffee-0"]
    listed = api.get(f"/episodes/{src}/similar", params={"k": 3}).json()["items"]
    assert listed
    for item in listed:
        other = item["episode_id"]
        pair = api.get(f"/episodes/{src}/similar/{other}").json()
        assert pair["explanation"] == item["explanation"] and pair["reason"] == item["reason"]
        assert pair["narration"] == f"/episodes/{src}/similar/{other}/narration"
        said = api.get(pair["narration"], params={"voice": "hibari"}, headers=AUTH)
        assert said.status_code == 200 and said.headers["content-type"] == "audio/mpeg", said.text
        assert unquote(said.headers["x-explanation"]) == item["explanation"]
        meta = config.get_settings().data_path / "narration" / _files((src, other))[0].replace(".mp3", ".json")
        assert json.loads(meta.read_text())["text"] == item["explanation"]  # what the voice was given


def test_the_explanation_header_and_the_pair_endpoint_are_documented(api):
    spec = api.get("/openapi.json").json()
    op = spec["paths"]["/episodes/{episode_id}/similar/{other_id}/narration"]["get"]
    headers = op["responses"]["200"]["headers"]
    assert "percent-encoded" in headers["X-Explanation"]["description"] and "X-Voice" in headers
    assert "429" in op["responses"] and "401" in op["responses"]
    pair = spec["paths"]["/episodes/{episode_id}/similar/{other_id}"]["get"]
    assert pair["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SimilarPairOut")


# -- the key, a bounded cache -----------------------------------------------------------------------
def test_making_a_narration_needs_the_key_but_a_made_one_is_open(api, catalogue_ids):
    src, other = catalogue_ids["volcanoes-0"], catalogue_ids["volcanoes-1"]
    url = f"/episodes/{src}/similar/{other}/narration"
    refused = api.get(url, params={"speed": 0.71})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert _files((src, other)) == []  # nothing was synthesised for it
    made = api.get(url, params={"speed": 0.71}, headers=AUTH)
    assert made.status_code == 200 and made.headers["x-voice"] == voices.default_voice_id(config.get_settings())
    open_ = api.get(url, params={"speed": 0.71})  # made now: served without the key
    assert open_.status_code == 200 and open_.content == made.content
    wrong = api.get(url, params={"speed": 1.5}, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401


def test_speeds_and_voice_spellings_share_one_file(api, catalogue_ids):
    src, other = catalogue_ids["computers-0"], catalogue_ids["computers-1"]
    url = f"/episodes/{src}/similar/{other}/narration"
    first = api.get(url, params={"speed": 0.71, "voice": "hibari"}, headers=AUTH)
    assert first.status_code == 200 and first.headers["x-speed"] == "0.75"
    for speed, voice in ((0.75, "HIBARI"), (0.8, " Hibari "), (0.74, "hibari")):
        again = api.get(url, params={"speed": speed, "voice": voice})  # no key: each is the file made above
        assert again.status_code == 200 and again.content == first.content, (speed, voice)
    assert len(_files((src, other))) == 1
    assert api.get(url, params={"speed": 5}).status_code == 422
    long_name = api.get(url, params={"voice": "v" * 10_000}, headers=AUTH)
    assert long_name.status_code == 400 and len(long_name.json()["error"]["message"]) < 500


def test_a_narration_waits_its_turn_or_is_told_to_retry(api, catalogue_ids, env):
    """With synthesis full (one request speaking, no queue), a narration to make is refused with 429."""
    env("MEDIAFLOW_TTS_QUEUE", "0")
    src, other = catalogue_ids["football-0"], catalogue_ids["football-1"]
    hibari = voices.get_voice("hibari", threads=config.get_settings().tts_threads)
    holding, release = threading.Event(), threading.Event()
    real = hibari.model.from_ids

    def held(*args, **kwargs):
        holding.set()
        release.wait(120)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hibari.model, "from_ids", held)
        def speak() -> None:
            with httpx.Client(base_url=str(api.base_url), timeout=120) as other_client:
                other_client.post("/tts", json={"text": "Held.", "voice": "hibari"}, headers=AUTH)

        worker = threading.Thread(target=speak, daemon=True)
        worker.start()
        try:
            assert holding.wait(120)
            busy = api.get(f"/episodes/{src}/similar/{other}/narration", headers=AUTH, timeout=30)
            assert busy.status_code == 429 and busy.json()["error"]["code"] == "overloaded"
            assert int(busy.headers["retry-after"]) >= 1
        finally:
            release.set()
            worker.join(120)
    assert _files((src, other)) == []
    assert api.get(f"/episodes/{src}/similar/{other}/narration", headers=AUTH).status_code == 200


# -- the library ------------------------------------------------------------------------------------
def test_narration_output_is_bounded_in_the_library_too(catalogue_ids, env):
    env("MEDIAFLOW_TTS_MAX_AUDIO_S", "0.5")
    with pytest.raises(InputTooLarge, match="of audio"):
        narration.narrate(catalogue_ids["coffee-1"], catalogue_ids["coffee-2"], config.get_settings(), voice="hibari")
    assert narration.narration_speed(0.71) == 0.75 and narration.narration_speed(4.0) == 4.0


# -- the model's sentence -----------------------------------------------------------------------------
def _needs_the_model():
    from mediaflow import llm

    if not llm.installed():
        pytest.skip(f"the language model is not installed (missing: {', '.join(llm.missing_packages())})")


def _wait_for_background_sentences() -> None:
    from mediaflow import explain

    for fut in list(explain._inflight.values()):
        fut.result(timeout=900)


def test_the_models_sentence_is_what_recommendations_show_and_the_narration_speaks(api, catalogue_ids, env, tmp_path):
    """One model call for the pair: /recommendations writes and keeps it, /similar and the narration read it back."""
    from mediaflow import audio, llm
    from mediaflow.asr import Transcriber
    from mediaflow.explain import facts
    from mediaflow.recommend import Reason

    _needs_the_model()
    env("MEDIAFLOW_EXPLANATIONS", "model")
    env("MEDIAFLOW_EXPLANATION_WAIT_S", "600")  # two shared cores: a sentence can take a minute
    src = catalogue_ids["coffee-1"]
    rec = api.post("/recommendations", json={"history": [{"episode_id": src}], "k": 1}, timeout=700).json()["items"][0]
    other, text = rec["episode_id"], rec["explanation"]
    assert rec["explanation_method"] == "model", text
    f = facts(Reason.from_dict(rec["reason"]))
    assert text.startswith(f.opening) and llm.invented_names(text, f.text) == []
    kept = list((config.get_settings().data_path / "explanations").glob(f"{src}--{other}--*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["text"] == text

    pair = api.get(f"/episodes/{src}/similar/{other}").json()  # another kind of reason, the same facts
    assert pair["explanation"] == text and pair["explanation_method"] == "model"
    said = api.get(pair["narration"], params={"voice": "hibari"}, headers=AUTH)
    assert said.status_code == 200 and unquote(said.headers["x-explanation"]) == text
    assert len(list(kept[0].parent.glob(f"{src}--{other}--*.json"))) == 1  # read back, not written again

    mp3 = tmp_path / "why.mp3"
    mp3.write_bytes(said.content)
    heard = Transcriber("tiny.en", threads=2).transcribe(audio.decode(mp3)).text.lower()
    key = {w for w in re.findall(r"[a-z]{5,}", text[len(f.opening):].lower())} | {"enjoyed", "love"}
    assert len([w for w in key if w in heard]) >= 0.6 * len(key), (heard, key)


def test_a_sentence_not_ready_in_time_is_the_template_and_is_kept_for_the_next_request(api, catalogue_ids, env):
    from mediaflow import llm
    from mediaflow.explain import explain
    from mediaflow.recommend import Reason

    _needs_the_model()
    env("MEDIAFLOW_EXPLANATIONS", "model")
    env("MEDIAFLOW_EXPLANATION_WAIT_S", "0")
    src, other = catalogue_ids["volcanoes-1"], catalogue_ids["volcanoes-2"]
    before = llm.fallback_counts().get(("explanation", "timeout"), 0)
    first = api.get(f"/episodes/{src}/similar/{other}").json()
    assert first["explanation_method"] == "template"
    assert first["explanation"] == explain(Reason.from_dict(first["reason"])).text
    metrics = api.get("/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith("mediaflow_llm_fallbacks_total{")
                and 'kind="explanation"' in x and 'reason="timeout"' in x)
    assert float(line.rsplit(" ", 1)[1]) >= before + 1
    _wait_for_background_sentences()  # the model's sentence was finished in the background and kept
    again = api.get(f"/episodes/{src}/similar/{other}").json()
    assert again["explanation_method"] == "model" and again["explanation"] != first["explanation"]
    said = api.get(f"/episodes/{src}/similar/{other}/narration", params={"voice": "hibari"}, headers=AUTH)
    assert unquote(said.headers["x-explanation"]) == again["explanation"]
