"""Chapters the creator already wrote: `00:00 Intro` lines in an episode's description, or the
Podcasting 2.0 JSON chapters its feed item links (`podcast:chapters`).

When an episode has them they are its chapters (the MP3 tags, exports and features use them); ours are
kept beside them (`ChaptersRow.generated`) and the API marks which are which (`source`).
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass

from mediaflow.chapters import Chapter
from mediaflow.errors import MediaflowError

log = logging.getLogger(__name__)

MIN_LINES = 3  # YouTube's rule for description chapters, and a fair guard against stray times
FIRST_WITHIN_S = 15.0  # the first line starts "near 0"; it is moved to 0
MAX_JSON_BYTES = 1 << 20
MAX_TITLE = 200
_TIME = r"(?:\d{1,2}:)?\d{1,2}:\d{2}"
_LINE = re.compile(
    rf"^\s*(?:[-*\u2022\u25aa\u00b7]\s*)?[(\[]?(?P<time>{_TIME})[)\]]?\s*(?:[-\u2013\u2014:|.]\s*)?(?P<title>\S.*?)\s*$"
)


@dataclass
class CreatorChapters:
    chapters: list[Chapter]
    kind: str  # "description" or "podcast:chapters"


def from_description(text: str | None, duration: float) -> list[Chapter] | None:
    """Chapters from `00:00 Title`, `(1:02:03) Title`, `0:00 - Title` lines (plain text or HTML): at least
    three, the first near 0, strictly increasing. Lines past the audio's end are dropped; None when what
    is left is no chapter list."""
    if not text:
        return None
    text = re.sub(r"(?i)<\s*(br|/p|p|/li|li|/div|div)\b[^>]*>", "\n", text)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    found: list[tuple[float, str]] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            found.append((_seconds(m.group("time")), _title(m.group("title"))))
    found = [(t, title) for t, title in found if title]
    if len(found) < MIN_LINES or found[0][0] > FIRST_WITHIN_S:
        return None
    if any(b[0] <= a[0] for a, b in zip(found, found[1:])):
        return None
    return _spans([(0.0, found[0][1])] + found[1:], duration, MIN_LINES)


def from_json(doc: bytes | str | dict, duration: float) -> list[Chapter] | None:
    """Chapters from a Podcasting 2.0 JSON chapters document; entries marked `toc: false` (images,
    links along the way) are not chapters. None when it is not such a document or has under two."""
    try:
        data = doc if isinstance(doc, dict) else json.loads(doc)
    except (ValueError, UnicodeDecodeError):
        return None
    rows = data.get("chapters") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return None
    found = {}
    for c in rows:
        if not isinstance(c, dict) or c.get("toc") is False:
            continue
        start, title = c.get("startTime"), _title(str(c.get("title") or ""))
        if isinstance(start, (int, float)) and not isinstance(start, bool) and start >= 0 and title:
            found.setdefault(round(float(start), 2), title)
    return _spans(sorted(found.items()), duration, 2)


def fetch_json(url: str, duration: float, settings) -> list[Chapter] | None:
    """A feed's JSON chapters, fetched under the feeds' SSRF rules and size cap. A fetch that fails is
    logged and counts as none: the episode keeps our chapters."""
    from mediaflow import feeds

    try:
        return from_json(feeds.fetch_small(url, settings.allow_private_urls, MAX_JSON_BYTES), duration)
    except MediaflowError as exc:
        log.warning("creator chapters at %s not used: %s", url[:200], exc)
        return None


def for_episode(episode_id: str, settings) -> CreatorChapters | None:
    """The creator's chapters for a stored episode: its feed item's JSON chapters first, else chapter
    lines in its description (or its feed item's). None when there are none."""
    from mediaflow.resources import get_store

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    item = _feed_item(ep, store, settings)
    duration = float(ep.duration_s or 0)
    if item is not None and item.chapters_url:
        found = fetch_json(item.chapters_url, duration, settings)
        if found:
            return CreatorChapters(found, "podcast:chapters")
    for text in (ep.description, getattr(item, "description", None)):
        found = from_description(text, duration)
        if found:
            return CreatorChapters(found, "description")
    return None


def _feed_item(ep, store, settings):
    """The feed item the episode came from: linked once processed; before that, the item whose download
    it was (the download's name is a hash of the enclosure URL: `feeds.fetch_item`)."""
    from mediaflow import feeds

    item = store.item_of_episode(ep.id)
    if item is not None:
        return item
    for feed in store.list_feeds():
        for it in store.feed_items(feed.id):
            if it.status != "done" and feeds._download_path(it, settings).name == ep.source_name:
                return it
    return None


def _spans(found: list[tuple[float, str]], duration: float, least: int) -> list[Chapter] | None:
    if duration > 0:
        found = [(t, title) for t, title in found if t < duration]
    if len(found) < least:
        return None
    ends = [t for t, _ in found[1:]] + [duration if duration > 0 else found[-1][0]]
    out = [Chapter(round(t, 2), round(e, 2), title) for (t, title), e in zip(found, ends)]
    return [c for c in out if c.end > c.start] or None


def _seconds(stamp: str) -> float:
    total = 0
    for part in stamp.split(":"):
        total = total * 60 + int(part)
    return float(total)


def _title(text: str) -> str:
    text = " ".join(text.split()).strip(" -\u2013\u2014:|")
    return text[:MAX_TITLE]
