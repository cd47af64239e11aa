"""State backends for tests: the in-process one, or a real Redis under a prefix of its own."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
import redis

from keel.stores import StateBackend, open_state

T = TypeVar("T")

REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> str:
    """The test Redis; skipped with the reason when unreachable, unless CI is set (then it fails)."""
    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is unreachable at {REDIS_URL} and CI is set: {exc}")
        pytest.skip(f"Redis is unreachable at {REDIS_URL} ({exc}); with CI set this fails")
    return REDIS_URL


@contextmanager
def state_url(kind: str) -> Iterator[str]:
    """``memory``, or a Redis URL with a fresh ``?prefix=`` whose keys are deleted afterwards."""
    if kind == "memory":
        yield "memory"
        return
    base = redis_or_skip()
    prefix = f"test-{uuid.uuid4().hex[:12]}"
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


def run_with(url: str, fn: Callable[[StateBackend], Awaitable[T]]) -> T:
    """Open the backend at ``url`` in a fresh event loop, run ``fn`` with it, close it."""

    async def go() -> T:
        state = open_state(url)
        try:
            return await fn(state)
        finally:
            await state.aclose()

    return asyncio.run(go())
