"""Feeds as other podcast apps read them: `GET /feeds.opml`, the subscriptions as OPML 2.0."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from mediaflow import opml
from mediaflow.store import Store
from service.deps import store

router = APIRouter(tags=["feeds"])


@router.get("/feeds.opml", response_class=Response, responses={200: {"content": {"text/x-opml": {}}}})
def feeds_opml(db: Store = Depends(store)) -> Response:
    """Every subscribed feed as OPML 2.0 (import it into any podcast app, or `mediaflow feeds import`)."""
    return Response(opml.write(db.list_feeds()), media_type="text/x-opml; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="mediaflow.opml"'})
