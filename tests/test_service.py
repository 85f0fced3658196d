"""The operator-facing API: search, audio with ranges, ETags, delete, reprocess, metrics, read auth."""

from __future__ import annotations

import time

from flows.episodes import process_episode
from mediaflow import pipeline
from mediaflow import config
from mediaflow.resources import get_store
from conftest import wait_done


def test_search_audio_etags_metrics_and_delete(api, settings, speech_wav, monkeypatch):
    eid = process_episode(str(speech_wav), title="Ash over the village", show="Earth Weekly")
    other = settings.data_path / "x.wav"

    # search: title, show, and the keywords the features found
    assert [e["id"] for e in api.get("/episodes", params={"q": "ASH over"}).json()["items"]] == [eid]
    assert api.get("/episodes", params={"q": "earth weekly"}).json()["total"] == 1
    assert api.get("/episodes", params={"q": "volcano"}).json()["total"] == 1  # said, not in the title
    assert api.get("/episodes", params={"q": "100%_"}).json()["total"] == 0  # wildcards are literal

    # the audio, whole and by range (players seek with ranges)
    whole = api.get(f"/episodes/{eid}/audio")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    part = api.get(f"/episodes/{eid}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]

    # ETags: a second read with the tag costs a 304 and no body
    first = api.get(f"/episodes/{eid}/chapters", params={"format": "podcast"})
    tag = first.headers["etag"]
    again = api.get(f"/episodes/{eid}/chapters", params={"format": "podcast"}, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    t = api.get(f"/episodes/{eid}/transcript")
    assert api.get(f"/episodes/{eid}/transcript", headers={"If-None-Match": t.headers["etag"]}).status_code == 304
    assert api.get(f"/episodes/{eid}/transcript", params={"format": "vtt"},
                   headers={"If-None-Match": t.headers["etag"]}).status_code == 200

    metrics = api.get("/metrics").text
    assert 'mediaflow_http_requests_total{method="GET",route="/episodes/{episode_id}/chapters",status="304"}' in metrics
    assert "mediaflow_http_request_seconds_bucket" in metrics

    # delete needs the key when one is set, and takes everything with it
    monkeypatch.setenv("MEDIAFLOW_API_KEY", "k3y")
    config.get_settings.cache_clear()
    assert api.delete(f"/episodes/{eid}").status_code == 401
    api.get(f"/episodes/{eid}/chapters.mp3")  # a derived file to clean up
    kept = {d: settings.data_path / d for d in ("narration", "explanations")}
    for d, folder in kept.items():  # what a "why this?" for a pair leaves: the episode as source, as target
        folder.mkdir(exist_ok=True)
        for name in (f"{eid}--b--k.x", f"a--{eid}--k.x", "a--b--k.x"):
            (folder / name).write_text(d)
    audio = settings.data_path / get_store(settings.db_url).get_episode(eid).audio_path
    r = api.delete(f"/episodes/{eid}", headers={"Authorization": "Bearer k3y"})
    assert r.status_code == 204
    assert api.get(f"/episodes/{eid}").status_code == 404
    for product in ("transcript", "chapters", "features", "similar"):
        assert api.get(f"/episodes/{eid}/{product}").status_code == 404, product
    assert not audio.exists() and not list((settings.data_path / "derived").glob(f"{eid}*"))
    assert all(sorted(p.name for p in folder.iterdir()) == ["a--b--k.x"] for folder in kept.values())
    assert not (settings.data_path / "trash").exists() or not any((settings.data_path / "trash").iterdir())
    assert api.delete(f"/episodes/{eid}", headers={"Authorization": "Bearer k3y"}).status_code == 404
    assert not other.exists()


def test_reads_can_require_the_key_too(api, settings, monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_API_KEY", "k3y")
    monkeypatch.setenv("MEDIAFLOW_READ_REQUIRES_KEY", "true")
    config.get_settings.cache_clear()
    assert api.get("/episodes").status_code == 401
    assert api.get("/episodes", headers={"Authorization": "Bearer k3y"}).status_code == 200
    assert api.get("/health").status_code == 200  # liveness stays open for probes
    for public in ("/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui-bundle.js"):
        assert api.get(public).status_code == 200, public  # the API's own documentation stays readable


def test_the_api_docs_work_offline(api):
    """/docs and /redoc load their scripts from this server, never a CDN."""
    for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
        html = api.get(page).text
        assert "cdn." not in html and "fonts.googleapis" not in html and "/openapi.json" in html
        for name in assets:
            assert f"/docs-assets/{name}" in html
            r = api.get(f"/docs-assets/{name}")
            assert r.status_code == 200 and len(r.content) > 100_000
            assert r.headers["content-type"].startswith("text/css" if name.endswith(".css") else "text/javascript")
    assert b"SwaggerUIBundle" in api.get("/docs-assets/swagger-ui-bundle.js").content
    redoc = api.get("/docs-assets/redoc.standalone.js").text
    assert "cdn.redoc.ly" not in redoc and "/favicon.ico" in redoc  # its sidebar logo comes from here too
    for bad in ("/docs-assets/core.py", "/docs-assets/..%2f__init__.py", "/docs-assets/%2e%2e/consts.py"):
        r = api.get(bad)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", bad
    spec = api.get("/openapi.json").json()
    assert spec["info"]["title"] == "mediaflow"
    for body in ("SpeechIn", "OpenAISpeechIn", "RecommendationRequest", "EpisodeOut"):
        assert spec["components"]["schemas"][body].get("examples"), body  # /docs shows a filled-in example
    for path in ("/episodes", "/health", "/no/such/route", "/docs"):  # no response is sniffed as something else
        assert api.get(path).headers["x-content-type-options"] == "nosniff", path


def test_the_openapi_document_declares_the_bearer_key(api):
    spec = api.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "`Authorization: Bearer <MEDIAFLOW_API_KEY>`, when the server has a key."}
    upload = spec["paths"]["/episodes"]["post"]
    assert upload["security"] == [{"apiKey": []}]  # /docs shows the lock and its Authorize button
    for path, item in spec["paths"].items():  # the header is the scheme's, never a plain parameter
        for op in item.values():
            names = [p["name"].lower() for p in op.get("parameters", [])]
            assert "authorization" not in names, (path, names)
    assert "security" not in spec["paths"]["/episodes/{episode_id}"]["get"]  # reads are open by default


def test_head_of_the_audio_answers_like_get_without_a_body(api, settings, speech_wav):
    eid = pipeline.ingest(speech_wav, settings).id
    got, head = api.get(f"/episodes/{eid}/audio"), api.head(f"/episodes/{eid}/audio")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] == str(speech_wav.stat().st_size)
    assert head.headers["content-type"] == got.headers["content-type"] == "audio/wav"
    assert head.headers["accept-ranges"] == "bytes"
    assert api.head("/episodes/nope/audio").status_code == 404


def _flow_runs(api) -> dict[str, float]:
    """mediaflow_flow_runs_total by state (the registry lives as long as the test process)."""
    prefix = 'mediaflow_flow_runs_total{flow="process-episode",state="'
    return {ln[len(prefix):].split('"')[0]: float(ln.split()[-1])
            for ln in api.get("/metrics").text.splitlines() if ln.startswith(prefix)}


def test_reprocess_runs_the_flow_again(api, settings, speech_wav):
    eid = process_episode(str(speech_wav))
    before = get_store(settings.db_url).get_episode(eid).updated_at
    runs = _flow_runs(api)
    r = api.post(f"/episodes/{eid}/reprocess")
    assert r.status_code == 202 and r.headers["location"] == f"/episodes/{eid}"
    done = wait_done(api, eid)
    assert done["status"] == "done" and get_store(settings.db_url).get_episode(eid).updated_at > before
    # The API's flow runs are counted by outcome (the count follows the stored status by a moment).
    for _ in range(100):
        after = _flow_runs(api)
        if after.get("completed", 0) > runs.get("completed", 0):
            break
        time.sleep(0.1)
    assert after.get("completed", 0) == runs.get("completed", 0) + 1
    assert after.get("started", 0) == runs.get("started", 0) + 1 and after.get("failed", 0) == runs.get("failed", 0)
