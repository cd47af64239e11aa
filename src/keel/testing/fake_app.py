"""The fake upstream as a raw ASGI app: OpenAI's endpoints, fault injection and control endpoints.

Raw ASGI (no framework routing or validation) because this is the reference server of our
benchmarks: what it costs per request must be as close to nothing as Python allows.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import struct
from collections.abc import Awaitable, Callable
from random import Random
from typing import Any

import orjson

from keel.llm.tokens import count_tokens
from keel.testing import fake_chat
from keel.testing.fake_chat import BadRequest
from keel.testing.fake_content import BREAKAGES, embedding
from keel.testing.fake_http import (
    SSE_HEADERS,
    Receive,
    Scope,
    Send,
    disconnected,
    error,
    json_object,
    lifespan,
    read_body,
    respond,
)
from keel.testing.fake_knobs import Knobs
from keel.testing.fake_stats import Stats

FAULT_HEADER = b"x-fake-fault"  # error | timeout | malformed | none: forces this request's outcome
MALFORMED_HEADER = b"x-fake-malformed"  # which breakage of JSON content (see fake_content.BREAKAGES)
STREAM_ERROR_HEADER = b"x-fake-stream-error-after"  # N: a stream fails after N content chunks
_FAULTS = {"error": "error", "timeout": "timeout", "malformed": "malformed", "none": "ok"}


class FakeApp:
    """The ASGI application behind ``FakeUpstream`` and ``keel fake-upstream``."""

    def __init__(self, knobs: Knobs | None = None) -> None:
        self.knobs = knobs or Knobs()
        self.rng = Random(self.knobs.seed)
        self.stats = Stats()
        self.closing = asyncio.Event()  # set on shutdown: hanging and sleeping requests end now
        self._seq = itertools.count(1)
        self._routes: dict[tuple[str, str], Callable[..., Awaitable[str]]] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._models,
            ("GET", "/healthz"): self._health,
        }

    # -- runtime control -----------------------------------------------------------------------

    def configure(self, **changes: Any) -> Knobs:
        """Change knobs now (ValueError on a bad one); a new seed restarts the fault draws."""
        knobs = self.knobs.replace(**changes)
        if "seed" in changes:
            self.rng = Random(knobs.seed)
        self.knobs = knobs
        return knobs

    def reset(self) -> None:
        """Zero the stats and restart the fault draws from the seed."""
        in_flight = self.stats.in_flight
        self.stats = Stats(in_flight=in_flight, max_in_flight=in_flight)
        self.rng = Random(self.knobs.seed)

    def open(self) -> None:
        """Get ready to serve (again): requests wait and hang normally until ``close()``."""
        self.closing = asyncio.Event()

    def close(self) -> None:
        """End hanging and sleeping requests (call on the server's loop)."""
        self.closing.set()

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        body = await read_body(receive)
        if path.startswith("/_fake/"):
            await self._control(method, path, body, send)
            return
        stats = self.stats
        stats.requests += 1
        stats.paths[path] = stats.paths.get(path, 0) + 1
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        stats.last = (method, path, scope["headers"], body)
        outcome = "error"
        try:
            handler = self._routes.get((method, path))
            if handler is None:
                if any(p == path for _, p in self._routes):
                    await error(send, 405, f"method not allowed: {method} {path}", code="method_not_allowed")
                else:
                    await error(send, 404, f"unknown path: {method} {path}", code="not_found")
            else:
                outcome = await handler(scope, receive, send, body)
        finally:
            # reset() may have replaced the stats meanwhile: count in the current ones.
            now = self.stats
            now.outcomes[outcome] += 1
            now.in_flight = max(0, now.in_flight - 1)

    # -- endpoints -----------------------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> str:
        knobs = self.knobs
        try:
            forced, broken_kind, error_after = _fault_headers(scope["headers"])
            if error_after is None:
                error_after = knobs.stream_error_after
            req = json_object(raw)
            fault = forced or self._draw(knobs)
            fmt = req.get("response_format")
            json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object")
            broken = (broken_kind or "random") if fault == "malformed" and json_mode else None
            p = fake_chat.plan(
                req,
                default_model=knobs.model,
                seq=next(self._seq),
                usage=not knobs.no_usage,
                broken=broken,
                rng=self.rng,
                rogue_tool=knobs.rogue_tool,
            )
        except BadRequest as exc:
            await error(send, 400, str(exc), param=exc.param)
            return "error"
        ended = await self._before_answer(fault, receive, send, knobs)
        if ended is not None:
            return ended
        if req.get("stream") is True:
            options = req.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            events = fake_chat.events(
                p,
                include_usage=include_usage,
                error_after=error_after,
                malformed=fault == "malformed" and not json_mode,
            )
            completed = await self._send_stream(receive, send, events, knobs)
            if not completed or events[-1] != fake_chat.DONE:
                return "error"
            return fault
        payload = fake_chat.body(p)
        if fault == "malformed" and not json_mode:
            payload = payload[: len(payload) // 2]
        await respond(send, 200, payload)
        return fault

    async def _before_answer(self, fault: str, receive: Receive, send: Send, knobs: Knobs) -> str | None:
        """Hang, wait the latency, or fail as the fault says; the outcome if that ended the request."""
        if fault == "timeout":
            return await self._hang(receive, send, knobs)
        if knobs.latency_ms and await self._sleep(knobs.latency_ms):
            return await self._shutting_down(send)
        if fault == "error":
            await error(send, knobs.error_status, "the fake upstream failed (injected error)")
            return "error"
        return None

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> str:
        knobs = self.knobs
        try:
            forced, _, _ = _fault_headers(scope["headers"])
            req = json_object(raw)
            texts = _embedding_inputs(req.get("input"))
            dim = req.get("dimensions") or knobs.embedding_dim
            if not isinstance(dim, int) or dim < 1:
                raise BadRequest("dimensions: must be a positive integer", "dimensions")
        except BadRequest as exc:
            await error(send, 400, str(exc), param=exc.param)
            return "error"
        fault = forced or self._draw(knobs)
        ended = await self._before_answer(fault, receive, send, knobs)
        if ended is not None:
            return ended
        as_base64 = req.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vec: Any = embedding(text, dim)
            if as_base64:
                vec = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vec})
        tokens = sum(count_tokens(t) for t in texts)
        out: dict[str, Any] = {"object": "list", "data": data, "model": req.get("model") or knobs.model}
        if not knobs.no_usage:
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        payload = orjson.dumps(out)
        if fault == "malformed":
            payload = payload[: len(payload) // 2]
        await respond(send, 200, payload)
        return fault

    async def _models(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> str:
        model = {"id": self.knobs.model, "object": "model", "created": 0, "owned_by": "keel-fake-upstream"}
        await respond(send, 200, orjson.dumps({"object": "list", "data": [model]}))
        return "ok"

    async def _health(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> str:
        await respond(send, 200, b'{"status":"ok"}')
        return "ok"

    async def _control(self, method: str, path: str, raw: bytes, send: Send) -> None:
        if (method, path) == ("GET", "/_fake/stats"):
            await respond(send, 200, orjson.dumps(self.stats.snapshot()))
        elif (method, path) == ("POST", "/_fake/reset"):
            self.reset()
            await respond(send, 200, orjson.dumps(self.stats.snapshot()))
        elif (method, path) == ("GET", "/_fake/config"):
            await respond(send, 200, orjson.dumps(self.knobs.to_dict()))
        elif (method, path) == ("POST", "/_fake/config"):
            try:
                knobs = self.configure(**json_object(raw))
            except (BadRequest, ValueError) as exc:
                await error(send, 400, str(exc))
                return
            await respond(send, 200, orjson.dumps(knobs.to_dict()))
        else:
            await error(send, 404, f"unknown path: {method} {path}", code="not_found")

    # -- faults --------------------------------------------------------------------------------

    def _draw(self, knobs: Knobs) -> str:
        if not (knobs.error_rate or knobs.timeout_rate or knobs.malformed_rate):
            return "ok"
        r = self.rng.random()
        if r < knobs.error_rate:
            return "error"
        r -= knobs.error_rate
        if r < knobs.timeout_rate:
            return "timeout"
        r -= knobs.timeout_rate
        return "malformed" if r < knobs.malformed_rate else "ok"

    async def _sleep(self, ms: float) -> bool:
        """Wait ``ms``; True when the server began shutting down meanwhile."""
        try:
            await asyncio.wait_for(self.closing.wait(), ms / 1000)
        except TimeoutError:
            return False
        return True

    async def _until_stopped(self, receive: Receive) -> None:
        """Return when the client disconnects or the server begins shutting down."""
        gone = asyncio.ensure_future(disconnected(receive))
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait((gone, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            closing.cancel()

    async def _hang(self, receive: Receive, send: Send, knobs: Knobs) -> str:
        """Answer nothing until the client gives up, the server stops, or ``hang_ms`` passes."""
        stopped = asyncio.ensure_future(self._until_stopped(receive))
        try:
            done, _ = await asyncio.wait((stopped,), timeout=knobs.hang_ms / 1000)
        finally:
            stopped.cancel()
        if not done:
            await error(send, 504, f"the fake upstream hung for {knobs.hang_ms:g} ms (injected timeout)")
        elif self.closing.is_set():
            await self._shutting_down(send)
        return "timeout"  # a client that gave up gets nothing: it is gone

    async def _shutting_down(self, send: Send) -> str:
        await error(send, 503, "the fake upstream is shutting down")
        return "error"

    async def _send_stream(self, receive: Receive, send: Send, events: list[bytes], knobs: Knobs) -> bool:
        """Send the SSE events; False when the server began shutting down before the end."""
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        if not knobs.chunk_delay_ms:
            await send({"type": "http.response.body", "body": b"".join(events), "more_body": False})
            return True
        # Between chunks, notice a client that went away (so in_flight says so) or a shutdown.
        stopped = asyncio.ensure_future(self._until_stopped(receive))
        try:
            for i, event in enumerate(events):
                if i:
                    done, _ = await asyncio.wait((stopped,), timeout=knobs.chunk_delay_ms / 1000)
                    if done:
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                        return not self.closing.is_set()
                await send({"type": "http.response.body", "body": event, "more_body": i < len(events) - 1})
        finally:
            stopped.cancel()
        return True


# -- helpers -----------------------------------------------------------------------------------


def _fault_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None, int | None]:
    """The outcome, breakage and stream-error point a request's ``X-Fake-*`` headers force."""
    forced = broken = after = None
    for name, value in headers:
        if not name.startswith(b"x-fake-"):
            continue
        text = value.strip().lower().decode("latin-1")
        if name == FAULT_HEADER:
            forced = _FAULTS.get(text)
            if forced is None:
                raise BadRequest(f"X-Fake-Fault: expected one of {', '.join(_FAULTS)}, got {text!r}")
        elif name == MALFORMED_HEADER:
            if text not in BREAKAGES:
                raise BadRequest(f"X-Fake-Malformed: expected one of {', '.join(BREAKAGES)}, got {text!r}")
            broken = text
        elif name == STREAM_ERROR_HEADER:
            if not text.isdigit():
                raise BadRequest(f"X-Fake-Stream-Error-After: expected a whole number, got {text!r}")
            after = int(text)
    return forced, broken, after


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return value
        if all(isinstance(v, int) for v in value):
            return [" ".join(map(str, value))]  # one text given as token ids
        if all(isinstance(v, list) for v in value):
            return [" ".join(map(str, v)) for v in value]
    raise BadRequest("input: required, a string or a non-empty list of strings", "input")
