"""Coalescing: identical deterministic requests in flight at the same time make one upstream call."""

from __future__ import annotations

import asyncio

import pytest
from cache_helpers import Counting, Gate, collect, req, run, text

from keel.call import Completion
from keel.errors import UpstreamStatusError, UpstreamTimeout
from keel.llm.cache import CoalescingProvider, ExactCacheProvider
from keel.llm.providers.base import ModelRequest
from keel.stores.memory import MemoryCache

pytestmark = pytest.mark.unit


async def started(
    gate: Gate, *requests: ModelRequest, via: CoalescingProvider
) -> list[asyncio.Task[Completion]]:
    """Tasks asking ``via`` for each request, once all of them are waiting."""
    tasks = [asyncio.ensure_future(via.complete(r)) for r in requests]
    await gate.entered.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # let every caller reach the flight
    return tasks


def test_identical_requests_in_flight_make_one_upstream_call() -> None:
    gate = Gate()
    coalescing = CoalescingProvider(gate)

    async def go() -> None:
        requests = [req() for _ in range(20)]
        tasks = await started(gate, *requests, via=coalescing)
        gate.release.set()
        answers = await asyncio.gather(*tasks)
        assert gate.started == 1
        assert {a.text for a in answers} == {"answer to: Where is my parcel? #1"}
        assert sum(r.trace.coalesced for r in requests) == 19
        assert all(r.trace.attempts == 0 for r in requests if r.trace.coalesced)
        assert coalescing.coalesced == 19 and coalescing.in_flight == 0

    run(go())


def test_every_caller_gets_its_own_copy_of_the_answer() -> None:
    gate = Gate()
    coalescing = CoalescingProvider(gate)

    async def go() -> None:
        tasks = await started(gate, req(), req(), req(), via=coalescing)
        gate.release.set()
        answers = await asyncio.gather(*tasks)
        answers[0].text = "changed by a later stage"
        assert [a.text for a in answers[1:]] == ["answer to: Where is my parcel? #1"] * 2
        assert answers[1].choices is not answers[2].choices

    run(go())


def test_different_or_non_deterministic_requests_are_not_shared() -> None:
    gate = Gate()
    coalescing = CoalescingProvider(gate)

    async def go() -> None:
        tasks = await started(
            gate, req("a"), req("b"), req("a", temperature=0.8), req("a", temperature=0.8), via=coalescing
        )
        gate.release.set()
        await asyncio.gather(*tasks)
        assert gate.started == 4 and coalescing.coalesced == 0

    run(go())


def test_an_error_reaches_every_caller() -> None:
    gate = Gate(error=UpstreamStatusError("overloaded", upstream_status=503, attempts=3))
    coalescing = CoalescingProvider(gate)

    async def go() -> None:
        tasks = await started(gate, req(), req(), req(), via=coalescing)
        gate.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert gate.started == 1
        assert all(isinstance(e, UpstreamStatusError) and e.upstream_status == 503 for e in results)
        assert all(e.attempts == 3 for e in results)  # type: ignore[union-attr]
        assert len({id(e) for e in results}) == 3  # each caller its own error object
        assert coalescing.in_flight == 0

    run(go())


def test_followers_still_get_the_answer_when_the_first_caller_is_cancelled() -> None:
    gate = Gate()
    coalescing = CoalescingProvider(gate)

    async def go() -> None:
        leader, *followers = await started(gate, req(), req(), req(), via=coalescing)
        leader.cancel()
        await asyncio.sleep(0)
        gate.release.set()
        answers = await asyncio.gather(*followers)
        assert leader.cancelled() and gate.cancelled == 0 and gate.started == 1
        assert [a.text for a in answers] == ["answer to: Where is my parcel? #1"] * 2

    run(go())


def test_the_upstream_call_is_cancelled_when_every_caller_has_gone() -> None:
    gate = Gate()
    coalescing = CoalescingProvider(gate)

    async def go() -> None:
        tasks = await started(gate, req(), req(), via=coalescing)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)
        assert gate.cancelled == 1 and coalescing.in_flight == 0
        gate.release.set()
        r = req()
        answer = await coalescing.complete(r)  # a new call starts a new flight
        assert answer.text == "answer to: Where is my parcel? #1" and gate.started == 2

    run(go())


def test_a_follower_gives_up_at_its_own_deadline() -> None:
    gate = Gate()
    coalescing = CoalescingProvider(gate)

    async def go() -> None:
        (leader,) = await started(gate, req(), via=coalescing)
        with pytest.raises(UpstreamTimeout):
            await coalescing.complete(req(timeout=0.01))
        gate.release.set()
        assert (await leader).text == "answer to: Where is my parcel? #1"
        assert gate.started == 1

    run(go())


def test_streams_are_never_shared() -> None:
    inner = Counting()
    coalescing = CoalescingProvider(inner)

    async def go() -> None:
        streams = await asyncio.gather(*(collect(coalescing.stream(req())) for _ in range(3)))
        assert inner.n == 3 and all(text(s).startswith("answer to") for s in streams)

    run(go())


def test_under_a_cache_the_shared_answer_is_stored_once_and_then_served() -> None:
    gate = Gate()
    coalescing = CoalescingProvider(gate)
    store = MemoryCache()
    cache = ExactCacheProvider(coalescing, store)

    async def go() -> None:
        tasks = [asyncio.ensure_future(cache.complete(req())) for _ in range(5)]
        await gate.entered.wait()
        for _ in range(5):
            await asyncio.sleep(0)
        gate.release.set()
        await asyncio.gather(*tasks)
        r = req()
        await cache.complete(r)
        assert gate.started == 1 and r.trace.cache == "exact"
        assert cache.misses == 5 and cache.hits == 1

    run(go())
