"""Dependencies: settings, the store and the API key check arrive through `Depends`."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPBearer

from mediaflow.config import Settings, get_settings
from mediaflow.resources import get_store
from mediaflow.store import Store


def settings() -> Settings:
    return get_settings()


def store(s: Settings = Depends(settings)) -> Store:
    return get_store(s.db_url)


PUBLIC_PATHS = ("/health", "/metrics", "/", "/static/", "/docs", "/redoc", "/openapi.json", "/favicon.ico")


# Declared for the OpenAPI document (an Authorize button in /docs); the header itself is read below,
# so every spelling is judged by `key_matches` alone.
bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="`Authorization: Bearer <MEDIAFLOW_API_KEY>`, when the server has a key.")


def require_read_key(request: Request, s: Settings = Depends(settings)) -> None:
    """With `read_requires_key`, every read outside `PUBLIC_PATHS` needs the key as well."""
    if not s.read_requires_key or request.method not in ("GET", "HEAD"):
        return
    path = request.url.path
    if path in PUBLIC_PATHS or path.startswith(("/static/", "/docs-assets/")):
        return
    _check(request.headers.get("authorization"), s)


def key_matches(authorization: str | None, s: Settings) -> bool:
    """True when no API key is configured, or the header is `Bearer <the key>`."""
    if s.api_key is None:
        return True
    expected = s.api_key.get_secret_value().encode()
    scheme, _, token = (authorization or "").partition(" ")
    # compare_digest: the time taken does not reveal how much of the key matched
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)


def require_api_key(request: Request, _=Security(bearer), s: Settings = Depends(settings)) -> None:
    """Write endpoints need `Authorization: Bearer <key>` when an API key is configured."""
    _check(request.headers.get("authorization"), s)


def check_key(request: Request, s: Settings) -> None:
    """The same check inside a route that needs the key only for some requests (a narration not yet made)."""
    _check(request.headers.get("authorization"), s)


def _check(authorization: str | None, s: Settings) -> None:
    if not key_matches(authorization, s):
        raise HTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})
