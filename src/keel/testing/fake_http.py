"""The few ASGI primitives the fake upstream needs: read a body, answer JSON, answer OpenAI errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from keel.testing.fake_chat import BadRequest

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADER = (b"content-type", b"application/json")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def disconnected(receive: Receive) -> None:
    """Return once the client has disconnected."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge ASGI lifespan startup and shutdown (there is nothing to set up)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(
    send: Send, status: int, payload: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer ``payload`` as JSON with ``status``."""
    headers = [JSON_HEADER, (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def error(
    send: Send, status: int, message: str, *, param: str | None = None, code: str | None = None
) -> None:
    """Answer OpenAI's error JSON (a 429 also says ``Retry-After: 1``)."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if code is None:
        code = "rate_limit_exceeded" if status == 429 else kind
    err = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    extra = ((b"retry-after", b"1"),) if status == 429 else ()
    await respond(send, status, orjson.dumps(err), extra)


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; BadRequest (a 400) otherwise."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data
