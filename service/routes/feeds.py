"""Feeds as other podcast apps read them: `GET /feeds.opml`, the subscriptions as OPML 2.0; each
subscribed feed re-published with our transcripts, chapters, soundbites and speakers
(`GET /feeds/{id}/rss`), and a show of uploads as a feed (`GET /shows/{show}/rss`)."""

from __future__ import annotations

from datetime import timezone
from email.utils import format_datetime, parsedate_to_datetime
from hashlib import sha256

from fastapi import APIRouter, Depends, Path, Request, Response

from mediaflow import opml, rss
from mediaflow.config import Settings
from mediaflow.store import Store
from service.deps import settings, store

router = APIRouter(tags=["feeds"])

RSS_TYPE = "application/rss+xml"
_EXAMPLE_ITEM = """<item>
  <title>Ash at dawn</title><guid>ep-1</guid>
  <enclosure url="https://example.org/ep1.mp3" type="audio/mpeg" length="1203044"/>
  <podcast:transcript url="http://localhost:8000/episodes/3f2a9c0d1e4b5a6c/transcript?format=vtt" type="text/vtt" language="en" rel="captions"/>
  <podcast:transcript url="http://localhost:8000/episodes/3f2a9c0d1e4b5a6c/transcript?format=srt" type="application/x-subrip" language="en" rel="captions"/>
  <podcast:transcript url="http://localhost:8000/episodes/3f2a9c0d1e4b5a6c/transcript?format=podcast" type="application/json" language="en"/>
  <podcast:chapters url="http://localhost:8000/episodes/3f2a9c0d1e4b5a6c/chapters?format=podcast" type="application/json+chapters"/>
  <podcast:soundbite startTime="73.4" duration="29.8">Scientists measured the lava flow with drones</podcast:soundbite>
  <podcast:person role="host" group="cast">Ada Lovelace</podcast:person>
</item>"""
_RSS_DOC = {
    200: {"description": "RSS 2.0 with the Podcasting 2.0 namespace", "headers": {
        "ETag": {"description": "Changes whenever the body does", "schema": {"type": "string"}},
        "Last-Modified": {"description": "When this body was first served", "schema": {"type": "string"}}},
        "content": {RSS_TYPE: {"example": _EXAMPLE_ITEM}}},
    304: {"description": "Not modified (If-None-Match or If-Modified-Since)"},
}


@router.get("/feeds.opml", response_class=Response, responses={200: {"content": {"text/x-opml": {}}}})
def feeds_opml(db: Store = Depends(store)) -> Response:
    """Every subscribed feed as OPML 2.0 (import it into any podcast app, or `mediaflow feeds import`)."""
    return Response(opml.write(db.list_feeds()), media_type="text/x-opml; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="mediaflow.opml"'})


@router.get("/feeds/{feed_id}/rss", response_class=Response, responses=_RSS_DOC)
def feed_rss(request: Request, feed_id: int = Path(ge=1, le=2**31 - 1), s: Settings = Depends(settings)) -> Response:
    """The subscribed feed as last polled, each processed item given `podcast:transcript` (WebVTT, SRT,
    JSON), `podcast:chapters`, `podcast:soundbite` (one to three 15-60 s passages closest to the
    episode's content) and `podcast:person` (named speakers). The enclosure stays the source's; items
    not processed yet, and tags the creator already wrote, pass through unchanged. Conditional GET."""
    body = rss.feed_rss(feed_id, _base(request), s)
    return _conditional(request, body, s.data_path / "feeds" / f"{feed_id}.served.json")


@router.get("/shows/{show}/rss", response_class=Response, responses=_RSS_DOC)
def show_rss(request: Request, show: str = Path(min_length=1, max_length=500), s: Settings = Depends(settings)) -> Response:
    """Every episode of a show (uploads with `show=`, or a feed's title) as an RSS feed: the enclosure is
    our copy of the audio, each processed episode carries the same tags as `/feeds/{id}/rss`."""
    body = rss.show_rss(show, _base(request), s)
    key = sha256(show.encode()).hexdigest()[:16]
    return _conditional(request, body, s.data_path / "derived" / f"show-{key}.served.json")


# Podcast apps and feed checkers ask with HEAD (the headers alone) before they fetch.
router.add_api_route("/feeds/{feed_id}/rss", feed_rss, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/shows/{show}/rss", show_rss, methods=["HEAD"], include_in_schema=False)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _conditional(request: Request, body: bytes, state) -> Response:
    """ETag and Last-Modified; 304 when If-None-Match matches, or (without it) If-Modified-Since is not older."""
    etag, modified = rss.stamp(state, body)
    headers = {"ETag": etag, "Last-Modified": format_datetime(modified, usegmt=True), "Cache-Control": "no-cache"}
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        if etag in tags or "*" in tags:
            return Response(status_code=304, headers=headers)
    elif ims := request.headers.get("if-modified-since"):
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            since = None
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        if since is not None and modified <= since:
            return Response(status_code=304, headers=headers)
    return Response(body, media_type=RSS_TYPE, headers=headers)

