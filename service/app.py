"""The FastAPI application: routers per resource, errors mapped in one place."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from service import errors, metrics
from service.deps import require_read_key
from service.jobs import Jobs
from service.routes import episodes, health, recommendations, tts, web


def create_app() -> FastAPI:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.jobs = Jobs(workers=1)
        yield
        app.state.jobs.shutdown()

    app = FastAPI(
        title="mediaflow",
        version="0.1.0",
        description="Podcast transcripts, chapters, recommendation features and narrated explanations.",
        lifespan=lifespan,
        dependencies=[Depends(require_read_key)],
    )
    errors.install(app)
    app.add_middleware(metrics.MetricsMiddleware)
    app.add_api_route("/metrics", metrics.render, include_in_schema=False)
    app.include_router(health.router)
    app.include_router(episodes.router)
    app.include_router(recommendations.router)
    app.include_router(tts.router)
    app.include_router(web.router)
    return app
