"""The one place where errors become HTTP responses: OpenAI's error JSON with the right status."""

from __future__ import annotations

import logging
import math

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from keel.call import Call
from keel.errors import KeelError, RateLimited, UpstreamError, http_status

log = logging.getLogger("keel.server")

_HTTP_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    """OpenAI's error JSON."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def error_response(exc: KeelError, call: Call | None = None) -> Response:
    """The response for a KeelError, with Retry-After and the call's id where known."""
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, UpstreamError) and exc.upstream_status == 429:
        retry_after = {k.lower(): v for k, v in exc.headers.items()}.get("retry-after")
        if retry_after:
            headers["retry-after"] = retry_after
    if call is not None:
        headers["x-keel-call-id"] = call.id
        headers["x-keel-feature"] = call.feature
    return Response(
        orjson.dumps(exc.to_openai()),
        status_code=http_status(exc),
        media_type="application/json",
        headers=headers,
    )


def internal_error(path: str, exc: BaseException) -> Response:
    """A bug still answers in the protocol (500, OpenAI error JSON) and is logged with its traceback."""
    log.exception("event=unhandled_error path=%s", path, exc_info=exc)
    return Response(
        error_body("internal error in the keel gateway", "server_error", "internal_error"),
        status_code=500,
        media_type="application/json",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app can raise answer in OpenAI's error format."""

    async def keel_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, KeelError)
        return error_response(exc)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        type_ = _HTTP_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if status == 404:
            message = "no such endpoint; keel serves /v1/chat/completions, /v1/models and /healthz"
        return Response(
            error_body(message, type_, f"http_{status}"),
            status_code=status,
            media_type="application/json",
            headers=exc.headers,
        )

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return Response(
            error_body(f"{loc}: {first.get('msg')}", "invalid_request_error", "invalid_request", loc),
            status_code=400,
            media_type="application/json",
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        return internal_error(request.url.path, exc)

    app.add_exception_handler(KeelError, keel_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
