"""Chapters the creator already wrote: `00:00 Title` lines in a description, or the feed's JSON chapters
(fetched under the feeds' SSRF rules), become the episode's chapters, marked `source: creator`, with ours
kept beside them as `generated`."""

from __future__ import annotations

import http.server
import json
import threading
from functools import partial

import httpx
import pytest

from conftest import running_server
from mediaflow import feeds, pipeline
from mediaflow.chapters.creator import fetch_json, from_description, from_json
from mediaflow.resources import get_store


def spans(chapters):
    return [(c.start, c.end, c.title) for c in chapters]


def test_description_lines_in_the_forms_creators_write():
    text = "Today on the show:\n00:00 Intro\n03:15 - The volcano\n(12:40) Drones & lava\n[1:02:03] Q&A\nThanks!"
    assert spans(from_description(text, 4000)) == [
        (0, 195, "Intro"), (195, 760, "The volcano"), (760, 3723, "Drones & lava"), (3723, 4000, "Q&A")]
    html = "<p>Chapters:</p><p>0:05 \u2013 Cold open<br>2:00 | Coffee<br/>4:30: Sleep &amp; memory</p>"
    assert spans(from_description(html, 600)) == [(0, 120, "Cold open"), (120, 270, "Coffee"),
                                                  (270, 600, "Sleep & memory")]
    bullets = "\u2022 00:00 Start\n\u2022 00:30 Middle\n\u2022 01:00 End\n\u2022 25:00 After the audio ends"
    assert [c.title for c in from_description(bullets, 120)] == ["Start", "Middle", "End"]


@pytest.mark.parametrize("text", [
    "00:00 Intro\n05:00 Outro",  # two lines are no chapter list
    "02:00 Intro\n05:00 Middle\n09:00 Outro",  # does not start near 0
    "00:00 Intro\n09:00 Middle\n05:00 Outro",  # not increasing
    "We met at 10:30 and left at 11:45, then 12:15 came.",  # times in prose
    "00:00 Intro\n00:30 Middle\n01:00 End",  # fine, but the audio is 40 s: two are left
    None, "",
])
def test_what_is_not_a_chapter_list_is_left_alone(text):
    assert from_description(text, 40) is None


def test_json_chapters_skip_entries_that_are_not_chapters():
    doc = {"version": "1.2.0", "chapters": [
        {"startTime": 0, "title": "Welcome"}, {"startTime": 30.5, "title": "Artwork only", "toc": False},
        {"startTime": 61, "title": "Coffee"}, {"startTime": "x", "title": "Bad"}, {"startTime": 90, "title": ""},
        {"startTime": 500, "title": "After the end"}]}
    assert spans(from_json(json.dumps(doc), 300)) == [(0, 61, "Welcome"), (61, 300, "Coffee")]
    for bad in (b"<html>", b"[]", b'{"chapters": "no"}', b'{"chapters": [{"startTime": 0, "title": "One"}]}'):
        assert from_json(bad, 300) is None


def test_an_upload_with_chapter_lines_keeps_them_and_ours_beside_them(speech_wav, settings):
    description = "The volcano story.\n0:00 Eruption\n0:04 - Drones and cameras\n(0:08) The harvest"
    ep = pipeline.ingest(speech_wav, settings, title="Ash", description=description)
    pipeline.process(ep.id, settings)
    with running_server() as url, httpx.Client(base_url=url, timeout=60) as api:
        body = api.get(f"/episodes/{ep.id}/chapters").json()
        podcast = api.get(f"/episodes/{ep.id}/chapters?format=podcast").json()
    assert body["source"] == "creator"
    assert [(c["start"], c["title"]) for c in body["chapters"]] == [
        (0, "Eruption"), (4, "Drones and cameras"), (8, "The harvest")]
    assert body["generated"] and all({"start", "end", "title"} <= set(c) for c in body["generated"])
    assert [c["title"] for c in podcast["chapters"]] == ["Eruption", "Drones and cameras", "The harvest"]
    pipeline.process(ep.id, settings, force=True)  # a re-run keeps them
    assert get_store(settings.db_url).get_chapters(ep.id)[0] == body["chapters"]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_a_feeds_json_chapters_are_fetched_and_used(tmp_path, speech_mp3, settings, env):
    root = tmp_path / "site"
    root.mkdir()
    (root / "ep.mp3").write_bytes(speech_mp3.read_bytes())
    (root / "ep.json").write_text(json.dumps({"version": "1.2.0", "chapters": [
        {"startTime": 0, "title": "Dawn"}, {"startTime": 6.5, "title": "Measurements"}]}))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (root / "feed.xml").write_text(
        f'<?xml version="1.0"?><rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0"><channel>'
        f'<title>Ash</title><item><title>Ash</title><guid>a</guid><description>0:00 Not these\n0:03 Nor\n0:05 These'
        f'</description><enclosure url="{base}/ep.mp3" type="audio/mpeg"/>'
        f'<podcast:chapters url="{base}/ep.json" type="application/json+chapters"/></item></channel></rss>')
    try:
        # Under the default SSRF rules a loopback chapters URL is refused, and ours stay.
        assert fetch_json(f"{base}/ep.json", 12, settings) is None
        env("MEDIAFLOW_ALLOW_PRIVATE_URLS", "true")
        from mediaflow.config import get_settings

        s = get_settings()
        row = feeds.add(f"{base}/feed.xml", s)
        (item,) = feeds.poll(row.id, s)
        ep = pipeline.ingest(feeds.fetch_item(item, s), s, title=item.title, show=row.title)
        pipeline.process(ep.id, s)
        chapters = get_store(s.db_url).chapters_row(ep.id)
        assert [(c["start"], c["title"]) for c in chapters.data] == [(0, "Dawn"), (6.5, "Measurements")]
        assert chapters.generated  # ours, beside them
    finally:
        server.shutdown()
