"""What only the in-process backend promises: bounded memory and exact windows on a driven clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from keel.stores.memory import Expiring, MemoryState

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_expired_entries_are_swept_as_time_passes_so_memory_stays_bounded() -> None:
    clock = Clock()
    state = MemoryState(clock)

    async def go() -> None:
        for i in range(5000):
            await state.counters.hit(f"k{i}", 1, 10, 60)
            await state.cache.set(f"k{i}", b"x" * 100, 30)
            await state.budgets.reserve(f"k{i}", 1, 10, clock.now + 60)
            await state.vectors.add(f"s{i}", "k", np.ones(4, np.float32).tobytes(), 30, 10)
        clock.now += 3600
        for _ in range(200):  # ordinary traffic sweeps what expired, a batch per operation
            await state.counters.hit("live", 1, 1000, 60)
            await state.cache.set("live", b"y", 30)
            await state.budgets.reserve("live", 1, 1000, clock.now + 60)
            await state.vectors.add("live", "k", np.ones(4, np.float32).tobytes(), 30, 10)

    asyncio.run(go())
    assert len(state.counters._windows) == 1
    assert len(state.cache._entries) == 1 and state.cache._bytes == 1
    assert len(state.budgets._periods) == 1
    assert len(state.vectors._scopes) == 1


def test_the_cache_keeps_within_its_byte_budget_dropping_the_oldest_writes() -> None:
    state = MemoryState()
    state.cache.max_bytes = 1000

    async def go() -> list[bytes | None]:
        for i in range(30):
            await state.cache.set(f"k{i}", bytes([i]) * 100, 60)
        return [await state.cache.get(f"k{i}") for i in range(30)]

    got = asyncio.run(go())
    assert got[:20] == [None] * 20 and all(v is not None for v in got[20:])


def test_a_window_slides_one_sub_bucket_at_a_time() -> None:
    clock = Clock()
    state = MemoryState(clock)

    async def go() -> None:
        c = state.counters
        clock.now = 6_000_000.0  # the start of a sub-bucket of a 60 s window
        assert (await c.hit("k", 3, 5, 60)).allowed
        clock.now += 30
        assert (await c.hit("k", 2, 5, 60)).allowed
        refused = await c.hit("k", 1, 5, 60)
        assert not refused.allowed and refused.retry_after == pytest.approx(31)  # 61 s after the first
        clock.now += 30.5
        assert not (await c.hit("k", 1, 5, 60)).allowed  # still counted: its sub-bucket has not left
        clock.now += 0.5
        d = await c.hit("k", 3, 5, 60)
        assert d.allowed and d.used == 5

    asyncio.run(go())


def test_expiring_reschedules_an_extended_entry_instead_of_dropping_it() -> None:
    e: Expiring[str, int] = Expiring()
    entry = e.put("a", 1, 10.0)
    e.extend("a", entry, 20.0)
    e.sweep(15.0)
    assert e.get("a", 15.0) is entry
    e.extend("a", entry, 12.0)  # shortened
    e.sweep(16.0)
    assert e.get("a", 16.0) is None and len(e) == 0
