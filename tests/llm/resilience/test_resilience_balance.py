"""Several deployments of one model: picked by weight, load or latency; open circuits skipped; failover."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from resilience_helpers import Clock, Hanging, Slow, breakers, collect, req, run, status, text

from keel.errors import CircuitOpen, UpstreamStatusError
from keel.llm.providers.base import Provider
from keel.llm.resilience import BalancedProvider, BreakerProvider, health
from keel.settings import BreakerConfig
from keel.testing import ScriptedProvider

pytestmark = pytest.mark.unit


def answering(label: str) -> ScriptedProvider:
    """A deployment of model ``m`` that says which one it is."""
    return ScriptedProvider("m", [label])


def balanced(*deployments: tuple[Provider, float], policy: str = "weighted", **kw: float) -> BalancedProvider:
    return BalancedProvider(list(deployments), policy, rng=random.Random(3), **kw)  # type: ignore[arg-type]


async def answers(provider: BalancedProvider, n: int) -> Counter[str]:
    return Counter([(await provider.complete(req())).text for _ in range(n)])


def test_weighted_picks_in_proportion_to_the_weights() -> None:
    provider = balanced((answering("a"), 3.0), (answering("b"), 1.0))
    got = run(answers(provider, 2000))
    assert 0.70 < got["a"] / 2000 < 0.80


@pytest.mark.timeout(10)
def test_least_in_flight_picks_the_least_busy_deployment() -> None:
    busy = Hanging("m", "busy")
    provider = balanced((busy, 1.0), (answering("idle"), 1.0), policy="least_in_flight")

    async def go() -> Counter[str]:
        held = [asyncio.ensure_future(provider.complete(req())) for _ in range(1)]
        await busy.entered.wait()
        got = await answers(provider, 20)  # the busy one has a call in flight: the idle one gets them all
        busy.release.set()
        await asyncio.gather(*held)
        return got

    assert run(go()) == Counter({"idle": 20})


def test_least_in_flight_counts_per_unit_of_weight() -> None:
    provider = balanced((answering("a"), 1.0), (answering("b"), 4.0), policy="least_in_flight")
    provider.slots[0].in_flight, provider.slots[1].in_flight = 1, 3  # 1 per unit against 0.75
    assert provider.pick() is provider.slots[1]


def test_latency_aware_prefers_the_faster_deployment() -> None:
    provider = balanced(
        (Slow("m", 0.03, ["slow"]), 1.0), (answering("fast"), 1.0), policy="latency", explore=0.0
    )
    got = run(answers(provider, 20))
    assert got["slow"] == 1  # measured once (an unmeasured deployment is tried), then avoided
    assert got["fast"] == 19


def test_latency_aware_still_explores_a_little() -> None:
    provider = balanced(
        (Slow("m", 0.001, ["slow"]), 1.0), (answering("fast"), 1.0), policy="latency", explore=0.2
    )
    got = run(answers(provider, 200))
    assert 5 < got["slow"] < 60


def test_a_deployment_with_an_open_circuit_is_skipped() -> None:
    clock = Clock()
    store = breakers(clock)
    config = BreakerConfig(failures=2, cooldown=30)
    bad_inner = ScriptedProvider("m", [status(503)])
    bad = BreakerProvider(bad_inner, "m/0", store, config, clock=clock)
    good = BreakerProvider(answering("good"), "m/1", store, config, clock=clock)
    provider = balanced((bad, 100.0), (good, 1.0))

    async def go() -> Counter[str]:
        for _ in range(2):
            await provider.complete(req())  # fails over to the good one, counting against the bad one
        assert not bad.available()
        return await answers(provider, 50)

    assert run(go()) == Counter({"good": 50})
    assert len(bad_inner.requests) == 2


def test_a_retryable_failure_is_tried_on_another_deployment() -> None:
    failing = ScriptedProvider("m", [status(503)])
    provider = balanced((failing, 1000.0), (answering("other"), 1.0))
    request = req()
    assert run(provider.complete(request)).text == "other"
    assert request.trace.attempts == 2
    assert request.trace.failures == ["m: http_503"]
    assert request.trace.model == "m"


def test_a_caller_error_is_not_tried_elsewhere() -> None:
    other = answering("other")
    provider = balanced((ScriptedProvider("m", [status(400)]), 1000.0), (other, 1.0))
    with pytest.raises(UpstreamStatusError):
        run(provider.complete(req()))
    assert other.requests == []


def test_when_every_deployment_failed_the_last_failure_is_raised() -> None:
    provider = balanced(
        (ScriptedProvider("m", [status(500)]), 1.0), (ScriptedProvider("m", [status(502)]), 1.0)
    )
    request = req()
    with pytest.raises(UpstreamStatusError) as caught:
        run(provider.complete(request))
    assert caught.value.attempts == 2 and request.trace.attempts == 2


def test_when_every_circuit_is_open_it_fails_fast() -> None:
    clock = Clock()
    store = breakers(clock)
    inners = [ScriptedProvider("m", [status(503)]) for _ in range(2)]
    deployments = [
        (BreakerProvider(p, f"m/{i}", store, BreakerConfig(failures=1), clock=clock), 1.0)
        for i, p in enumerate(inners)
    ]
    provider = balanced(*deployments)

    async def go() -> None:
        with pytest.raises(UpstreamStatusError):
            await provider.complete(req())  # both tried, both open now
        with pytest.raises(CircuitOpen):
            await provider.complete(req())

    run(go())
    assert [len(p.requests) for p in inners] == [1, 1]


def test_a_stream_fails_over_before_its_first_chunk() -> None:
    provider = balanced(
        (ScriptedProvider("m", [status(503)]), 1000.0), (answering("streamed elsewhere"), 1.0)
    )
    assert text(run(collect(provider.stream(req())))) == "streamed elsewhere"
    assert all(s.in_flight == 0 for s in provider.slots)


def test_health_lists_every_deployment_with_its_load_and_latency() -> None:
    clock = Clock()
    store = breakers(clock)
    deployments = [
        (BreakerProvider(answering(f"d{i}"), f"m/{i}", store, BreakerConfig(), clock=clock), float(i + 1))
        for i in range(2)
    ]
    provider = balanced(*deployments, policy="latency")

    async def go() -> dict[str, object]:
        await answers(provider, 4)
        return await health(provider)

    report = run(go())
    assert report["status"] == "ok" and report["policy"] == "latency"
    deployments_seen = report["deployments"]
    assert isinstance(deployments_seen, list)
    assert [d["name"] for d in deployments_seen] == ["m/0", "m/1"]
    assert [d["weight"] for d in deployments_seen] == [1.0, 2.0]
    assert all(d["state"] == "closed" and d["in_flight"] == 0 for d in deployments_seen)
    assert all(isinstance(d["latency_ms"], float) for d in deployments_seen)


def test_a_policy_must_be_known() -> None:
    with pytest.raises(ValueError, match="policy"):
        balanced((answering("a"), 1.0), policy="round_robin")


def test_a_stream_the_caller_leaves_early_frees_its_deployment() -> None:
    clock = Clock()
    leaf = ScriptedProvider("m", ["a long answer in many words"])
    guard = BreakerProvider(leaf, "m/0", breakers(clock), BreakerConfig(), clock=clock)
    provider = balanced((guard, 1.0), (answering("other"), 1e-9))

    async def go() -> None:
        chunks = provider.stream(req())
        first = await anext(chunks)
        assert first["choices"]
        assert provider.slots[0].in_flight == 1 and guard.in_flight == 1
        await chunks.aclose()  # the caller went away

    run(go())
    assert provider.slots[0].in_flight == 0 and guard.in_flight == 0
