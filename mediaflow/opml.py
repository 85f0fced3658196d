"""OPML subscription lists: read one to subscribe to its feeds, write ours for other podcast apps.

Parsing is defused (`defusedxml`: a DOCTYPE, entity or external reference is refused, never expanded),
the file and its number of feeds are capped, and every feed goes through `feeds.add`, which fetches and
checks it under the same SSRF rules as any feed: one bad entry is reported and the rest still added.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path

from mediaflow.errors import InvalidInput, MediaflowError, UnsupportedFormat, excerpt

MAX_ENTRIES = 1000
MAX_BYTES = 5 * 1024 * 1024


@dataclass
class Imported:
    """One OPML entry's outcome: the feed's row id and title, or the error that refused it."""

    url: str
    title: str | None = None
    feed_id: int | None = None
    error: str | None = None


def read(path: str | Path) -> list[tuple[str, str | None]]:
    """The (xmlUrl, title) of every feed outline, in order, without repeats. Raises before anything is
    added: a file over `MAX_BYTES`, not OPML, with a DOCTYPE or entities, or over `MAX_ENTRIES` feeds."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"{p.name}: no such file")
    if p.stat().st_size > MAX_BYTES:
        raise InvalidInput(f"{p.name}: over the {MAX_BYTES >> 20} MiB limit for an OPML file")
    try:
        root = fromstring(p.read_bytes(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InvalidInput(f"{p.name}: refused: OPML with a DOCTYPE or entities is not read ({type(exc).__name__})") \
            from None
    except ET.ParseError as exc:
        raise UnsupportedFormat(f"{p.name}: not XML ({exc})") from None
    if root.tag != "opml" or root.find("body") is None:
        raise UnsupportedFormat(f"{p.name}: not an OPML file (no <opml><body>)")
    entries: dict[str, str | None] = {}
    for outline in root.find("body").iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if url and url not in entries:
            entries[url] = outline.get("title") or outline.get("text")
            if len(entries) > MAX_ENTRIES:
                raise InvalidInput(f"{p.name}: more than {MAX_ENTRIES:,} feeds; split the list and import it in parts")
    return list(entries.items())


def import_file(path: str | Path, settings) -> list[Imported]:
    """Subscribe to every feed of an OPML file through `feeds.add` (fetched, parsed and SSRF-checked one
    by one). Only http(s) URLs are taken from a list: a local path in one is refused."""
    from mediaflow import feeds

    out = []
    for url, title in read(path):
        if not url.lower().startswith(("http://", "https://")):
            out.append(Imported(url, title, error=f"{excerpt(url)} is not an http(s) URL"))
            continue
        try:
            row = feeds.add(url, settings)
        except MediaflowError as exc:
            out.append(Imported(url, title, error=str(exc)))
        else:
            out.append(Imported(url, row.title or title, feed_id=row.id))
    return out


def write(feeds, title: str = "mediaflow subscriptions") -> str:
    """OPML 2.0 of these feed rows (`url`, `title`): one `<outline type="rss">` each."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(datetime.now(timezone.utc))
    body = ET.SubElement(root, "body")
    for f in feeds:
        name = f.title or f.url
        ET.SubElement(body, "outline", type="rss", text=name, title=name, xmlUrl=f.url)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
