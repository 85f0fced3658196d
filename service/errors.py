"""Every error leaves the API as `{"error": {"code", "message"}}`; the status codes live here."""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mediaflow import errors as e

log = logging.getLogger("mediaflow.service")

STATUS = {
    e.InvalidInput: 400,
    e.NotFound: 404,
    e.InputTooLarge: 413,
    e.UnsupportedFormat: 415,
    e.EmptyAudio: 422,
    e.AudioDecodeError: 422,
    e.ModelUnavailable: 503,
    e.DependencyMissing: 503,
    e.StorageError: 503,
    e.Busy: 409,
    e.Overloaded: 429,
}


def status_for(exc: e.MediaflowError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["code", "message"], "additionalProperties": False,
        "properties": {"code": {"type": "string", "description": "Stable, machine-readable: `not_found`, ..."},
                       "message": {"type": "string", "description": "What went wrong, for a person."}},
    }},
}


def document_errors(spec: dict) -> dict:
    """The OpenAPI contract says what the handlers below send: FastAPI documents its own
    `{"detail": [...]}` for 422, which this API never returns, and no other error at all."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        spec["components"]["schemas"].pop(name, None)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for item in spec.get("paths", {}).values():
        for op in item.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            responses["4XX"] = {"description": "Refused: bad input, not found, too large, unauthorized, ...", **error}
            responses["5XX"] = {"description": "Storage or a model unavailable (503), or an internal error", **error}
    return spec


def install(app: FastAPI) -> None:
    openapi = app.openapi

    def documented() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(openapi())
        return app.openapi_schema

    app.openapi = documented

    @app.exception_handler(e.MediaflowError)
    async def mediaflow_error(_: Request, exc: e.MediaflowError):
        retry = getattr(exc, "retry_after", None)
        return JSONResponse(error_body(exc.code, str(exc)), status_code=status_for(exc),
                            headers={"Retry-After": str(retry)} if retry is not None else None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        # a field name is the client's text: cut, so a 10,000-character key is not echoed whole
        msgs = [f"{'.'.join(e.excerpt(p, quote=False) for p in err.get('loc', ()))}: {err.get('msg')}"
                for err in exc.errors()]
        return JSONResponse(error_body("invalid_input", "; ".join(msgs)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                413: "input_too_large"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):  # e.g. the ID3-tagged copy
            log.error("the data dir is full: %s", exc)
            return JSONResponse(error_body("storage_error", "no space left in the data dir; free some space and retry"),
                                status_code=503)
        # Log the trace for the operator; never send paths or stack traces to the client.
        log.exception("unhandled error")
        # Starlette re-raises after this response and uvicorn then drops the connection: say so, or a
        # keep-alive client reuses it and its next request dies with a connection reset.
        return JSONResponse(error_body("internal_error", "internal error; see the server log"), status_code=500,
                            headers={"Connection": "close"})
