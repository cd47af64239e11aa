"""The composed chain against real HTTP faults: a flaky primary and a healthy fallback, both FakeUpstreams.

With 30% 5xx and 10% hangs on the primary, every request gets an answer within its deadline, the
primary's breaker opens, and once the primary is healthy again its breaker closes and the traffic
goes back to it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from time import monotonic

import pytest
from resilience_helpers import collect, text

from keel.config import parse_config
from keel.llm.providers.base import ModelRequest, Provider, Trace
from keel.llm.resilience import build_chain, build_model, health
from keel.settings import Settings
from keel.stores.memory import MemoryState
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

DEADLINE = 3.0
SLACK = 0.5  # scheduling on a shared machine: a correctness check, not a benchmark
COOLDOWN = 0.2
CONCURRENCY = 32


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    primary = FakeUpstream(
        error_rate=0.3, error_status=500, timeout_rate=0.1, hang_ms=10_000, latency_ms=3, seed=11
    )
    with primary, FakeUpstream(seed=12) as backup:
        yield primary, backup


def settings_for(primary: FakeUpstream, backup: FakeUpstream) -> Settings:
    return parse_config(f"""
models:
  - name: primary
    provider: openai
    base_url: {primary.base_url}
    timeout: {{connect: 0.5, total: 0.5}}
    retry: {{attempts: 3, backoff: 0.02, max_backoff: 0.1}}
    breaker: {{failures: 5, window: 1, cooldown: {COOLDOWN}}}
  - name: backup
    provider: openai
    base_url: {backup.base_url}
    timeout: {{connect: 0.5, total: 2}}
features:
  - {{name: support, model: primary, fallbacks: [backup], deadline: {DEADLINE}}}
""")


async def ask(chain: Provider, i: int, *, stream: bool = False) -> tuple[float, str, Trace]:
    """One call with the feature's deadline: its wall time, its answer and its trace."""
    request = ModelRequest(messages=[{"role": "user", "content": f"parcel {i}"}], timeout=DEADLINE)
    t0 = monotonic()
    answer = text(await collect(chain.stream(request))) if stream else (await chain.complete(request)).text
    return monotonic() - t0, answer, request.trace


Outcome = tuple[float, str, Trace]


async def many(chain: Provider, n: int, *, stream: bool = False, offset: int = 0) -> list[Outcome]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> tuple[float, str, Trace]:
        async with gate:
            return await ask(chain, i, stream=stream)

    return await asyncio.gather(*(one(offset + i) for i in range(n)))


def requests_seen(*fakes: FakeUpstream) -> list[int]:
    """How many requests each fake has received."""
    return [int(fake.stats()["requests"]) for fake in fakes]


def check_answered_in_time(results: list[tuple[float, str, Trace]], offset: int = 0) -> Counter[str]:
    """Every call answered (its own question echoed), none past the deadline; who answered how often."""
    late = [round(elapsed, 3) for elapsed, _, _ in results if elapsed > DEADLINE + SLACK]
    assert late == []
    for i, (_, answer, trace) in enumerate(results):
        assert f"parcel {offset + i}" in answer, answer
        assert trace.attempts >= 1
    return Counter(trace.model or "?" for _, _, trace in results)


def test_a_thousand_calls_through_a_flaky_primary_are_all_answered_in_time(
    upstreams: tuple[FakeUpstream, FakeUpstream],
) -> None:
    primary, backup = upstreams
    settings = settings_for(primary, backup)

    async def go() -> None:
        state = MemoryState()
        models = {m.name: build_model(m, settings, state) for m in settings.models}
        chain = build_chain(settings.feature("support"), models)
        try:
            # Half the errors are 500s, half 503s.
            results = await many(chain, 500)
            await asyncio.to_thread(primary.configure, error_status=503)
            results += await many(chain, 500, offset=500)
            answered_by = check_answered_in_time(results)
            assert set(answered_by) == {"primary", "backup"}, answered_by
            failures = Counter(f for _, _, t in results for f in t.failures)
            assert failures["primary: http_500"] + failures["primary: http_503"] > 0, failures
            assert failures["primary: upstream_timeout"] > 0, failures
            # While the breaker is open the primary is not even asked: its calls fail fast to the backup.
            assert failures["primary: circuit_open"] > 0, failures
            assert sum(await asyncio.to_thread(requests_seen, primary)) < 1000
            report = await health(models["primary"])
            [deployment] = report["deployments"]
            assert deployment["opened"] >= 1  # the breaker opened at least once

            # The primary recovers: after the cooldown a probe closes the breaker; the traffic comes back.
            await asyncio.to_thread(primary.configure, error_rate=0.0, timeout_rate=0.0)
            await asyncio.sleep(COOLDOWN + 0.1)
            before = await asyncio.to_thread(requests_seen, primary, backup)
            _, _, probe = await ask(chain, 0)
            assert probe.model == "primary"
            assert (await health(models["primary"]))["status"] == "ok"
            again = await many(chain, 100)
            assert check_answered_in_time(again) == Counter({"primary": 100})
            after = await asyncio.to_thread(requests_seen, primary, backup)
            assert after[0] - before[0] == 101
            assert after[1] == before[1]
        finally:
            for model in models.values():
                await model.aclose()

    asyncio.run(go())


def test_streams_through_a_flaky_primary_are_all_answered_in_time(
    upstreams: tuple[FakeUpstream, FakeUpstream],
) -> None:
    primary, backup = upstreams
    settings = settings_for(primary, backup)

    async def go() -> Counter[str]:
        state = MemoryState()
        models = {m.name: build_model(m, settings, state) for m in settings.models}
        chain = build_chain(settings.feature("support"), models)
        try:
            return check_answered_in_time(await many(chain, 200, stream=True))
        finally:
            for model in models.values():
                await model.aclose()

    answered_by = asyncio.run(go())
    assert set(answered_by) == {"primary", "backup"}, answered_by
