"""Prometheus metrics: request counts and latencies per route, flow runs, synthesis seconds.

One registry per process (not the global default), so the app can be created many times in tests.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response

REGISTRY = CollectorRegistry()
REQUESTS = Counter("mediaflow_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "mediaflow_http_request_seconds", "HTTP request latency (to the end of the response headers)",
    ["method", "route"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
FLOW_RUNS = Counter("mediaflow_flow_runs_total", "Flow runs started by the API", ["flow", "state"], registry=REGISTRY)
SYNTHESIS = Counter("mediaflow_synthesis_seconds_total", "Seconds spent synthesising speech", ["voice"],
                    registry=REGISTRY)
AUDIO_OUT = Counter("mediaflow_synthesised_audio_seconds_total", "Seconds of speech synthesised", ["voice"],
                    registry=REGISTRY)


class _LLMFallbacks:
    """Generated texts (titles, summaries) replaced by the extractive or template ones in this process,
    read from `mediaflow.llm` at scrape time: the library counts without knowing Prometheus."""

    def collect(self):
        from mediaflow import llm

        family = CounterMetricFamily("mediaflow_llm_fallbacks", "Generated texts replaced by the fallback",
                                     labels=["kind", "reason"])
        for (kind, reason), n in sorted(llm.fallback_counts().items()):
            family.add_metric([kind, reason], n)
        yield family


REGISTRY.register(_LLMFallbacks())


class MetricsMiddleware:
    """Count and time every request by its route template (`/episodes/{episode_id}`), not its URL.

    Plain ASGI rather than `BaseHTTPMiddleware`: no extra task and body copy per request.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = scope.get("route")
                name = getattr(route, "path", None) or "unmatched"
                LATENCY.labels(scope["method"], name).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            REQUESTS.labels(scope["method"], getattr(route, "path", None) or "unmatched", str(status["code"])).inc()


def render() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
