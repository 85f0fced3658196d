"""Feeds: RSS parsed, enclosures downloaded safely (SSRF guard, size cap, type check, resume), processed once."""

from __future__ import annotations

import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from mediaflow import config
from mediaflow.errors import InputTooLarge, InvalidInput, UnsupportedFormat
from mediaflow.feeds import check_url, download, parse_feed

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0">
<channel>
  <title>Earth &amp; Coffee Weekly</title>
  <description>Volcanoes and other hot things</description>
  <item>
    <title>Ash at dawn</title><guid>ep-1</guid>
    <pubDate>Mon, 02 Nov 2026 08:00:00 GMT</pubDate>
    <enclosure url="{base}/ep1.wav" type="audio/wav" length="{len1}"/>
    <podcast:chapters url="{base}/ep1.chapters.json" type="application/json+chapters"/>
    <podcast:transcript url="{base}/ep1.vtt" type="text/vtt"/>
  </item>
  <item>
    <title>Ash again, compressed</title><guid>ep-2</guid>
    <pubDate>Tue, 03 Nov 2026 08:00:00 GMT</pubDate>
    <enclosure url="{base}/ep2.mp3" type="audio/mpeg" length="{len2}"/>
  </item>
  <item>
    <title>Not audio at all</title><guid>ep-3</guid>
    <pubDate>Sun, 01 Nov 2026 08:00:00 GMT</pubDate>
    <enclosure url="{base}/page.html" type="audio/mpeg" length="100"/>
  </item>
  <item><title>A blog post without audio</title><guid>post-1</guid></item>
</channel>
</rss>"""


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with byte ranges, recording what was asked for."""

    ranges: list = []

    def log_message(self, *args):
        pass

    def guess_type(self, path):
        return "text/html" if str(path).endswith(".html") else super().guess_type(path)

    def send_head(self):
        rng = self.headers.get("Range")
        Handler.ranges.append((self.path, rng))
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().send_head()
        start = int(rng.split("=")[1].split("-")[0])
        data = path.read_bytes()
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        import io

        return io.BytesIO(data[start:])


@pytest.fixture
def site(tmp_path, speech_wav, speech_mp3):
    root = tmp_path / "site"
    root.mkdir()
    (root / "ep1.wav").write_bytes(speech_wav.read_bytes())
    (root / "ep2.mp3").write_bytes(speech_mp3.read_bytes())
    (root / "page.html").write_text("<html><body>Subscribe!</body></html>")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (root / "feed.xml").write_text(FEED.format(base=base, len1=speech_wav.stat().st_size,
                                               len2=speech_mp3.stat().st_size))
    Handler.ranges = []
    yield base, root
    server.shutdown()


def test_the_url_guard_refuses_other_schemes_and_local_addresses():
    for url in ("file:///etc/passwd", "ftp://example.org/a.mp3", "gopher://x", "/etc/passwd"):
        with pytest.raises(InvalidInput, match="http"):
            check_url(url)
    for url in ("http://127.0.0.1/a.mp3", "http://localhost:8000/x", "http://10.1.2.3/a", "http://[::1]/a",
                "http://169.254.169.254/latest/meta-data", "http://192.168.0.1/feed"):
        with pytest.raises(InvalidInput, match="private or local"):
            check_url(url)
    check_url("http://127.0.0.1/a.mp3", allow_private=True)  # allowed only when configured


def test_feed_items_with_podcasting20_links(site):
    base, root = site
    feed = parse_feed(f"{base}/feed.xml", allow_private=True)
    assert feed.title == "Earth & Coffee Weekly"
    assert [i.guid for i in feed.items] == ["ep-2", "ep-1", "ep-3"]  # newest first; the blog post is skipped
    ep1 = next(i for i in feed.items if i.guid == "ep-1")
    assert ep1.chapters_url == f"{base}/ep1.chapters.json" and ep1.transcript_url == f"{base}/ep1.vtt"
    assert ep1.published_at.year == 2026 and ep1.enclosure_type == "audio/wav"
    assert parse_feed(root / "feed.xml").title == feed.title  # a local feed file works too
    with pytest.raises(InvalidInput, match="private or local"):
        parse_feed(f"{base}/feed.xml")


def test_downloads_resume_are_capped_and_must_be_audio(site, tmp_path):
    base, root = site
    whole = (root / "ep1.wav").read_bytes()
    dest = tmp_path / "dl" / "ep1.wav"
    dest.parent.mkdir()
    dest.with_name("ep1.wav.part").write_bytes(whole[:5000])  # an earlier attempt broke off here
    download(f"{base}/ep1.wav", dest, max_bytes=10 << 20, allow_private=True)
    assert dest.read_bytes() == whole and not dest.with_name("ep1.wav.part").exists()
    assert ("/ep1.wav", "bytes=5000-") in Handler.ranges  # only the rest was asked for

    with pytest.raises(InputTooLarge):
        download(f"{base}/ep1.wav", tmp_path / "dl" / "big.wav", max_bytes=1000, allow_private=True)
    with pytest.raises(UnsupportedFormat, match="text/html"):
        download(f"{base}/page.html", tmp_path / "dl" / "page.mp3", max_bytes=10 << 20, allow_private=True)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["ep1.wav"]  # no partial files left


def test_poll_feeds_processes_new_episodes_once(site, settings, monkeypatch):
    from flows.feeds import poll_feeds
    from mediaflow.resources import get_store

    base, _ = site
    monkeypatch.setenv("MEDIAFLOW_ALLOW_PRIVATE_URLS", "true")
    config.get_settings.cache_clear()
    settings = config.get_settings()
    store = get_store(settings.db_url)
    feed = store.add_feed(f"{base}/feed.xml")

    first = poll_feeds()
    assert len(first["processed"]) == 2 and list(first["failed"]) == [f"{base}/page.html"]
    eps, total = store.list_episodes()
    assert total == 2 and {e.show for e in eps} == {"Earth & Coffee Weekly"}
    assert {e.title for e in eps} == {"Ash at dawn", "Ash again, compressed"}
    assert all(e.published_at is not None and e.status == "done" for e in eps)
    items = {i.guid: i for i in store.feed_items(feed.id)}
    assert items["ep-1"].chapters_url.endswith("ep1.chapters.json") and items["ep-3"].status == "failed"
    assert not any((settings.data_path / "downloads").iterdir())  # downloads are not kept twice

    again = poll_feeds()
    assert again["processed"] == [] and store.count() == 2
    assert store.get_feed_item(items["ep-3"].id).attempts == 2


def test_adding_a_feed_fetches_and_parses_it_once(site, settings, monkeypatch, tmp_path):
    from mediaflow import feeds
    from mediaflow.errors import UnsupportedFormat
    from mediaflow.resources import get_store

    for bad in ("/etc/passwd", f"{site[0]}/page.html"):  # not XML; XML-ish but no feed
        monkeypatch.setenv("MEDIAFLOW_ALLOW_PRIVATE_URLS", "true")
        config.get_settings.cache_clear()
        with pytest.raises(UnsupportedFormat, match="not an RSS or Atom feed"):
            feeds.add(bad, config.get_settings())
    with pytest.raises(InvalidInput, match="neither an http"):
        feeds.add(str(tmp_path / "missing.xml"), config.get_settings())
    monkeypatch.setenv("MEDIAFLOW_ALLOW_PRIVATE_URLS", "false")
    config.get_settings.cache_clear()
    with pytest.raises(InvalidInput, match="private or local"):  # the SSRF guard holds at add time too
        feeds.add(f"{site[0]}/feed.xml", config.get_settings())
    store = get_store(config.get_settings().db_url)
    assert store.list_feeds() == []  # nothing refused was stored

    monkeypatch.setenv("MEDIAFLOW_ALLOW_PRIVATE_URLS", "true")
    config.get_settings.cache_clear()
    row = feeds.add(f"{site[0]}/feed.xml", config.get_settings())
    assert row.title == "Earth & Coffee Weekly" and [f.url for f in store.list_feeds()] == [f"{site[0]}/feed.xml"]
    assert store.feed_items(row.id) == []  # checked, not polled: episodes come with the first poll


def test_feeds_add_on_the_command_line_refuses_a_file_that_is_no_feed(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    r = subprocess.run([str(Path(sys.executable).with_name("mediaflow")), "feeds", "add", "/etc/passwd"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MEDIAFLOW_DATA_DIR": str(tmp_path / "data")})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]  # one line
    assert r.stderr.startswith("mediaflow: error: /etc/passwd: not an RSS or Atom feed")
