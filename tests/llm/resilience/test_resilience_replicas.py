"""Gateway replicas share a breaker through Redis: one opens it, all fail fast, one probe closes it."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from resilience_helpers import req, status

from keel.errors import CircuitOpen, UpstreamStatusError
from keel.llm.resilience import BreakerProvider, health
from keel.settings import BreakerConfig
from keel.stores import open_state
from keel.stores.base import CircuitState
from keel.testing import ScriptedProvider

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis under a fresh key prefix, deleted afterwards (skipped when unreachable, unless CI)."""
    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is unreachable at {REDIS_URL} and CI is set: {exc}")
        pytest.skip(f"Redis is unreachable at {REDIS_URL} ({exc}); with CI set this fails")
    prefix = f"test-resilience-{uuid.uuid4().hex[:12]}"
    try:
        yield f"{REDIS_URL}?prefix={prefix}"
    finally:
        with redis.Redis.from_url(REDIS_URL) as client:
            keys = list(client.scan_iter(match=f"keel:{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)


def test_replicas_share_one_breaker(redis_url: str) -> None:
    config = BreakerConfig(failures=3, window=10, cooldown=0.3)
    a_upstream = ScriptedProvider("m", [status(503)])
    b_upstream = ScriptedProvider("m", ["answered by b"])

    async def go() -> None:
        a_state, b_state = open_state(redis_url), open_state(redis_url)
        try:
            a = BreakerProvider(a_upstream, "m/0", a_state.breakers, config)
            b = BreakerProvider(b_upstream, "m/0", b_state.breakers, config)
            for _ in range(3):
                with pytest.raises(UpstreamStatusError):
                    await a.complete(req())
            with pytest.raises(CircuitOpen):
                await b.complete(req())  # opened by replica a: b fails fast
            assert b_upstream.requests == []
            assert (await health(b))["status"] == "down"
            await asyncio.sleep(config.cooldown + 0.05)
            assert (await b.complete(req())).text == "answered by b"  # b's probe closes it for all
            assert (await a_state.breakers.get("m/0")).state is CircuitState.CLOSED
            assert (await health(a))["status"] == "ok"
        finally:
            await a_state.aclose()
            await b_state.aclose()

    asyncio.run(go())
