"""Helpers of the cache tests: requests, a clock, providers that wait or fail, stream collection."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import pytest
import redis

from keel.call import Completion
from keel.errors import KeelError
from keel.llm.providers.base import Chunk, ModelRequest
from keel.testing.scripted import ScriptedProvider

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    """Run ``coro`` on a fresh event loop."""

    async def go() -> T:
        return await coro

    return asyncio.run(go())


def req(
    text: str = "Where is my parcel?",
    *,
    history: list[dict[str, Any]] | None = None,
    feature: str = "support",
    prompt_version: str | None = "v1",
    timeout: float | None = None,
    **params: Any,
) -> ModelRequest:
    """A deterministic request (temperature 0 unless given) asking ``text`` after ``history``."""
    params.setdefault("temperature", 0)
    messages = [*(history or []), {"role": "user", "content": text}]
    return ModelRequest(
        messages=messages, params=params, feature=feature, prompt_version=prompt_version, timeout=timeout
    )


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time on."""
        self.now += seconds


def echo(request: ModelRequest) -> str:
    """A script answering with the question and the call's number, so every upstream answer differs."""
    return f"answer to: {request.messages[-1]['content']}"


class Counting(ScriptedProvider):
    """Echoes the question, numbering its answers: ``n`` counts upstream calls (plain and streamed)."""

    kind: ClassVar[str] = "counting"

    def __init__(self, name: str = "model") -> None:
        super().__init__(name, self._answer)

    def _answer(self, request: ModelRequest) -> str:
        return f"{echo(request)} #{len(self.requests)}"

    @property
    def n(self) -> int:
        """Upstream calls made."""
        return len(self.requests)


class Gate(Counting):
    """Holds every call until ``release`` is set; ``entered`` is set once a call waits."""

    kind: ClassVar[str] = "gate"

    def __init__(self, name: str = "model", *, error: KeelError | None = None) -> None:
        super().__init__(name)
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.error = error
        self.started = 0  # upstream calls begun
        self.cancelled = 0  # upstream calls cancelled while waiting

    async def complete(self, request: ModelRequest) -> Completion:
        self.started += 1
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return await super().complete(request)


class BreaksMidway(Counting):
    """Streams two chunks of its answer, then fails with ``error``."""

    kind: ClassVar[str] = "breaks-midway"

    def __init__(self, error: KeelError, name: str = "model") -> None:
        super().__init__(name)
        self.error = error

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        n = 0
        async for chunk in super().stream(request):
            if n == 2:
                raise self.error
            n += 1
            yield chunk


async def collect(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    """Every chunk of a stream."""
    return [chunk async for chunk in stream]


def text(chunks: list[Chunk]) -> str:
    """The streamed content, joined."""
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


@contextmanager
def redis_url() -> Iterator[str]:
    """A Redis state URL under a fresh prefix (deleted afterwards); skipped without Redis unless CI is set."""
    base = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    parts = urlsplit(base)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is unreachable at {base} and CI is set: {exc}")
        pytest.skip(f"Redis is unreachable at {base} ({exc}); with CI set this fails")
    prefix = f"test-cache-{uuid.uuid4().hex[:12]}"
    try:
        yield f"{base}?prefix={prefix}"
    finally:
        client = redis.Redis.from_url(base)
        try:
            keys = list(client.scan_iter(match=f"keel:{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
