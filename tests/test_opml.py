"""OPML: `mediaflow feeds import list.opml` subscribes through `feeds.add` (SSRF rules per URL), refuses
entity tricks and overlong lists before adding anything, and `GET /feeds.opml` is read back by `listparser`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import listparser
import pytest

from mediaflow import config, opml
from mediaflow.errors import InvalidInput, UnsupportedFormat
from mediaflow.resources import get_store
from test_feeds import site  # noqa: F401  (the fixture: a local web server with feed.xml)


def outlines(*urls: str) -> str:
    body = "".join(f'<outline type="rss" text="Feed {i}" xmlUrl="{u}"/>' for i, u in enumerate(urls))
    return f'<?xml version="1.0"?><opml version="2.0"><head><title>mine</title></head><body>{body}</body></opml>'


def cli(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("mediaflow")), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MEDIAFLOW_DATA_DIR": str(data_dir), **env})


def test_import_adds_each_feed_and_reports_the_ones_refused(site, settings, tmp_path):  # noqa: F811
    base, _ = site
    path = tmp_path / "subs.opml"
    path.write_text(outlines(f"{base}/feed.xml", f"{base}/page.html", "/etc/passwd", f"{base}/feed.xml",
                             "http://169.254.169.254/latest/meta-data"))
    r = cli("feeds", "import", str(path), data_dir=settings.data_path, MEDIAFLOW_ALLOW_PRIVATE_URLS="true")
    lines = r.stdout.splitlines()
    assert r.returncode == 2, r.stderr
    assert lines[0].startswith("feed 1: Earth & Coffee Weekly")
    assert lines[1].startswith(f"refused: {base}/page.html: ") and "not an RSS or Atom feed" in lines[1]
    assert lines[2].startswith("refused: /etc/passwd: ") and "not an http(s) URL" in lines[2]
    assert lines[3].startswith("refused: http://169.254.169.254/") and lines[-1] == "1 of 4 feeds added"
    # the SSRF guard holds per URL: without private addresses allowed, the local feed is refused too
    r = cli("feeds", "import", str(path), data_dir=settings.data_path / "other")
    assert r.returncode == 2 and "private or local" in r.stdout and r.stdout.splitlines()[-1] == "0 of 4 feeds added"


@pytest.mark.parametrize("text, error, says", [
    ('<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
     '<opml version="2.0"><body><outline xmlUrl="https://x.org/&b;"/></body></opml>', InvalidInput, "DOCTYPE"),
    ('<?xml version="1.0"?><!DOCTYPE opml SYSTEM "file:///etc/passwd"><opml><body/></opml>', InvalidInput, "DOCTYPE"),
    ("just some text", UnsupportedFormat, "not XML"),
    ("<rss><channel/></rss>", UnsupportedFormat, "not an OPML file"),
    (outlines(*(f"https://example.org/{i}.xml" for i in range(opml.MAX_ENTRIES + 1))), InvalidInput,
     "more than 1,000 feeds"),
])
def test_bad_lists_are_refused_before_anything_is_added(settings, tmp_path, text, error, says):
    path = tmp_path / "bad.opml"
    path.write_text(text)
    with pytest.raises(error, match=says):
        opml.import_file(path, settings)
    assert get_store(settings.db_url).list_feeds() == []


def test_feeds_opml_is_read_back_by_listparser(site, settings, api, monkeypatch):  # noqa: F811
    from mediaflow import feeds

    monkeypatch.setenv("MEDIAFLOW_ALLOW_PRIVATE_URLS", "true")
    config.get_settings.cache_clear()
    feeds.add(f"{site[0]}/feed.xml", config.get_settings())
    r = api.get("/feeds.opml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/x-opml")
    parsed = listparser.parse(r.text)
    assert not parsed.bozo, parsed.bozo_exception
    assert [(f.url, f.title) for f in parsed.feeds] == [(f"{site[0]}/feed.xml", "Earth & Coffee Weekly")]
    assert parsed.version == "opml2"
    # and our own import reads ours: the same feed again, nothing new
    path = Path(settings.data_path) / "ours.opml"
    path.write_text(r.text)
    assert [i.feed_id for i in opml.import_file(path, config.get_settings())] == [1]
