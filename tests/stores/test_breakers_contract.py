"""The Breakers contract: closed → open → half-open (one probe in all) → closed or open again."""

from __future__ import annotations

import asyncio

from state_helpers import run_with

from keel.stores.base import CircuitState, StateBackend

OPTS = {"failures": 3, "window": 60.0, "cooldown": 0.5}  # short, but a stalled test machine keeps up


def test_a_breaker_never_seen_is_closed_and_lets_calls_through(url: str) -> None:
    async def go(s: StateBackend) -> None:
        b = await s.breakers.get("d")
        assert (b.state, b.failures) == (CircuitState.CLOSED, 0)
        assert await s.breakers.acquire("d", 1.0)

    run_with(url, go)


def test_failures_within_the_window_open_it_and_calls_fail_fast_until_the_cooldown(url: str) -> None:
    async def go(s: StateBackend) -> None:
        for n in (1, 2):
            b = await s.breakers.record("d", False, **OPTS)
            assert (b.state, b.failures) == (CircuitState.CLOSED, n)
        assert await s.breakers.acquire("d", 30.0)
        opened = await s.breakers.record("d", False, **{**OPTS, "cooldown": 30.0})
        assert opened.state is CircuitState.OPEN and opened.opened_until > 0
        assert (await s.breakers.get("d")).state is CircuitState.OPEN
        assert not await s.breakers.acquire("d", 30.0)

    run_with(url, go)


def test_failures_further_apart_than_the_window_do_not_add_up(url: str) -> None:
    async def go(s: StateBackend) -> None:
        opts = {**OPTS, "failures": 2, "window": 0.2}
        await s.breakers.record("d", False, **opts)
        await asyncio.sleep(0.3)
        b = await s.breakers.record("d", False, **opts)
        assert (b.state, b.failures) == (CircuitState.CLOSED, 1)

    run_with(url, go)


async def _open(s: StateBackend) -> None:
    for _ in range(3):
        await s.breakers.record("d", False, **OPTS)
    await asyncio.sleep(0.6)  # past the cooldown


def test_after_the_cooldown_exactly_one_of_many_concurrent_callers_gets_the_probe(url: str) -> None:
    async def go(s: StateBackend) -> list[bool]:
        await _open(s)
        granted = await asyncio.gather(*(s.breakers.acquire("d", 5.0) for _ in range(50)))
        assert (await s.breakers.get("d")).state is CircuitState.HALF_OPEN
        return granted

    assert sum(run_with(url, go)) == 1


def test_a_successful_probe_closes_the_breaker(url: str) -> None:
    async def go(s: StateBackend) -> None:
        await _open(s)
        assert await s.breakers.acquire("d", 5.0)
        closed = await s.breakers.record("d", True, **OPTS)
        assert (closed.state, closed.failures) == (CircuitState.CLOSED, 0)
        assert await s.breakers.acquire("d", 5.0) and await s.breakers.acquire("d", 5.0)

    run_with(url, go)


def test_a_failed_probe_opens_it_again_for_another_cooldown(url: str) -> None:
    async def go(s: StateBackend) -> None:
        await _open(s)
        assert await s.breakers.acquire("d", 0.5)
        again = await s.breakers.record("d", False, **OPTS)
        assert again.state is CircuitState.OPEN
        assert not await s.breakers.acquire("d", 0.5)
        await asyncio.sleep(0.6)
        assert await s.breakers.acquire("d", 0.5)

    run_with(url, go)


def test_a_probe_that_never_reports_does_not_hold_the_breaker_half_open_forever(url: str) -> None:
    async def go(s: StateBackend) -> None:
        await _open(s)
        assert await s.breakers.acquire("d", 0.5)  # this probe's caller goes away
        assert not await s.breakers.acquire("d", 0.5)
        await asyncio.sleep(0.6)
        assert await s.breakers.acquire("d", 0.5)

    run_with(url, go)
