"""The Counters contract: sliding windows that never let more than the limit through."""

from __future__ import annotations

import asyncio
import time

from state_helpers import run_with

from keel.stores.base import StateBackend


def test_hits_pass_until_the_limit_then_are_refused_with_an_honest_wait(url: str) -> None:
    async def go(s: StateBackend) -> None:
        for i in range(3):
            d = await s.counters.hit("k", 1, 3, 60)
            assert d.allowed and d.used == i + 1 and d.retry_after == 0
        refused = await s.counters.hit("k", 1, 3, 60)
        assert not refused.allowed and refused.used == 3 and refused.limit == 3
        assert 0 < refused.retry_after <= 61  # the window, plus at most one sub-bucket

    run_with(url, go)


def test_a_refused_hit_passes_once_its_retry_after_has_gone_by(url: str) -> None:
    async def go(s: StateBackend) -> tuple[bool, bool]:
        await s.counters.hit("k", 2, 3, 1.0)
        await asyncio.sleep(0.3)
        await s.counters.hit("k", 1, 3, 1.0)
        refused = await s.counters.hit("k", 2, 3, 1.0)
        # Only the first hit has to leave (about 0.7 s from now), not the second (about 1 s).
        assert not refused.allowed and 0 < refused.retry_after < 0.8
        await asyncio.sleep(refused.retry_after + 0.02)
        again = await s.counters.hit("k", 2, 3, 1.0)
        return refused.allowed, again.allowed

    assert run_with(url, go) == (False, True)


def test_a_hit_counts_for_a_whole_window_and_at_most_one_sub_bucket_more(url: str) -> None:
    async def go(s: StateBackend) -> tuple[float, float, float]:
        before = time.time()
        await s.counters.hit("k", 1, 1, 6.0)
        refused = await s.counters.hit("k", 1, 1, 6.0)
        return before, time.time(), refused.retry_after

    before, after, retry_after = run_with(url, go)
    assert after + retry_after >= before + 6.0  # never lets a hit through early
    assert retry_after <= 6.0 + 6.0 / 60  # the window slides in steps of 1/60 of it


def test_200_concurrent_hits_never_pass_more_than_the_limit(url: str) -> None:
    async def go(s: StateBackend) -> tuple[int, float]:
        decisions = await asyncio.gather(*(s.counters.hit("rpm", 1, 50, 60) for _ in range(200)))
        tokens = await asyncio.gather(*(s.counters.hit("tpm", 7, 100, 60) for _ in range(200)))
        assert sum(d.allowed for d in tokens) == 14  # 14 x 7 = 98; a 15th would make 105
        assert all(d.retry_after > 0 for d in decisions if not d.allowed)
        return sum(d.allowed for d in decisions), max(d.used for d in decisions)

    assert run_with(url, go) == (50, 50)


def test_a_window_empties_once_it_has_gone_by(url: str) -> None:
    async def go(s: StateBackend) -> tuple[bool, float]:
        for _ in range(3):
            await s.counters.hit("k", 1, 3, 0.3)
        await asyncio.sleep(0.45)
        d = await s.counters.hit("k", 1, 3, 0.3)
        return d.allowed, d.used

    assert run_with(url, go) == (True, 1)


def test_add_counts_unconditionally_and_a_negative_amount_gives_back(url: str) -> None:
    async def go(s: StateBackend) -> list[bool]:
        await s.counters.add("k", 10, 60)  # beyond the limit: add does not check
        over = await s.counters.hit("k", 1, 5, 60)
        await s.counters.add("k", -10, 60)
        back = await s.counters.hit("k", 5, 5, 60)
        return [over.allowed, back.allowed]

    assert run_with(url, go) == [False, True]


def test_keys_are_independent_and_an_amount_over_the_limit_never_passes(url: str) -> None:
    async def go(s: StateBackend) -> None:
        assert (await s.counters.hit("a", 5, 5, 60)).allowed
        assert (await s.counters.hit("b", 5, 5, 60)).allowed
        huge = await s.counters.hit("c", 6, 5, 60)
        assert not huge.allowed and huge.used == 0 and huge.retry_after > 0

    run_with(url, go)
