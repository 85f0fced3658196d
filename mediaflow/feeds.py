"""Podcast feeds in: RSS/Atom parsed with feedparser, enclosures downloaded safely and resumably.

A feed is a URL or a local file. Items are keyed by their guid, so each is processed once.
Podcasting 2.0 `podcast:chapters` and `podcast:transcript` links are recorded when present, and
`podcast:person` tags (who hosts, who is the guest) are kept with each item.

Downloads are the part of mediaflow that reaches the network on a user's say-so, so they are
fenced: only http(s); hosts that resolve to private, loopback, link-local or reserved addresses
are refused unless `allow_private_urls` is set (SSRF), on every redirect hop; a size cap that
holds even when the server lies about the length; the content type must be audio or video; and
an interrupted download resumes from its `.part` file with an HTTP range request.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from mediaflow.errors import InputTooLarge, InvalidInput, MediaflowError, UnsupportedFormat

PODCAST_NS = "https://podcastindex.org/namespace/1.0"
_CHUNK = 1 << 16
_MAX_REDIRECTS = 5
_MAX_FEED_BYTES = 20 * 1024 * 1024


class DownloadError(MediaflowError):
    """The server could not be reached or answered with an error; retrying later may help."""

    code = "download_error"
    transient = True


@dataclass
class FeedItem:
    guid: str
    title: str
    enclosure_url: str
    description: str | None = None
    published_at: datetime | None = None
    enclosure_type: str | None = None
    enclosure_length: int | None = None
    chapters_url: str | None = None
    transcript_url: str | None = None
    persons: list[Person] = field(default_factory=list)  # podcast:person, the item's or else the channel's


@dataclass
class Person:
    """A `podcast:person` tag: a name with its role (lower-cased; "host" when absent) and group
    ("cast" when absent), and optional image and link."""

    name: str
    role: str = "host"
    group: str = "cast"
    img: str | None = None
    href: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "group": self.group, "img": self.img, "href": self.href}


@dataclass
class Feed:
    source: str
    title: str
    description: str | None = None
    items: list[FeedItem] = field(default_factory=list)
    raw: bytes = field(default=b"", repr=False)  # the document as fetched, kept for re-publishing (rss.py)


def check_url(url: str, allow_private: bool = False) -> None:
    """Refuse URLs that are not http(s) or that point into the local network (unless allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"only http and https URLs can be fetched, not {parts.scheme or 'a bare path'!r}")
    host = parts.hostname
    if not host:
        raise InvalidInput("the URL has no host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise DownloadError(f"cannot resolve {host}: {exc.strerror}") from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not ip.is_global or ip.is_multicast:
            raise InvalidInput(f"{host} resolves to a private or local address; refused (set allow_private_urls to allow)")


def parse_feed(source: str | Path, allow_private: bool = False, timeout: float = 30.0) -> Feed:
    """Parse a feed from an http(s) URL or a local file."""
    import feedparser

    text = source.read_bytes() if isinstance(source, Path) else None
    if text is None:
        if urlsplit(str(source)).scheme in ("http", "https"):
            text = _get_small(str(source), allow_private, timeout, _MAX_FEED_BYTES)
        else:
            path = Path(str(source)).expanduser()
            if not path.is_file():
                raise InvalidInput(f"{source!r} is neither an http(s) URL nor a feed file")
            if path.stat().st_size > _MAX_FEED_BYTES:
                raise InputTooLarge(f"{path.name}: a feed over {_MAX_FEED_BYTES >> 20} MiB is refused")
            text = path.read_bytes()
    parsed = feedparser.parse(text)
    if parsed.bozo and not parsed.entries:
        raise UnsupportedFormat(f"not an RSS or Atom feed ({type(parsed.bozo_exception).__name__}: "
                                f"{str(parsed.bozo_exception)[:120]})")
    if not parsed.version and not parsed.entries:  # well-formed, but HTML or some other XML
        raise UnsupportedFormat("not an RSS or Atom feed (no channel, no items)")
    extra = _podcast_links(text)
    channel_people, item_people = podcast_persons(text)
    base = str(source)
    items = []
    for e in parsed.entries:
        enc = next((x for x in e.get("enclosures", []) if x.get("href")), None)
        if enc is None:
            continue  # an item without audio is a blog post, not an episode
        guid = str(e.get("id") or e.get("guid") or enc["href"])
        links = extra.get(guid, {})
        items.append(FeedItem(
            guid=guid[:1000],
            title=str(e.get("title") or "Untitled episode")[:500],
            enclosure_url=urljoin(base, enc["href"]),
            description=(e.get("summary") or None),
            published_at=_when(e),
            enclosure_type=enc.get("type"),
            enclosure_length=int(enc["length"]) if str(enc.get("length", "")).isdigit() else None,
            chapters_url=links.get("chapters"),
            transcript_url=links.get("transcript"),
            persons=item_people.get(guid, channel_people),
        ))
    items.sort(key=lambda i: i.published_at or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
    return Feed(str(source), str(parsed.feed.get("title") or "Untitled feed")[:500], parsed.feed.get("subtitle"), items,
                raw=text)


def _when(entry) -> datetime | None:
    t = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime(*t[:6], tzinfo=timezone.utc) if t else None


def _podcast_links(xml: bytes) -> dict[str, dict[str, str]]:
    """guid -> {chapters, transcript} URLs from the Podcasting 2.0 namespace (feedparser drops them)."""
    out: dict[str, dict[str, str]] = {}
    try:
        root = ET.fromstring(xml)  # noqa: S314 - stdlib expat does not fetch external entities
    except ET.ParseError:
        return out
    for item in root.iter("item"):
        guid_el = item.find("guid")
        enc = item.find("enclosure")
        guid = (guid_el.text or "").strip() if guid_el is not None else (enc.get("url") if enc is not None else "")
        links = {}
        ch = item.find(f"{{{PODCAST_NS}}}chapters")
        if ch is not None and ch.get("url"):
            links["chapters"] = ch.get("url")
        for tr in item.findall(f"{{{PODCAST_NS}}}transcript"):
            if tr.get("url") and "transcript" not in links:
                links["transcript"] = tr.get("url")
        if guid and links:
            out[guid] = links
    return out


def podcast_persons(xml: bytes) -> tuple[list[Person], dict[str, list[Person]]]:
    """The channel's `podcast:person` tags, and each item's (by guid). Item tags replace the
    channel's for that item, as the namespace specifies. Names are trimmed to 200 characters;
    a tag without a name is skipped, as is a repeated name."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - stdlib expat does not fetch external entities
    except ET.ParseError:
        return [], {}
    channel = root.find("channel")
    if channel is None:
        return [], {}
    items = {}
    for item in channel.iter("item"):
        guid_el, enc = item.find("guid"), item.find("enclosure")
        guid = (guid_el.text or "").strip() if guid_el is not None else (enc.get("url") if enc is not None else "")
        people = _persons(item)
        if guid and people:
            items[guid] = people
    return _persons(channel), items


def _persons(parent) -> list[Person]:
    out: list[Person] = []
    for el in parent.findall(f"{{{PODCAST_NS}}}person"):
        name = " ".join((el.text or "").split())[:200]
        if not name or any(p.name.lower() == name.lower() for p in out):
            continue
        role = " ".join((el.get("role") or "").split()).lower()[:50] or "host"
        group = " ".join((el.get("group") or "").split()).lower()[:50] or "cast"
        img, href = (el.get("img") or "")[:2000], (el.get("href") or "")[:2000]
        out.append(Person(name, role, group, img or None, href or None))
    return out


def _client(timeout: float):
    import httpx

    return httpx.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": "mediaflow/0.1 (podcast ingest)"})


def _open(client, url: str, allow_private: bool, headers: dict | None = None):
    """GET with redirects followed by hand, each hop checked; returns a streaming response."""
    for _ in range(_MAX_REDIRECTS + 1):
        check_url(url, allow_private)
        try:
            resp = client.send(client.build_request("GET", url, headers=headers or {}), stream=True)
        except Exception as exc:  # connection refused, TLS, timeout: worth a retry later
            raise DownloadError(f"could not fetch {urlsplit(url).hostname}: {type(exc).__name__}") from exc
        if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
            resp.close()
            url = urljoin(url, resp.headers["location"])
            continue
        if resp.status_code >= 400 and resp.status_code != 416:
            resp.close()
            err = DownloadError if resp.status_code >= 500 or resp.status_code == 429 else InvalidInput
            raise err(f"{urlsplit(url).hostname} answered {resp.status_code}")
        return resp
    raise DownloadError("too many redirects")


def _get_small(url: str, allow_private: bool, timeout: float, limit: int) -> bytes:
    with _client(timeout) as client:
        resp = _open(client, url, allow_private)
        try:
            data = b""
            for chunk in resp.iter_bytes(_CHUNK):
                data += chunk
                if len(data) > limit:
                    raise InputTooLarge(f"the feed is over {limit >> 20} MiB")
            return data
        finally:
            resp.close()


def download(url: str, dest: str | Path, max_bytes: int, allow_private: bool = False, timeout: float = 60.0) -> Path:
    """Fetch an enclosure to `dest`: resumable, capped at `max_bytes`, audio or video only, atomic.

    Bytes arrive in `dest.part`; a second call after an interruption asks only for the rest.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with _client(timeout) as client:
        resp = _open(client, url, allow_private, headers)
        try:
            if resp.status_code == 416:  # we already have every byte
                part.replace(dest)
                return dest
            kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind and not kind.startswith(("audio/", "video/")) and kind not in (
                "application/octet-stream", "binary/octet-stream", "application/ogg", "application/mp4"
            ):
                raise UnsupportedFormat(f"the enclosure is {kind!r}, not audio")
            resumed = resp.status_code == 206 and have > 0
            if not resumed:
                have = 0
            total = _total(resp, have)
            if total is not None and total > max_bytes:
                raise InputTooLarge(f"the enclosure is {total >> 20} MiB, over the {max_bytes >> 20} MiB limit")
            with open(part, "ab" if resumed else "wb") as f:
                got = have
                for chunk in resp.iter_bytes(_CHUNK):
                    got += len(chunk)
                    if got > max_bytes:  # the server's length was wrong, or absent
                        raise InputTooLarge(f"the enclosure is over the {max_bytes >> 20} MiB limit")
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except (InputTooLarge, UnsupportedFormat):
            part.unlink(missing_ok=True)  # no use resuming what will be refused again
            raise
        except MediaflowError:
            raise
        except Exception as exc:  # reset connection, disk trouble: keep the part, resume next time
            raise DownloadError(f"the download broke off: {type(exc).__name__}") from exc
        finally:
            resp.close()
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"the download stopped at {part.stat().st_size} of {total} bytes; it will resume")
    part.replace(dest)
    return dest


def _total(resp, have: int) -> int | None:
    if resp.status_code == 206:
        rng = resp.headers.get("content-range", "")
        size = rng.rsplit("/", 1)[-1]
        return int(size) if size.isdigit() else None
    length = resp.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


# -- polling (the steps the poll-feeds flow runs) ----------------------------------------------
def add(source: str, settings):
    """Register a feed after fetching and parsing it once, so a wrong URL or file is refused now, not
    at the first poll. A local file is stored by its absolute path. Returns the feed's row."""
    from mediaflow.resources import get_store

    if "://" in source:
        check_url(source, settings.allow_private_urls)
        where = source
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise InvalidInput(f"{source!r} is neither an http(s) URL nor a feed file")
        where = str(path.resolve())
    try:
        feed = parse_feed(where, settings.allow_private_urls)
    except UnsupportedFormat as exc:
        raise UnsupportedFormat(f"{source}: {exc}") from None
    row = get_store(settings.db_url).add_feed(where)
    save_source(row.id, feed.raw, settings)
    get_store(settings.db_url).update_feed(row.id, title=feed.title)
    return get_store(settings.db_url).get_feed(row.id)


def poll(feed_id: int, settings) -> list:
    """Parse a registered feed, record its new items, and return the items still to process.

    On the first poll only the newest `feed_backfill` items are taken, so adding a show with a
    500-episode back catalogue does not download all of it at once.
    """
    from mediaflow.resources import get_store

    store = get_store(settings.db_url)
    row = store.get_feed(feed_id)
    first = row.last_polled_at is None
    try:
        feed = parse_feed(row.url, settings.allow_private_urls)
    except MediaflowError as exc:
        store.update_feed(feed_id, error=str(exc)[:2000], last_polled_at=_now())
        raise
    save_source(feed_id, feed.raw, settings)
    items = feed.items[: settings.feed_backfill] if first else feed.items
    todo = store.record_items(feed_id, [
        {"guid": i.guid, "title": i.title, "enclosure_url": i.enclosure_url, "published_at": _naive(i.published_at),
         "chapters_url": i.chapters_url, "transcript_url": i.transcript_url, "description": i.description,
         "persons": [p.to_dict() for p in i.persons] or None} for i in items
    ])
    store.update_feed(feed_id, title=feed.title, error=None, last_polled_at=_now())
    return todo


def _download_path(item, settings) -> Path:
    import hashlib

    name = hashlib.sha256(item.enclosure_url.encode()).hexdigest()[:16]
    suffix = Path(urlsplit(item.enclosure_url).path).suffix.lower()
    suffix = suffix if suffix and len(suffix) <= 5 and suffix[1:].isalnum() else ".bin"
    return settings.data_path / "downloads" / f"{name}{suffix}"


def fetch_item(item, settings) -> Path:
    """Download an item's enclosure into the data dir's download folder (resumable)."""
    dest = _download_path(item, settings)
    if dest.exists():
        return dest
    return download(item.enclosure_url, dest, settings.max_upload_bytes, settings.allow_private_urls)


def discard_download(item, settings) -> None:
    dest = _download_path(item, settings)
    dest.unlink(missing_ok=True)
    dest.with_name(dest.name + ".part").unlink(missing_ok=True)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _naive(t: datetime | None) -> datetime | None:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t else None


# -- the source document, kept for re-publishing (GET /feeds/{id}/rss) ---------------------------
def source_path(feed_id: int, settings) -> Path:
    return settings.data_path / "feeds" / f"{int(feed_id)}.xml"


def save_source(feed_id: int, raw: bytes, settings) -> None:
    """Keep the feed's document as last fetched, atomically (a reader sees the old file or the new one);
    unchanged bytes leave the file, and so its modification time, alone."""
    import tempfile

    path = source_path(feed_id, settings)
    if not raw or (path.exists() and path.read_bytes() == raw):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_small(url: str, allow_private: bool, limit: int, timeout: float = 30.0) -> bytes:
    """A small document (JSON chapters, say) under the same SSRF rules and redirect checks as feeds."""
    return _get_small(url, allow_private, timeout, limit)
