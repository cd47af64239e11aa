"""Circuit breakers: open after repeated failures, fail fast while open, one probe after the cooldown."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from resilience_helpers import BreaksMidway, Clock, Hanging, breakers, collect, req, run, status

from keel.call import Completion
from keel.errors import CircuitOpen, InvalidRequest, KeelError, UpstreamStatusError, UpstreamTimeout
from keel.llm.providers.base import ModelRequest
from keel.llm.resilience import BreakerProvider, health
from keel.settings import BreakerConfig
from keel.stores.base import Breaker, Breakers, CircuitState
from keel.testing import ScriptedProvider

pytestmark = pytest.mark.unit

CONFIG = BreakerConfig(failures=3, window=10, cooldown=5)


def guarded(inner: ScriptedProvider, clock: Clock, key: str = "m") -> BreakerProvider:
    return BreakerProvider(inner, key, breakers(clock), CONFIG, clock=clock)


async def fail(provider: BreakerProvider, times: int) -> None:
    for _ in range(times):
        with pytest.raises(UpstreamStatusError):
            await provider.complete(req())


def test_the_breaker_opens_after_n_failures_and_then_fails_fast() -> None:
    clock = Clock()
    inner = ScriptedProvider("m", [status(503)])
    provider = guarded(inner, clock)

    async def go() -> None:
        await fail(provider, 3)
        assert (await provider.store.get("m")).state is CircuitState.OPEN
        with pytest.raises(CircuitOpen, match="'m'"):
            await provider.complete(req())

    run(go())
    assert len(inner.requests) == 3  # the refused call never reached the upstream
    assert not provider.available()


def test_failures_spread_beyond_the_window_do_not_open_it() -> None:
    clock = Clock()
    provider = guarded(ScriptedProvider("m", [status(500)]), clock)

    async def go() -> None:
        for _ in range(4):
            await fail(provider, 2)
            clock.advance(11)
        assert (await provider.store.get("m")).state is CircuitState.CLOSED

    run(go())


@pytest.mark.parametrize("error", [status(400), status(404), status(422), InvalidRequest("bad")])
def test_the_callers_own_errors_do_not_count(error: Exception) -> None:
    clock = Clock()
    provider = guarded(ScriptedProvider("m", [error]), clock)

    async def go() -> None:
        for _ in range(5):
            with pytest.raises(type(error)):
                await provider.complete(req())
        assert (await provider.store.get("m")).state is CircuitState.CLOSED

    run(go())


@pytest.mark.parametrize("error", [status(429), UpstreamTimeout("slow"), status(500)])
def test_timeouts_429_and_5xx_count(error: Exception) -> None:
    clock = Clock()
    provider = guarded(ScriptedProvider("m", [error]), clock)

    async def go() -> CircuitState:
        for _ in range(3):
            with pytest.raises(type(error)):
                await provider.complete(req())
        return (await provider.store.get("m")).state

    assert run(go()) is CircuitState.OPEN


def test_after_the_cooldown_one_probe_closes_it_on_success() -> None:
    clock = Clock()
    inner = ScriptedProvider("m", [status(503), status(503), status(503), "recovered"])
    provider = guarded(inner, clock)

    async def go() -> None:
        await fail(provider, 3)
        clock.advance(4.9)
        with pytest.raises(CircuitOpen):
            await provider.complete(req())
        clock.advance(0.2)
        assert provider.available()
        assert (await provider.complete(req())).text == "recovered"
        assert (await provider.store.get("m")).state is CircuitState.CLOSED
        assert (await provider.complete(req())).text == "recovered"

    run(go())
    assert provider.opened == 1


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    clock = Clock()
    inner = ScriptedProvider("m", [status(503)])
    provider = guarded(inner, clock)

    async def go() -> None:
        await fail(provider, 3)
        clock.advance(5.1)
        await fail(provider, 1)  # the probe
        assert (await provider.store.get("m")).state is CircuitState.OPEN
        with pytest.raises(CircuitOpen):
            await provider.complete(req())

    run(go())
    assert len(inner.requests) == 4
    assert provider.opened == 2


@pytest.mark.timeout(10)
def test_while_the_probe_is_in_flight_other_calls_fail_fast() -> None:
    clock = Clock()
    store = breakers(clock)
    failing = BreakerProvider(ScriptedProvider("m", [status(503)]), "m", store, CONFIG, clock=clock)
    hanging = Hanging("m", "probe answered")
    probing = BreakerProvider(hanging, "m", store, CONFIG, clock=clock)  # another replica, same breaker

    async def go() -> None:
        await fail(failing, 3)
        clock.advance(5.1)
        probe = asyncio.ensure_future(probing.complete(req()))
        await hanging.entered.wait()
        with pytest.raises(CircuitOpen):
            await failing.complete(req())
        hanging.release.set()
        assert (await probe).text == "probe answered"
        assert (await store.get("m")).state is CircuitState.CLOSED

    run(go())


def test_a_stream_counts_as_answered_once_its_first_chunk_arrived() -> None:
    clock = Clock()
    store = breakers(clock)
    failing = BreakerProvider(ScriptedProvider("m", [status(503)]), "m", store, CONFIG, clock=clock)
    midway = BreakerProvider(BreaksMidway("m", status(503), after=1), "m", store, CONFIG, clock=clock)

    async def go() -> None:
        await fail(failing, 3)
        clock.advance(5.1)
        with pytest.raises(UpstreamStatusError):
            await collect(failing.stream(req()))  # the probe failed before its first chunk: open again
        assert (await store.get("m")).state is CircuitState.OPEN
        clock.advance(5.1)
        with pytest.raises(UpstreamStatusError):
            await collect(midway.stream(req()))  # the probe started answering, then broke: it answered
        assert (await store.get("m")).state is CircuitState.CLOSED

    run(go())


def test_successes_in_between_do_not_reset_the_count_of_failures_in_the_window() -> None:
    clock = Clock()
    inner = ScriptedProvider("m", [status(503), "ok", status(503), "ok", "ok", status(503), "never"])
    provider = guarded(inner, clock)

    async def go() -> None:
        for _ in range(6):
            with contextlib.suppress(UpstreamStatusError):
                await provider.complete(req())
        assert (await provider.store.get("m")).state is CircuitState.OPEN  # 3 failures within 10 s
        with pytest.raises(CircuitOpen):
            await provider.complete(req())

    run(go())


class FirstHangs(Hanging):
    """The first call waits for ``release`` and answers; every later one fails with a 503."""

    async def complete(self, request: ModelRequest) -> Completion:
        if self.started:
            raise status(503)
        return await super().complete(request)


@pytest.mark.timeout(10)
def test_a_late_success_of_a_call_let_through_before_it_opened_does_not_close_it() -> None:
    clock = Clock()
    inner = FirstHangs("m", "late")
    provider = guarded(inner, clock)

    async def go() -> None:
        late = asyncio.ensure_future(provider.complete(req()))
        await inner.entered.wait()
        await fail(provider, 3)
        inner.release.set()
        assert (await late).text == "late"
        assert (await provider.store.get("m")).state is CircuitState.OPEN
        with pytest.raises(CircuitOpen):
            await provider.complete(req())

    run(go())


class Unreachable(Breakers):
    """A breaker store that cannot be reached, as Redis's store reports it."""

    async def get(self, name: str) -> Breaker:
        raise KeelError("state backend unavailable: Redis: connection refused", code="state_unavailable")

    async def acquire(self, name: str, cooldown: float) -> bool:
        raise KeelError("state backend unavailable: Redis: connection refused", code="state_unavailable")

    async def record(self, name: str, ok: bool, *, failures: int, window: float, cooldown: float) -> Breaker:
        raise KeelError("state backend unavailable: Redis: connection refused", code="state_unavailable")


def test_when_the_store_cannot_be_reached_calls_go_through() -> None:
    provider = BreakerProvider(ScriptedProvider("m", [status(503), "ok"]), "m", Unreachable(), CONFIG)

    async def go() -> dict[str, object]:
        with pytest.raises(UpstreamStatusError):
            await provider.complete(req())
        assert (await provider.complete(req())).text == "ok"
        return await health(provider)

    report = run(go())
    deployments = report["deployments"]
    assert isinstance(deployments, list) and deployments[0]["state"] == "unknown"
    assert report["status"] == "unknown"


@pytest.mark.timeout(10)
def test_a_call_that_outlives_its_deadline_is_cut_off_and_counts() -> None:
    clock = Clock()
    hanging = Hanging("m")
    provider = BreakerProvider(hanging, "m", breakers(clock), BreakerConfig(failures=1), clock=clock)

    async def go() -> None:
        with pytest.raises(UpstreamTimeout, match="deadline"):
            await provider.complete(req(timeout=0.05))
        assert (await provider.store.get("m")).state is CircuitState.OPEN

    run(go())
    assert provider.in_flight == 0


def test_the_trace_counts_upstream_calls_but_not_refusals() -> None:
    clock = Clock()
    provider = guarded(ScriptedProvider("m", [status(503), status(503), status(503), "ok"]), clock)
    request = req()

    async def go() -> None:
        for _ in range(3):
            with pytest.raises(UpstreamStatusError):
                await provider.complete(request)
        with pytest.raises(CircuitOpen):
            await provider.complete(request)

    run(go())
    assert request.trace.attempts == 3
    assert request.trace.failures == ["m: http_503"] * 3
    assert request.trace.model is None


def test_health_shows_the_breaker_state() -> None:
    clock = Clock()
    provider = guarded(ScriptedProvider("m", [status(503)]), clock, key="m/0")

    async def go() -> tuple[dict[str, object], dict[str, object]]:
        before = await health(provider)
        await fail(provider, 3)
        return before, await health(provider)

    before, after = run(go())
    assert before["status"] == "ok"
    assert after["status"] == "down"
    deployments = after["deployments"]
    assert isinstance(deployments, list)
    [d] = deployments
    assert d["name"] == "m/0" and d["model"] == "m"
    assert d["state"] == "open" and d["opened"] == 1 and d["in_flight"] == 0
    assert d["open_for_s"] == 5.0
