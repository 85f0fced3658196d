"""The listener's web player: one page at `/` and its static files, with strict security headers."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Self only: the page has no inline script or style, so neither needs an exception. `blob:` media is
# the fetched narration (fetched rather than streamed so that an error body can be shown).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

router = APIRouter(tags=["web"], include_in_schema=False)

# StaticFiles does the path checks, ETags and 304s; the route below only adds the headers.
_files = StaticFiles(directory=STATIC_DIR)


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@router.get("/")
def index() -> Response:
    """The player page (hash-routed: `#/` lists episodes, `#/episodes/{id}` plays one)."""
    # no-cache: a new release's page must not pair with stale cached scripts
    return _secured(FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                                 headers={"Cache-Control": "no-cache"}))


@router.get("/static/{path:path}")
async def static(path: str, request: Request) -> Response:
    # normalised as StaticFiles does for a mount; its lookup refuses anything outside the folder
    response = await _files.get_response(os.path.normpath(os.path.join(*path.split("/"))), request.scope)
    response.headers.setdefault("Cache-Control", "no-cache")
    return _secured(response)


@router.get("/favicon.ico")
def favicon() -> Response:
    return _secured(FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml"))
