"""Feeds that podcast apps read: `GET /feeds/{id}/rss` re-publishes a subscribed feed with Podcasting 2.0
tags on each processed item (read back by gPodder's podcastparser and by feedparser, every tag checked
against the namespace's attributes), items not processed pass through byte for byte, conditional GET,
and `GET /shows/{show}/rss` for a show of uploads."""

from __future__ import annotations

import http.server
import io
import json
import re
import threading
from email.utils import format_datetime
from datetime import datetime, timezone
from functools import partial
from urllib.parse import quote

import feedparser
import httpx
import podcastparser
import pytest
from defusedxml.ElementTree import fromstring

from conftest import LONG_PARAGRAPHS, running_server
from mediaflow import feeds, pipeline, rss
from mediaflow.errors import UnsupportedFormat
from mediaflow.resources import get_store

NS = "https://podcastindex.org/namespace/1.0"
P = f"{{{NS}}}"
LEGACY_NS = "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md"
# The Podcast Taxonomy's roles and groups (podcastindex-org/podcast-namespace, taxonomy.json), lower-cased.
ROLES = {"host", "co-host", "guest", "guest host", "narrator", "announcer", "producer", "editor"}
DECIMAL = re.compile(r"^\d+(\.\d+)?$")

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<!-- made by hand for the tests -->
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
  <channel>
    <title>Coffee, Sleep &amp; Machines</title>
    <link>https://example.org/show</link>
    <description>Three short talks</description>
    <itunes:author>The Makers</itunes:author>
    <item>
      <title>From Yemen to Babbage</title>
      <guid isPermaLink="false">talk-1</guid>
      <pubDate>Mon, 02 Nov 2026 08:00:00 GMT</pubDate>
      <description><![CDATA[<p>Coffee, sleep &amp; the first computers.</p>]]></description>
      <enclosure url="{base}/talk1.wav" type="audio/wav" length="{len1}"/>
      <itunes:duration>70</itunes:duration>
    </item>
    <item>
      <title>Not processed yet</title>
      <guid isPermaLink="false">talk-2</guid>
      <pubDate>Tue, 03 Nov 2026 08:00:00 GMT</pubDate>
      <description>Later &#8212; maybe.</description>
      <enclosure url="{base}/talk2.mp3" type="audio/mpeg" length="{len2}"/>
      <itunes:episodeType>full</itunes:episodeType>
    </item>
  </channel>
</rss>
"""


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def feed_site(tmp_path, long_speech_wav, speech_mp3):
    root = tmp_path / "site"
    root.mkdir()
    (root / "talk1.wav").write_bytes(long_speech_wav.read_bytes())
    (root / "talk2.mp3").write_bytes(speech_mp3.read_bytes())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (root / "feed.xml").write_text(FEED.format(base=base, len1=long_speech_wav.stat().st_size,
                                               len2=speech_mp3.stat().st_size))
    yield base, root
    server.shutdown()


def item_bytes(doc: bytes, guid: str) -> bytes:
    m = re.search(rb"<item>(?:(?!</item>).)*?<guid[^>]*>" + re.escape(guid.encode()) + rb"</guid>.*?</item>", doc, re.S)
    assert m, guid
    return m.group(0)


def check_podcast_tags(item, api, duration: float, people: set[str]) -> None:
    """Every podcast: tag of an item against the namespace's spec, and each link fetched."""
    transcripts = item.findall(f"{P}transcript")
    assert {t.get("type") for t in transcripts} == {"text/vtt", "application/x-subrip", "application/json"}
    for t in transcripts:  # url and type required; language and rel optional
        assert set(t.attrib) <= {"url", "type", "language", "rel"} and t.get("url").startswith("http")
        assert t.get("rel") in (None, "captions") and t.get("language") == "en"
        r = api.get(t.get("url"))
        assert r.status_code == 200 and r.headers["content-type"].split(";")[0] == t.get("type")
    vtt = api.get(next(t.get("url") for t in transcripts if t.get("type") == "text/vtt")).text
    assert vtt.startswith("WEBVTT") and "Yemen" in vtt
    (chapters,) = item.findall(f"{P}chapters")  # one per item
    assert set(chapters.attrib) == {"url", "type"} and chapters.get("type") == "application/json+chapters"
    doc = api.get(chapters.get("url"))
    assert doc.headers["content-type"] == "application/json+chapters"
    assert doc.json()["version"] and doc.json()["chapters"][0]["startTime"] == 0
    bites = item.findall(f"{P}soundbite")
    assert 1 <= len(bites) <= 3
    for b in bites:  # startTime and duration required, decimals in seconds; the text an optional title
        assert set(b.attrib) == {"startTime", "duration"}
        assert DECIMAL.match(b.get("startTime")) and DECIMAL.match(b.get("duration"))
        start, length = float(b.get("startTime")), float(b.get("duration"))
        assert 15 <= length <= 60 and start + length <= duration + 0.5
        assert b.text and len(b.text) <= 128
    spans = sorted((float(b.get("startTime")), float(b.get("duration"))) for b in bites)
    assert all(a[0] + a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no two overlap
    persons = item.findall(f"{P}person")
    assert {p.text for p in persons} == people
    for p in persons:  # the name as text; role and group from the taxonomy; img and href optional
        assert set(p.attrib) <= {"role", "group", "img", "href"}
        assert p.get("role") in ROLES and p.get("group") == "cast"


def test_a_subscribed_feed_is_republished_with_transcripts_chapters_soundbites_and_people(feed_site, settings, env):
    base, root = feed_site
    env("MEDIAFLOW_ALLOW_PRIVATE_URLS", "true")
    from mediaflow.config import get_settings

    s = get_settings()
    store = get_store(s.db_url)
    row = feeds.add(f"{base}/feed.xml", s)
    todo = {i.guid: i for i in feeds.poll(row.id, s)}
    item = todo["talk-1"]  # the first one only: talk-2 stays unprocessed
    ep = pipeline.ingest(feeds.fetch_item(item, s), s, title=item.title, show=row.title)
    pipeline.process(ep.id, s)
    store.update_item(item.id, status="done", episode_id=ep.id)
    with running_server() as url, httpx.Client(base_url=url, timeout=60) as api:  # after: no orphan to resume
        check_feeds(api, row, ep, base, root, s)


def check_feeds(api, row, ep, base, root, s):
    label = api.get(f"/episodes/{ep.id}/speakers").json()["items"][0]["label"]
    assert api.put(f"/episodes/{ep.id}/speakers/{label}", json={"name": "Ada Lovelace"}).status_code == 200

    r = api.get(f"/feeds/{row.id}/rss")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/rss+xml")
    body, source = r.content, (root / "feed.xml").read_bytes()
    assert body.count(b"xmlns:podcast=") == 1 and f'xmlns:podcast="{NS}"'.encode() in body
    assert item_bytes(body, "talk-2") == item_bytes(source, "talk-2")  # passed through, byte for byte
    assert b"<!-- made by hand for the tests -->" in body and b"<![CDATA[<p>Coffee, sleep" in body
    channel = fromstring(body).find("channel")
    talk1, talk2 = channel.findall("item")
    check_podcast_tags(talk1, api, get_store(s.db_url).get_episode(ep.id).duration_s, {"Ada Lovelace"})
    assert not [el for el in talk2 if el.tag.startswith(P)]
    assert talk1.find("enclosure").get("url") == f"{base}/talk1.wav"  # the enclosure stays the source's

    # The two parsers podcast apps are built on read it as the source, with the enclosures unchanged.
    parsed = feedparser.parse(body)
    assert not parsed.bozo and [e.title for e in parsed.entries] == ["From Yemen to Babbage", "Not processed yet"]
    assert [e.enclosures[0].href for e in parsed.entries] == [f"{base}/talk1.wav", f"{base}/talk2.mp3"]
    gp = podcastparser.parse(f"{base}/feed.xml", io.BytesIO(body))
    assert gp["title"] == "Coffee, Sleep & Machines"
    assert {e["title"]: e["enclosures"][0]["url"] for e in gp["episodes"]} == {
        "From Yemen to Babbage": f"{base}/talk1.wav", "Not processed yet": f"{base}/talk2.mp3"}
    # podcastparser 0.6.11 knows the namespace only by its first URI, which the spec declares identical:
    # under that URI it reads our transcript, chapters and people.
    gp = podcastparser.parse(f"{base}/feed.xml", io.BytesIO(body.replace(NS.encode(), LEGACY_NS.encode())))
    eps = {e["title"]: e for e in gp["episodes"]}
    talk = eps["From Yemen to Babbage"]
    assert "/transcript?format=" in talk["transcript_url"] and talk["chapters_json_url"].endswith("format=podcast")
    assert [(p["name"], p["role"], p["group"]) for p in talk["persons"]] == [("Ada Lovelace", "host", "cast")]
    assert not {"transcript_url", "chapters_json_url", "persons"} & set(eps["Not processed yet"])

    # Conditional GET: the same tag or date gets 304; a change to the episode gets a new body.
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    head = api.head(f"/feeds/{row.id}/rss")
    assert head.status_code == 200 and head.headers["etag"] == etag and head.content == b""
    assert api.get(f"/feeds/{row.id}/rss", headers={"If-None-Match": etag}).status_code == 304
    assert api.get(f"/feeds/{row.id}/rss", headers={"If-Modified-Since": modified}).status_code == 304
    old = format_datetime(datetime(2020, 1, 1, tzinfo=timezone.utc), usegmt=True)
    assert api.get(f"/feeds/{row.id}/rss", headers={"If-Modified-Since": old}).status_code == 200
    assert api.put(f"/episodes/{ep.id}/speakers/{label}", json={"name": "Charles Babbage"}).status_code == 200
    again = api.get(f"/feeds/{row.id}/rss", headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] != etag and b">Charles Babbage</" in again.content

    # The same episode in its show's feed: our copy of the audio as the enclosure, the same tags.
    r = api.get(f"/shows/{quote(row.title, safe='')}/rss")
    assert r.status_code == 200 and r.content.count(b"xmlns:podcast=") == 1
    (item_el,) = fromstring(r.content).find("channel").findall("item")
    check_podcast_tags(item_el, api, get_store(s.db_url).get_episode(ep.id).duration_s, {"Charles Babbage"})
    enclosure = item_el.find("enclosure")
    audio = api.get(enclosure.get("url"))
    assert audio.status_code == 200 and int(enclosure.get("length")) == len(audio.content)
    assert enclosure.get("type") == audio.headers["content-type"] == "audio/wav"
    gp = podcastparser.parse(f"{api.base_url}/shows/x/rss", io.BytesIO(r.content))
    assert [e["title"] for e in gp["episodes"]] == ["From Yemen to Babbage"]
    assert api.get(f"/shows/{quote(row.title, safe='')}/rss", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert api.get("/shows/No%20such%20show/rss").status_code == 404


def test_feeds_that_cannot_be_republished_are_answered_clearly(tmp_path, settings, api):
    path = tmp_path / "feed.xml"
    # feedparser takes it (and its items are processed) but it is not well-formed XML: &nbsp; is undefined
    path.write_text(FEED.replace("Three short talks", "Three&nbsp;talks").format(base="http://e.org", len1=1, len2=1))
    row = feeds.add(str(path), settings)
    r = api.get(f"/feeds/{row.id}/rss")
    assert r.status_code == 415 and "not well-formed XML" in r.json()["error"]["message"]

    atom = tmp_path / "atom.xml"
    atom.write_text('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
                    '<entry><id>1</id><title>E</title><link rel="enclosure" href="http://e.org/a.mp3" '
                    'type="audio/mpeg"/></entry></feed>')
    row = feeds.add(str(atom), settings)
    r = api.get(f"/feeds/{row.id}/rss")
    assert r.status_code == 415 and "only RSS 2.0" in r.json()["error"]["message"]
    assert api.get("/feeds/999/rss").status_code == 404
    assert api.get("/feeds/0/rss").status_code == 422


def test_a_source_that_turns_bad_leaves_the_last_good_document_served(tmp_path, settings, api):
    path = tmp_path / "feed.xml"
    path.write_text(FEED.format(base="http://e.org", len1=1, len2=1))
    row = feeds.add(str(path), settings)
    first = api.get(f"/feeds/{row.id}/rss")
    path.write_text("<html><body>We moved!</body></html>")
    with pytest.raises(UnsupportedFormat):
        feeds.poll(row.id, settings)
    again = api.get(f"/feeds/{row.id}/rss")
    assert again.status_code == 200 and again.content == first.content
    assert not list(feeds.source_path(row.id, settings).parent.glob(".*.tmp"))  # nothing half-written


def test_entity_declarations_are_refused_not_expanded():
    bomb = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            '<rss version="2.0"><channel><title>&b;</title></channel></rss>')
    with pytest.raises(UnsupportedFormat, match="entities"):
        rss.republish(bomb.encode(), lambda g, e: None)
    with pytest.raises(UnsupportedFormat, match="not well-formed"):
        rss.republish(b"<html><body>nope", lambda g, e: None)


def test_the_creators_namespace_prefix_and_tags_are_respected():
    src = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<rss version="2.0" xmlns:pi="' + NS + '">\n<channel>\n'
           '<title>Caf\xe9</title>\n<item><title>One</title><guid>a</guid><enclosure url="/a.mp3" type="audio/mpeg"/>'
           '<pi:chapters url="https://e.org/c.json" type="application/json+chapters"/>'
           '<pi:transcript url="https://e.org/t.vtt" type="text/vtt"/>'
           '<pi:person role="guest">Ren\xe9</pi:person></item>\n</channel>\n</rss>\n').encode("latin-1")
    made = rss.Enrichment(
        transcripts=[{"url": "http://m/t?format=vtt&x=1", "type": "text/vtt"},
                     {"url": "http://m/t?format=srt", "type": "application/x-subrip"}],
        chapters_url="http://m/c", soundbites=[rss.Soundbite(12.5, 30.0, "Caf\u00e9 <talk> & more")],
        persons=[{"name": "Zo\u00eb", "role": "host", "group": "cast"}])
    out = rss.republish(src, lambda guid, enc: made if guid == "a" else None, "https://e.org/feed.xml")
    assert b"xmlns:podcast" not in out  # the creator's prefix is used, no second declaration
    item = fromstring(out).find("channel/item")
    assert [c.get("url") for c in item.findall(f"{P}chapters")] == ["https://e.org/c.json"]  # theirs stands
    assert [t.get("type") for t in item.findall(f"{P}transcript")] == ["text/vtt", "application/x-subrip"]
    assert [p.text for p in item.findall(f"{P}person")] == ["Ren\xe9"]
    (bite,) = item.findall(f"{P}soundbite")
    assert (bite.get("startTime"), bite.get("duration"), bite.text) == ("12.5", "30.0", "Caf\u00e9 <talk> & more")
    assert out.decode("latin-1").startswith('<?xml version="1.0" encoding="ISO-8859-1"?>')


def test_soundbites_are_the_passages_closest_to_the_episode():
    from mediaflow.chapters.sentences import Sentence
    from mediaflow.embed import get_embedder

    # Two sentences a paragraph, 6 s each: coffee (3 paragraphs), sleep (2), computers (3).
    sents, t = [], 0.0
    for p in LONG_PARAGRAPHS:
        for half in re.split(r"(?<=,) ", p, maxsplit=1):
            sents.append(Sentence(t, t + 6.0, half))
            t += 6.5
    embed = get_embedder().encode
    coffee = embed([" ".join(LONG_PARAGRAPHS[:3])])[0]
    bites = rss.choose_soundbites(sents, embed, coffee)
    assert 1 <= len(bites) <= 3 and all(15 <= b.duration <= 60 for b in bites)
    assert bites[0].start < 3 * 13.0 and "offee" in bites[0].title  # the best one is about coffee
    assert rss.choose_soundbites(sents[:2], embed) == []  # under 15 s of speech: none
