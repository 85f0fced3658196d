"""API docs at `/docs` (Swagger UI) and `/redoc`, served from this host: a self-hosted install is often
offline, and FastAPI's default pages load their scripts from a CDN (a blank page without one)."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript"}
PREFIX = "/docs-assets/"

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)  # the installed packages do not change under a running server
def assets_dir() -> Path | None:
    """Swagger UI 5 and ReDoc as shipped inside the `fastapi-offline` wheel (MIT), if installed."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "static"
    return folder if all((folder / name).is_file() for name in ASSETS) else None


def _url(name: str) -> str:
    # Without the local copies, fall back to FastAPI's CDN defaults (fine wherever the browser is online).
    if assets_dir() is not None:
        return PREFIX + name
    return {"swagger-ui-bundle.js": "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js",
            "swagger-ui.css": "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css",
            "redoc.standalone.js": "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"}[name]


@router.get("/docs")
def swagger() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="mediaflow API",
                               swagger_js_url=_url("swagger-ui-bundle.js"), swagger_css_url=_url("swagger-ui.css"),
                               swagger_favicon_url="/favicon.ico")


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title="mediaflow API", redoc_js_url=_url("redoc.standalone.js"),
                          redoc_favicon_url="/favicon.ico", with_google_fonts=False)


REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@lru_cache(maxsize=1)
def _offline_redoc() -> bytes:
    # ReDoc's sidebar footer loads Redocly's logo from their CDN whatever the options: point it at ours.
    return (assets_dir() / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO.encode(), b"/favicon.ico")


@router.get(PREFIX + "{name}")
def asset(name: str) -> Response:
    folder = assets_dir()
    if folder is None or name not in ASSETS:  # a fixed list: no path from the request reaches the disk
        raise HTTPException(404, "no such file")
    headers = {"Cache-Control": "public, max-age=86400"}
    if name == "redoc.standalone.js":
        return Response(_offline_redoc(), media_type=ASSETS[name], headers=headers)
    return FileResponse(folder / name, media_type=ASSETS[name], headers=headers)
