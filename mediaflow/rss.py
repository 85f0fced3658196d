"""Feeds that podcast apps read: a subscribed feed re-published with what we made for each processed
episode (Podcasting 2.0 `podcast:transcript`, `chapters`, `soundbite`, `person`), and a show built from
uploads as a feed of its own.

The source document is kept byte for byte: the tags are inserted before each processed item's
`</item>` and the namespace on the root, so items we have not processed, comments, CDATA and other
namespaces pass through untouched. The document is first read with `defusedxml` (no entity
declarations, no external references), as OPML is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote, urljoin
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from mediaflow.errors import NotFound, UnsupportedFormat
from mediaflow.feeds import PODCAST_NS

SOUNDBITE_METHOD = "centrality-v1"
SOUNDBITE_MIN_S, SOUNDBITE_MAX_S, SOUNDBITE_TARGET_S = 15.0, 60.0, 30.0
MAX_SOUNDBITES = 3
AUDIO_TYPES = {"mp3": "audio/mpeg", "aac": "audio/aac", "opus": "audio/ogg", "vorbis": "audio/ogg",
               "flac": "audio/flac", "pcm_s16le": "audio/wav", "alac": "audio/mp4"}


@dataclass
class Soundbite:
    start: float
    duration: float
    title: str
    score: float = 0.0


@dataclass
class Enrichment:
    """What one processed episode adds to its item: links to our files, highlights, named speakers."""

    transcripts: list[dict] = field(default_factory=list)  # {url, type, language?, rel?}
    chapters_url: str | None = None
    soundbites: list[Soundbite] = field(default_factory=list)
    persons: list[dict] = field(default_factory=list)  # {name, role, group, img?, href?}


# -- what an episode adds --------------------------------------------------------------------------
def enrichment(episode, base_url: str, settings) -> Enrichment | None:
    """The tags of a processed episode (None while it is not done). `base_url` makes links absolute."""
    from mediaflow import speakers
    from mediaflow.resources import get_store

    if episode.status != "done":
        return None
    store = get_store(settings.db_url)
    base = f"{base_url.rstrip('/')}/episodes/{quote(episode.id)}"
    try:  # the features, not the transcript: a feed of long episodes is read without loading every transcript
        feats = store.get_features(episode.id)
    except NotFound:
        return None
    lang = {"language": feats.data["language"]} if feats.data.get("language") else {}
    out = Enrichment(transcripts=[
        {"url": f"{base}/transcript?format=vtt", "type": "text/vtt", **lang, "rel": "captions"},
        {"url": f"{base}/transcript?format=srt", "type": "application/x-subrip", **lang, "rel": "captions"},
        {"url": f"{base}/transcript?format=podcast", "type": "application/json", **lang},
    ])
    if store.chapters_row(episode.id) is not None:
        out.chapters_url = f"{base}/chapters?format=podcast"
    out.soundbites = soundbites(episode.id, settings, feats)
    found = speakers.load(episode.id, settings)
    if found is not None and found.names:
        talk = {}
        for t in found.diarization.turns:
            talk[t.speaker] = talk.get(t.speaker, 0.0) + (t.end - t.start)
        top = max(talk, key=talk.get) if talk else None
        feed_people = {str(p.get("name", "")).lower(): p for p in (getattr(episode, "persons", None) or [])}
        for label, named in found.names.items():
            tag = feed_people.get(named.name.lower(), {})
            role = (named.role or tag.get("role") or ("host" if label == top else "guest")).lower()
            person = {"name": named.name, "role": role, "group": (tag.get("group") or "cast").lower()}
            person.update({k: tag[k] for k in ("img", "href") if tag.get(k)})
            out.persons.append(person)
    return out


def tags(e: Enrichment, prefix: str = "podcast", skip: frozenset | set = frozenset()) -> list[str]:
    """The XML elements for an enrichment; `skip` names kinds the item already carries (`chapters`,
    `soundbite`, `person`, or `transcript:<type>`), which are the creator's and are left to stand alone."""
    out = []
    for t in e.transcripts:
        if f"transcript:{t['type']}" not in skip:
            out.append(_element(f"{prefix}:transcript", t))
    if e.chapters_url and "chapters" not in skip:
        out.append(_element(f"{prefix}:chapters", {"url": e.chapters_url, "type": "application/json+chapters"}))
    if "soundbite" not in skip:
        for s in e.soundbites:
            out.append(_element(f"{prefix}:soundbite", {"startTime": f"{s.start:.1f}", "duration": f"{s.duration:.1f}"},
                                s.title))
    if "person" not in skip:
        for p in e.persons:
            out.append(_element(f"{prefix}:person", {k: v for k, v in p.items() if k != "name"}, p["name"]))
    return out


def _element(name: str, attrs: dict, text: str | None = None) -> str:
    a = "".join(f" {k}={quoteattr(str(v))}" for k, v in attrs.items() if v is not None)
    return f"<{name}{a}>{escape(text)}</{name}>" if text else f"<{name}{a}/>"


# -- re-publishing a source feed --------------------------------------------------------------------
@dataclass
class _Item:
    end: int  # byte offset of its `</item>`
    guid: str = ""
    enclosure: str = ""
    has: set = field(default_factory=set)


def republish(raw: bytes, lookup, source_url: str = "") -> bytes:
    """The source document with each item that `lookup(guid, enclosure_url)` enriches given its tags.

    Raises `UnsupportedFormat` for a document that is not well-formed XML, not RSS 2.0, or declares
    entities (refused, never expanded)."""
    raw = _as_ascii_compatible(raw)
    _check_safe(raw)
    items, root_start, root_qname, ns = _scan(raw)
    prefix = next((p for p, uri in ns.items() if uri == PODCAST_NS and p), None)
    declare = b""
    if prefix is None:
        prefix = "podcast"
        while prefix in ns:  # the prefix is someone else's: take another
            prefix += "2"
        declare = f' xmlns:{prefix}="{PODCAST_NS}"'.encode()
    inserts: list[tuple[int, bytes]] = []
    if declare:
        inserts.append((root_start + 1 + len(root_qname.encode()), declare))
    for it in items:
        enc = urljoin(source_url, it.enclosure) if it.enclosure else ""
        e = lookup(it.guid or it.enclosure, enc)
        if e is None or raw[it.end:it.end + 2] != b"</":
            continue
        els = tags(e, prefix, it.has)
        if not els:
            continue
        line = raw.rfind(b"\n", 0, it.end) + 1
        indent = raw[line:it.end] if not raw[line:it.end].strip() else b""
        text = "".join(f"  {el}\n{indent.decode()}" for el in els)
        if not indent:
            text = "\n" + text
        inserts.append((it.end, text.encode("ascii", "xmlcharrefreplace")))
    out, last = [], 0
    for pos, text in sorted(inserts):
        out += [raw[last:pos], text]
        last = pos
    out.append(raw[last:])
    return b"".join(out)


def _as_ascii_compatible(raw: bytes) -> bytes:
    """UTF-16/32 documents re-encoded as UTF-8 (the inserts are ASCII with character references,
    which every other encoding feeds use reads as itself)."""
    head = raw[:200]
    codec = None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:4]:
        codec = "utf-16"
    elif re.match(rb"<\?xml[^>]*encoding=[\"']utf-(16|32)", head, re.I):
        codec = "utf-16"
    if codec is None:
        return raw
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        raise UnsupportedFormat("the source feed is not well-formed XML (a wrong UTF-16 encoding)") from None
    text = re.sub(r"^(<\?xml[^>]*encoding=[\"'])[^\"']+", r"\1UTF-8", text.lstrip("\ufeff"), count=1)
    return text.encode("utf-8")


def _check_safe(raw: bytes) -> None:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(raw, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise UnsupportedFormat(f"refused: the source feed declares entities or external references "
                           f"({type(exc).__name__}); it is not re-published") from None
    except ET.ParseError as exc:
        raise UnsupportedFormat(f"the source feed is not well-formed XML ({exc}); it cannot be re-published") \
            from None
    if root.tag != "rss" or root.find("channel") is None:
        kind = "an Atom feed" if root.tag.endswith("}feed") or root.tag == "feed" else f"<{root.tag[:40]}>"
        raise UnsupportedFormat(f"only RSS 2.0 feeds are re-published; the source is {kind}")


def _scan(raw: bytes) -> tuple[list[_Item], int, str, dict[str, str]]:
    """One expat pass: each channel item's guid, enclosure, existing podcast tags and `</item>` offset;
    the root's offset and name; the namespaces declared on the root and the channel."""
    p = expat.ParserCreate(namespace_separator=" ")
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.buffer_text = True
    items: list[_Item] = []
    ns: dict[str, str] = {}
    pending_ns: dict[str, str] = {}
    path: list[str] = []
    state = {"root": -1, "qname": "rss", "text": []}
    cur: list[_Item | None] = [None]

    def decl(prefix, uri):
        pending_ns[prefix or ""] = uri

    def start(name, attrs):
        if len(path) <= 1:
            ns.update(pending_ns)
        pending_ns.clear()
        if not path:
            state["root"] = p.CurrentByteIndex
            m = re.match(rb"<([^\s/>]+)", raw[p.CurrentByteIndex:p.CurrentByteIndex + 300])
            state["qname"] = m.group(1).decode() if m else "rss"
        path.append(name)
        if path == ["rss", "channel", "item"]:
            cur[0] = _Item(end=-1)
        elif cur[0] is not None and len(path) == 4:
            it = cur[0]
            if name == "enclosure" and attrs.get("url") and not it.enclosure:
                it.enclosure = attrs["url"].strip()
            elif name == "guid":
                state["text"] = []
            elif name.startswith(PODCAST_NS + " "):
                local = name.split(" ", 1)[1]
                it.has.add(f"transcript:{attrs.get('type', '')}" if local == "transcript" else local)

    def end(name):
        if path == ["rss", "channel", "item"] and cur[0] is not None:
            cur[0].end = p.CurrentByteIndex
            items.append(cur[0])
            cur[0] = None
        elif cur[0] is not None and len(path) == 4 and name == "guid":
            cur[0].guid = "".join(state["text"]).strip()[:1000]
        path.pop()

    def chars(data):
        if cur[0] is not None and len(path) == 4 and path[-1] == "guid":
            state["text"].append(data)

    p.StartNamespaceDeclHandler = decl
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    try:
        p.Parse(raw, True)
    except expat.ExpatError as exc:
        raise UnsupportedFormat(f"the source feed is not well-formed XML ({exc}); it cannot be re-published") \
            from None
    return items, state["root"], state["qname"], ns


def feed_rss(feed_id: int, base_url: str, settings) -> bytes:
    """A subscribed feed re-published with our tags on every processed item (`GET /feeds/{id}/rss`)."""
    from mediaflow import feeds
    from mediaflow.resources import get_store

    store = get_store(settings.db_url)
    row = store.get_feed(feed_id)
    path = feeds.source_path(feed_id, settings)
    if not path.is_file():
        raise NotFound(f"feed {feed_id} has no stored document yet; it is kept from its next poll "
                       "(`mediaflow feeds poll`)")
    by_guid, by_enclosure = {}, {}
    for item in store.feed_items(feed_id):
        if item.status == "done" and item.episode_id:
            by_guid[item.guid] = item.episode_id
            by_enclosure[item.enclosure_url] = item.episode_id
    made: dict[str, Enrichment | None] = {}

    def lookup(guid: str, enclosure: str) -> Enrichment | None:
        eid = by_guid.get(guid) or by_enclosure.get(enclosure)
        if eid is None:
            return None
        if eid not in made:
            try:
                made[eid] = enrichment(store.get_episode(eid), base_url, settings)
            except NotFound:  # the episode was deleted since: the item passes through
                made[eid] = None
        return made[eid]

    return republish(path.read_bytes(), lookup, row.url if "://" in row.url else "")


# -- a show of uploads as a feed ------------------------------------------------------------------
def show_rss(show: str, base_url: str, settings) -> bytes:
    """Every episode of `show` as an RSS 2.0 feed, the enclosure our copy of the audio
    (`GET /shows/{show}/rss`). NotFound when no episode has that show."""
    from mediaflow.resources import get_store

    episodes = get_store(settings.db_url).show_episodes(show)
    if not episodes:
        raise NotFound(f"no episode has the show {show[:80]!r}")
    base = base_url.rstrip("/")
    langs = []
    items = []
    for ep in episodes:
        e = enrichment(ep, base, settings)
        if e and e.transcripts and e.transcripts[0].get("language"):
            langs.append(e.transcripts[0]["language"])
        when = (ep.published_at or ep.created_at).replace(tzinfo=timezone.utc)
        media = AUDIO_TYPES.get(ep.codec) or ("video/mp4" if "mp4" in ep.container else "application/octet-stream")
        parts = [
            f"<title>{escape(ep.title)}</title>",
            f'<guid isPermaLink="false">{escape(f"mediaflow:{ep.id}")}</guid>',
            f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>",
            _element("enclosure", {"url": f"{base}/episodes/{quote(ep.id)}/audio", "length": ep.size_bytes,
                                   "type": media}),
            f"<itunes:duration>{int(round(ep.duration_s or 0))}</itunes:duration>",
        ]
        if ep.description:
            parts.insert(1, f"<description>{escape(ep.description)}</description>")
        parts += tags(e) if e else []
        items.append("    <item>\n" + "".join(f"      {x}\n" for x in parts) + "    </item>\n")
    lang = max(set(langs), key=langs.count) if langs else None
    newest = max((ep.updated_at for ep in episodes), default=datetime.now(timezone.utc).replace(tzinfo=None))
    head = [
        f"<title>{escape(show)}</title>",
        f"<link>{escape(base)}/shows/{escape(quote(show, safe=''))}/rss</link>",
        f"<description>{escape(show)}: episodes processed by mediaflow</description>",
        "<generator>mediaflow</generator>",
        f"<lastBuildDate>{format_datetime(newest.replace(tzinfo=timezone.utc), usegmt=True)}</lastBuildDate>",
    ] + ([f"<language>{escape(lang)}</language>"] if lang else [])
    doc = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<rss version="2.0" xmlns:podcast="{PODCAST_NS}" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">\n'
           "  <channel>\n" + "".join(f"    {x}\n" for x in head) + "".join(items) + "  </channel>\n</rss>\n")
    return doc.encode("utf-8")


# -- soundbites -----------------------------------------------------------------------------------
def choose_soundbites(sents, embed, episode_vec: np.ndarray | None = None, k: int = MAX_SOUNDBITES) -> list[Soundbite]:
    """One to `k` passages of 15-60 s (sentence bounded, aiming at 30 s) whose text is closest to the
    episode as a whole: the cosine of each window's embedding with `episode_vec` (the mean of the
    windows' when not given). `embed(texts)` returns unit vectors. Non-overlapping, best first."""
    windows = []
    last_start = -1e9
    for i, s in enumerate(sents):
        if s.start - last_start < SOUNDBITE_TARGET_S / 4:  # a candidate every ~7 s keeps the embedding cheap
            continue
        j = i
        while j + 1 < len(sents) and sents[j + 1].end - s.start <= SOUNDBITE_MAX_S and \
                sents[j].end - s.start < SOUNDBITE_TARGET_S:
            j += 1
        dur = min(sents[j].end, s.start + SOUNDBITE_MAX_S) - s.start
        if dur >= SOUNDBITE_MIN_S:
            windows.append((s.start, dur, " ".join(x.text for x in sents[i:j + 1])))
            last_start = s.start
    if not windows:
        return []
    vecs = np.asarray(embed([w[2] for w in windows]), dtype=np.float32)
    target = episode_vec if episode_vec is not None and episode_vec.shape[-1] == vecs.shape[1] else vecs.mean(0)
    target = target / max(float(np.linalg.norm(target)), 1e-9)
    scores = vecs @ target
    chosen: list[Soundbite] = []
    for i in np.argsort(-scores):
        start, dur, text = windows[i]
        if any(start < c.start + c.duration and c.start < start + dur for c in chosen):
            continue
        chosen.append(Soundbite(round(start, 1), round(dur, 1), _headline(text), round(float(scores[i]), 4)))
        if len(chosen) == k:
            break
    return chosen


def _headline(text: str, limit: int = 128) -> str:
    """The passage's opening words, at most 128 characters (the spec's limit for a soundbite's title)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def soundbites(episode_id: str, settings, feats=None) -> list[Soundbite]:
    """An episode's soundbites, chosen once and kept in the data dir until its features are made again
    (they are whenever the transcript changes). `feats`: its features row, when the caller has it."""
    from mediaflow.chapters.sentences import from_transcript
    from mediaflow.features import decode_vector
    from mediaflow.resources import get_store

    store = get_store(settings.db_url)
    try:
        feats = feats or store.get_features(episode_id)
    except NotFound:
        return []
    key = hashlib.sha256(json.dumps([SOUNDBITE_METHOD, feats.model_id, feats.version,
                                     str(feats.created_at)]).encode()).hexdigest()[:16]
    path = settings.data_path / "derived" / f"{episode_id}-soundbites.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return [Soundbite(**s) for s in cached["soundbites"]]
    except (OSError, ValueError, TypeError, KeyError):
        pass
    try:
        transcript = store.get_transcript(episode_id)
    except NotFound:
        return []
    from mediaflow.embed import get_embedder

    vec = decode_vector(feats.data["embedding"]) if feats.data.get("embedding") else None
    found = choose_soundbites(from_transcript(transcript), get_embedder().encode, vec)
    _write_atomic(path, json.dumps({"key": key, "method": SOUNDBITE_METHOD,
                                    "soundbites": [asdict(s) for s in found]}).encode())
    return found


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- conditional GET ------------------------------------------------------------------------------
def stamp(state_path: Path, body: bytes) -> tuple[str, datetime]:
    """(ETag, Last-Modified) of a generated body. The date is when this body was first served: kept
    beside the ETag in `state_path`, so it moves only when the content does."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    try:
        state = json.loads(state_path.read_text())
        if state.get("etag") == etag:
            return etag, datetime.fromisoformat(state["last_modified"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    now = datetime.now(timezone.utc).replace(microsecond=0)
    _write_atomic(state_path, json.dumps({"etag": etag, "last_modified": now.isoformat()}).encode())
    return etag, now
