"""``POST /v1/chat/completions``: a request becomes a Call; the answer goes back as OpenAI JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from keel.call import Call, Result
from keel.config import KeyConfig
from keel.errors import InvalidRequest, KeelError, PayloadTooLarge
from keel.llm.providers.base import Chunk
from keel.pipeline import Pipeline
from keel.server.auth import KeyRing
from keel.server.errors import error_response
from keel.server.protocol import parse_chat_request
from keel.server.sources import (
    attach_documents,
    attach_filters,
    source_fields,
    source_headers,
    stream_sources,
)
from keel.validate.tool_confirm import confirm, pending_confirmation

FEATURE_HEADER = "x-keel-feature"


class ChatEndpoint:
    """The chat-completions handler, bound to one pipeline, key ring and body limit."""

    def __init__(self, pipeline: Pipeline, keyring: KeyRing, max_body_bytes: int) -> None:
        self.pipeline = pipeline
        self.keyring = keyring
        self.max_body_bytes = max_body_bytes

    async def __call__(self, request: Request) -> Response:
        """Answer one chat-completions request; every refusal is OpenAI error JSON with a 4xx status."""
        call: Call | None = None
        try:
            key = await self.keyring.authenticate(request.headers.get("authorization"))
            body = parse_chat_request(await read_body(request, self.max_body_bytes))
            call = self._make_call(request, body, key)
            if call.stream:
                events = await self.pipeline.open_stream(call)
                return StreamingResponse(
                    _sse(events, call), media_type="text/event-stream", headers=_stream_headers(call)
                )
            result = await self.pipeline.run(call)
        except KeelError as exc:
            return error_response(exc, call)
        return Response(
            orjson.dumps(_body(result, call)), media_type="application/json", headers=_headers(call)
        )

    def _make_call(self, request: Request, body: dict[str, Any], key: KeyConfig | None) -> Call:
        name = request.headers.get(FEATURE_HEADER) or body.pop("model", None) or None
        body.pop("model", None)
        feature = self.pipeline.feature(name)
        self.keyring.check_feature(key, feature.config)
        options = body.pop("keel", None) or {}
        call = Call(
            feature=feature.name,
            messages=body.pop("messages"),
            stream=bool(body.pop("stream", False)),
            params=body,
            key_id=key.name if key else None,
            variables=options.get("variables") or {},
            metadata=options.get("metadata") or {},
            traceparent=request.headers.get("traceparent"),  # the caller's trace, continued by ours
        )
        if options.get("confirm"):
            if feature.tools is None or feature.tools.confirm is None:  # else the model would be asked
                raise InvalidRequest(
                    f"feature {feature.name!r} has no tools that need confirmation",
                    code="tool_confirmation_invalid",
                    param="keel.confirm",
                )
            confirm(call, options["confirm"])
        attach_documents(call, feature.config, options.get("documents"))
        attach_filters(call, feature.config, options.get("filters"))
        return call


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body is {declared} bytes; the limit is {limit} (server.max_body_bytes)"
        )
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes (server.max_body_bytes)")
        parts.append(part)
    return b"".join(parts)


def _body(result: Result, call: Call) -> dict[str, Any]:
    comp = result.completion
    assert comp is not None  # run() returns only after the LLM layer answered
    out: dict[str, Any] = {
        "id": comp.id or f"chatcmpl-{call.id}",
        "object": "chat.completion",
        "created": comp.created or int(call.started_at),
        "model": comp.model or call.model,
        "choices": comp.choices,
        "usage": result.usage.to_openai(),
    }
    out.update(comp.extra)
    keel: dict[str, Any] = {"call_id": call.id, "feature": call.feature, "cost_usd": result.usage.cost_usd}
    if call.cache:
        keel["cache"] = call.cache
        keel["saved_usd"] = call.saved_usd
    if call.route:
        keel["route"] = call.route
    if result.verdicts:
        keel["verdicts"] = [v.to_dict() for v in result.verdicts]
    keel.update(source_fields(result))
    pending = pending_confirmation(comp)
    if pending is not None:
        keel["pending_confirmation"] = pending
    out["keel"] = keel
    return out


def _headers(call: Call) -> dict[str, str]:
    h = _stream_headers(call)
    h["x-keel-cost-usd"] = f"{call.usage.cost_usd:.8f}"
    if call.cache:
        h["x-keel-cache"] = call.cache
    if call.route:
        h["x-keel-route"] = call.route
    h["x-keel-latency-ms"] = f"{call.timings.get('total', 0.0):.3f}"
    h.update(source_headers(call, answered=True))
    return h


def _stream_headers(call: Call) -> dict[str, str]:
    h = {"x-keel-call-id": call.id, "x-keel-feature": call.feature, "x-keel-model": call.model or ""}
    if call.prompt_name:
        h["x-keel-prompt"] = call.prompt_name
        h["x-keel-prompt-version"] = call.prompt_version or ""
    if call.stream:
        h.update(source_headers(call, answered=False))
        h["cache-control"] = "no-cache"
        h["x-accel-buffering"] = "no"
    return h


async def _sse(events: AsyncIterator[Chunk], call: Call) -> AsyncIterator[bytes]:
    """OpenAI's SSE framing; a failure after the first chunk ends the stream with an error event.

    A call that had sources ends with one more chunk before ``[DONE]``: no choices (like OpenAI's
    usage chunk) and a ``keel`` field with the sources and the citations of the whole answer.
    """
    last: Chunk | None = None
    try:
        async for chunk in events:
            last = chunk
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except KeelError as exc:
        yield b"data: " + orjson.dumps(exc.to_openai()) + b"\n\n"
        return
    if (closing := stream_sources(call, last)) is not None:
        yield b"data: " + orjson.dumps(closing) + b"\n\n"
    yield b"data: [DONE]\n\n"
