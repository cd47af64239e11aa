"""Two Redis backends on one server, as two gateway replicas would have: they share every piece of state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from state_helpers import state_url

from keel.errors import KeelError
from keel.stores import open_state
from keel.stores.base import CircuitState, StateBackend
from keel.stores.redis import RedisState

pytestmark = pytest.mark.integration


@pytest.fixture
def shared() -> Iterator[str]:
    with state_url("redis") as url:
        yield url


def _replicas(url: str, fn: object) -> None:
    async def go() -> None:
        a, b = open_state(url), open_state(url)
        try:
            await fn(a, b)  # type: ignore[operator]
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(go())


def test_replicas_share_rate_limit_windows(shared: str) -> None:
    async def go(a: StateBackend, b: StateBackend) -> None:
        hits = [(a if i % 2 else b).counters.hit("k", 1, 30, 60) for i in range(100)]
        assert sum(d.allowed for d in await asyncio.gather(*hits)) == 30

    _replicas(shared, go)


def test_replicas_share_budgets(shared: str) -> None:
    async def go(a: StateBackend, b: StateBackend) -> None:
        end = time.time() + 3600
        assert (await a.budgets.reserve("b", 0.6, 1.0, end)).allowed
        assert not (await b.budgets.reserve("b", 0.6, 1.0, end)).allowed
        await b.budgets.settle("b", 0.6, 0.2, end)  # settled by the other replica
        assert await a.budgets.usage("b") == pytest.approx((0.2, 0.0))
        assert (await b.budgets.reserve("b", 0.8, 1.0, end)).allowed

    _replicas(shared, go)


def test_replicas_share_breakers_and_grant_one_probe_between_them(shared: str) -> None:
    async def go(a: StateBackend, b: StateBackend) -> None:
        opts = {"failures": 2, "window": 60.0, "cooldown": 0.5}
        await a.breakers.record("d", False, **opts)
        await b.breakers.record("d", False, **opts)
        assert (await a.breakers.get("d")).state is CircuitState.OPEN
        assert not await b.breakers.acquire("d", 0.5)
        await asyncio.sleep(0.6)
        granted = await asyncio.gather(*((a, b)[i % 2].breakers.acquire("d", 5.0) for i in range(40)))
        assert sum(granted) == 1

    _replicas(shared, go)


def test_replicas_share_the_cache_and_the_vectors(shared: str) -> None:
    async def go(a: StateBackend, b: StateBackend) -> None:
        await a.cache.set("k", b"answer", 60)
        assert await b.cache.get("k") == b"answer"
        v = np.arange(1, 9, dtype=np.float32)
        assert await b.vectors.nearest("s", v.tobytes()) is None  # b's mirror is now in sync (empty)
        await a.vectors.add("s", "k", v.tobytes(), 60, 10)
        match = await b.vectors.nearest("s", v.tobytes())
        assert match is not None and match.key == "k"
        await b.vectors.add("s", "k2", (-v).tobytes(), 60, 10)
        match = await a.vectors.nearest("s", (-v).tobytes())
        assert match is not None and match.key == "k2"

    _replicas(shared, go)


def test_a_lookup_fetches_only_the_vectors_added_since_the_last_one(shared: str) -> None:
    async def go(a: StateBackend, b: StateBackend) -> None:
        assert isinstance(b, RedisState)
        fetched = 0
        sync = b.vectors._sync

        async def counting(**kwargs: Any) -> Any:
            nonlocal fetched
            reply = await sync(**kwargs)
            fetched += len(reply) - 3  # epoch, count, length, then the records
            return reply

        b.vectors._sync = counting  # type: ignore[assignment]
        rng = np.random.default_rng(0)
        query = np.ones(8, np.float32).tobytes()
        for i in range(12):
            await a.vectors.add("s", f"k{i}", rng.standard_normal(8).astype(np.float32).tobytes(), 60, 10)
            if i % 3 == 0:
                await b.vectors.nearest("s", query)
        await asyncio.gather(*(b.vectors.nearest("s", query) for _ in range(5)))  # concurrent lookups
        mirror = b.vectors._mirrors.items["s"].value
        # Each record was applied once (12 rows, one per add) and the newest 10 of them count.
        assert (mirror.seen, mirror.table.n, mirror.table.keep) == (12, 12, 10)
        assert fetched <= 12 + 5 * 2  # the serial lookups read each record once

    _replicas(shared, go)


def test_a_prefix_keeps_gateways_apart(shared: str) -> None:
    async def go() -> None:
        a, b = open_state(shared), open_state(shared + "-other")
        try:
            assert isinstance(a, RedisState) and a.namespace.startswith("keel:test-")
            assert (await a.counters.hit("k", 1, 1, 60)).allowed
            assert (await b.counters.hit("k", 1, 1, 60)).allowed
        finally:
            await a.aclose()
            await b.aclose()
            # the other prefix is not cleaned by the fixture
            await _delete(shared + "-other")

    asyncio.run(go())


async def _delete(url: str) -> None:
    state = open_state(url)
    assert isinstance(state, RedisState)
    try:
        keys = [k async for k in state.client.scan_iter(match=state.namespace + "*")]
        if keys:
            await state.client.delete(*keys)
    finally:
        await state.aclose()


def test_an_unreachable_redis_is_a_clear_error_not_a_hang() -> None:
    async def go() -> None:
        state = open_state("redis://127.0.0.1:1/0?socket_connect_timeout=0.5")
        try:
            with pytest.raises(KeelError, match="state backend unavailable: Redis") as info:
                await state.counters.hit("k", 1, 1, 60)
            assert info.value.code == "state_unavailable"
        finally:
            await state.aclose()

    asyncio.run(go())
