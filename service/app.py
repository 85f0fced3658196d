"""The FastAPI application: routers per resource, errors mapped in one place."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mediaflow.config import get_settings
from service import errors, metrics
from service.deps import key_matches, require_read_key
from service.idle import IdleUnloader
from service.jobs import Jobs
from service.routes import docs, episodes, feeds, health, recommendations, speakers, transcriptions, tts, web


def create_app() -> FastAPI:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.jobs = Jobs(get_settings())
        app.state.idle = IdleUnloader(get_settings().models_idle_s, busy=lambda: app.state.jobs.running is not None)
        yield
        app.state.idle.stop()
        app.state.jobs.shutdown()

    app = FastAPI(
        title="mediaflow",
        version="0.1.0",
        description="Podcast transcripts, chapters, recommendation features and narrated explanations.",
        lifespan=lifespan,
        dependencies=[Depends(require_read_key)],
        docs_url=None, redoc_url=None,  # served by service/routes/docs.py, without a CDN
    )
    errors.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(NoSniff)
    app.add_middleware(metrics.MetricsMiddleware)
    app.add_api_route("/metrics", metrics.render, include_in_schema=False)
    app.include_router(health.router)
    app.include_router(episodes.router)
    app.include_router(speakers.router)
    app.include_router(recommendations.router)
    app.include_router(tts.router)
    app.include_router(transcriptions.router)
    app.include_router(feeds.router)
    app.include_router(web.router)
    app.include_router(docs.router)
    return app


class NoSniff:
    """`X-Content-Type-Options: nosniff` on every response, so no browser runs a JSON or audio body
    as a script or page (the player's own pages carry their full set of headers)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_header(msg):
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    msg = {**msg, "headers": headers + [(b"x-content-type-options", b"nosniff")]}
            await send(msg)

        await self.app(scope, receive, with_header)


MAX_BODY = 1 << 20  # every body but an upload: speech text, recommendation history, form fields
UPLOAD_PATHS = ("/episodes", "/v1/audio/transcriptions")


class BodyLimit:
    """Refuse a request body over its limit while it arrives, and an upload without the API key
    before it arrives, rather than after it has all been spooled.

    Starlette reads a whole multipart form into a temporary file before the endpoint (and its
    dependencies, the key check included) runs, so checks there come after the last byte: anyone
    could fill the disk. Uploads (`UPLOAD_PATHS`: `POST /episodes`, `/v1/audio/transcriptions`) may carry
    `max_upload_mb` plus 1 MiB of form; other bodies 1 MiB.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        s = get_settings()
        headers = dict(scope["headers"])
        upload = scope["path"].rstrip("/") in UPLOAD_PATHS
        if upload and not key_matches(headers.get(b"authorization", b"").decode("latin-1"), s):
            response = JSONResponse(errors.error_body("unauthorized", "missing or wrong API key"), status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        if upload:
            limit, message = s.max_upload_bytes + (1 << 20), f"upload is over the {s.max_upload_mb} MiB limit"
        else:
            limit, message = MAX_BODY, f"the request body is over the {MAX_BODY >> 20} MiB limit"
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:  # refused before a byte of the body is read
            response = JSONResponse(errors.error_body("input_too_large", message), status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            msg = await receive()
            received += len(msg.get("body", b""))
            if received > limit:  # chunked, or a lying Content-Length: stop reading here
                raise HTTPException(413, message)
            return msg

        await self.app(scope, counted, send)
