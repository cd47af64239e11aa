"""Rate limits and budgets through a real Pipeline: what a caller sees when a limit is reached."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from tests.stores.state_helpers import state_url

from keel import Call, Pipeline, Settings
from keel.errors import BudgetExceeded, KeelError, RateLimited, UpstreamTimeout
from keel.llm.limits import BudgetSettleStage, BudgetStage, RateLimitStage, budget_key
from keel.llm.providers.base import ModelRequest
from keel.monitor.cost import CostStage
from keel.server.errors import error_response
from keel.stage import Layer
from keel.stores import StateBackend, open_state
from keel.stores.memory import MemoryBudgets
from keel.testing.scripted import ScriptedProvider

MakeSettings = Callable[..., Settings]

BACKENDS = [
    pytest.param("memory", marks=pytest.mark.unit),
    pytest.param("redis", marks=pytest.mark.integration),
]
HASH = "sha256:" + "0" * 64

# "hi" is 8 prompt tokens; "one two three four five" is 5 completion tokens.
# At these prices a call's estimate is 8 x $0.001 + 10 x $0.002 = $0.028 and it really costs $0.018.
CONFIG = """\
models:
  - name: m
    provider: scripted
    price: {{input_per_mtok: 1000.0, output_per_mtok: 2000.0}}
  - name: big
    provider: scripted
    price: {{input_per_mtok: 3000.0, output_per_mtok: 1000.0}}
features:
  - name: support
    model: m
    limits: {{max_output_tokens: 10}}
    {feature}
keys:
  - {{name: alice, hash: "{hash}", {alice}}}
  - {{name: bob, hash: "{hash}"}}
ledger: {{enabled: false}}
"""
ESTIMATE, COST = 0.028, 0.018
REPLY = "one two three four five"


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    with state_url(request.param) as u:
        yield u


def _settings(make_settings: MakeSettings, feature: str = "", alice: str = "") -> Settings:
    return make_settings(CONFIG.format(feature=feature, alice=alice, hash=HASH))  # type: ignore[no-any-return]


def _wire(p: Pipeline, state: StateBackend) -> None:
    """What features.py will do: limits after the prompt, settling right after the cost is known."""
    for f in p.features.values():
        stages = [
            RateLimitStage.for_feature(f.config, p.settings, state, f.provider),
            BudgetStage.for_feature(f.config, p.settings, state, f.provider),
        ]
        f.stages[Layer.LLM] += [s for s in stages if s is not None]
        monitoring = f.stages[Layer.MONITORING]
        assert isinstance(monitoring[0], CostStage)
        monitoring.insert(1, BudgetSettleStage())


def _with_pipeline(
    settings: Settings,
    url: str,
    fn: Callable[[Pipeline, StateBackend], Awaitable[Any]],
    provider: ScriptedProvider | None = None,
) -> Any:
    async def go() -> Any:
        state = open_state(url)
        m = provider or ScriptedProvider("m", [REPLY])
        try:
            async with Pipeline(settings, providers={"m": m, "big": m}, ledger=False) as p:
                _wire(p, state)
                return await fn(p, state)
        finally:
            await state.aclose()

    return asyncio.run(go())


def _call(key: str | None = None, **params: Any) -> Call:
    return Call(feature="support", messages=[{"role": "user", "content": "hi"}], key_id=key, params=params)


async def _outcomes(p: Pipeline, calls: list[Call]) -> list[KeelError | None]:
    out: list[KeelError | None] = []
    for call in calls:
        try:
            await p.run(call)
            out.append(None)
        except KeelError as exc:
            out.append(exc)
    return out


# -- rate limits ----------------------------------------------------------------------------------


def test_a_feature_over_its_requests_per_minute_gets_a_429_naming_the_limit(
    make_settings: MakeSettings, url: str
) -> None:
    s = _settings(make_settings, feature="rate_limit: {rpm: 3}")
    provider = ScriptedProvider("m", [REPLY])
    refused = _call()

    async def go(p: Pipeline, state: StateBackend) -> list[KeelError | None]:
        return await _outcomes(p, [_call(), _call("alice"), _call("bob"), refused])

    *ok, err = _with_pipeline(s, url, go, provider)
    assert ok == [None, None, None] and len(provider.requests) == 3  # the refused call never reached it
    assert isinstance(err, RateLimited) and not isinstance(err, BudgetExceeded)
    assert "feature 'support' allows 3 requests per minute" in err.message
    assert err.retry_after is not None and 0 < err.retry_after <= 61
    assert refused.blocked_by is not None and refused.blocked_by.reason == "limit.rpm"
    response = error_response(err)
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1


def test_a_key_over_its_limit_is_refused_and_what_it_took_from_the_feature_is_given_back(
    make_settings: MakeSettings, url: str
) -> None:
    s = _settings(make_settings, feature="rate_limit: {rpm: 5}", alice="rate_limit: {rpm: 1}")

    async def go(p: Pipeline, state: StateBackend) -> list[KeelError | None]:
        return await _outcomes(p, [_call("alice"), _call("alice"), *[_call("bob") for _ in range(5)]])

    first, second, *bob = _with_pipeline(s, url, go)
    assert first is None
    assert isinstance(second, RateLimited) and "API key 'alice' allows 1 request per minute" in second.message
    # alice's refused call took nothing from the feature's 5: bob still gets 4 of them.
    assert bob[:4] == [None] * 4
    assert isinstance(bob[4], RateLimited) and "feature 'support' allows 5 requests" in bob[4].message


def test_tokens_per_minute_count_the_input_plus_the_output_the_call_may_use(
    make_settings: MakeSettings, url: str
) -> None:
    s = _settings(make_settings, feature="rate_limit: {tpm: 50}")
    first, third = _call(), _call()

    async def go(p: Pipeline, state: StateBackend) -> list[KeelError | None]:
        return await _outcomes(p, [first, _call(), third])

    ok1, ok2, err = _with_pipeline(s, url, go)
    assert ok1 is ok2 is None and first.input_tokens == 8  # counted once, kept on the call: 8 + 10 = 18
    assert isinstance(err, RateLimited) and err.retry_after is not None and err.retry_after > 0
    assert "feature 'support' allows 50 tokens per minute (this request counts 18)" in err.message
    assert third.blocked_by is not None and third.blocked_by.reason == "limit.tpm"


def test_a_key_tokens_per_minute_and_a_request_that_could_never_fit(
    make_settings: MakeSettings, url: str
) -> None:
    s = _settings(make_settings, alice="rate_limit: {tpm: 40}")
    provider = ScriptedProvider("m", [REPLY])
    huge = _call("alice", max_tokens=500)  # capped to 10 by the feature's limits: it fits

    async def go(p: Pipeline, state: StateBackend) -> list[KeelError | None]:
        return await _outcomes(p, [huge, _call("alice"), _call("alice"), _call("bob")])

    a1, a2, a3, b1 = _with_pipeline(s, url, go, provider)
    assert (a1, a2, b1) == (None, None, None)
    assert isinstance(a3, RateLimited) and "API key 'alice' allows 40 tokens per minute" in a3.message


def test_a_request_larger_than_a_whole_minute_of_tokens_is_refused_without_a_retry_after(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(
        CONFIG.format(feature="rate_limit: {tpm: 100}", alice="", hash=HASH).replace(
            "limits: {max_output_tokens: 10}", "limits: {}"
        )
    )
    provider = ScriptedProvider("m", [REPLY])

    async def go(p: Pipeline, state: StateBackend) -> list[KeelError | None]:
        return await _outcomes(p, [_call(max_tokens=500), _call()])  # 8 + 1024 (the default) > 100 too

    big, default = _with_pipeline(s, "memory", go, provider)
    for err in (big, default):
        assert isinstance(err, RateLimited) and err.retry_after is None
        assert "more than feature 'support' allows per minute (100)" in err.message
    assert provider.requests == []


# -- budgets --------------------------------------------------------------------------------------


class _SlowScripted(ScriptedProvider):
    """Answers after a short random pause, so that calls overlap as real ones do."""

    def __init__(self, seed: int) -> None:
        super().__init__("m", [REPLY])
        self.rng = random.Random(seed)

    async def complete(self, request: ModelRequest) -> Any:
        await asyncio.sleep(self.rng.uniform(0, 0.02))
        return await super().complete(request)


def test_200_concurrent_calls_never_overspend_a_budget_by_more_than_one_estimate(
    make_settings: MakeSettings, url: str
) -> None:
    s = _settings(make_settings, feature="budget: {usd_per_day: 1.0}")
    rng = random.Random(7)

    async def one(p: Pipeline) -> float | KeelError:
        await asyncio.sleep(rng.uniform(0, 0.1))
        try:
            return (await p.run(_call())).usage.cost_usd
        except KeelError as exc:
            return exc

    async def go(p: Pipeline, state: StateBackend) -> tuple[list[float | KeelError], tuple[float, float]]:
        outcomes = await asyncio.gather(*(one(p) for _ in range(200)))
        return outcomes, await state.budgets.usage(budget_key("feature", "support", "day"))

    outcomes, (spent, reserved) = _with_pipeline(s, url, go, _SlowScripted(seed=3))
    costs = [o for o in outcomes if isinstance(o, float)]
    refused = [o for o in outcomes if not isinstance(o, float)]
    assert sum(costs) <= 1.0 + ESTIMATE
    assert spent == pytest.approx(sum(costs)) and reserved == 0  # nothing stays held
    assert len(costs) >= int(1.0 / ESTIMATE) and refused  # it let through what fits, and no more
    assert all(c == pytest.approx(COST) for c in costs)
    assert all(isinstance(e, BudgetExceeded) for e in refused)
    assert "feature 'support' has $0.0" in refused[0].message  # type: ignore[union-attr]
    assert "left of its daily budget of $1.00" in refused[0].message  # type: ignore[union-attr]


def test_a_key_budget_is_reserved_at_the_estimate_and_charged_the_real_cost(
    make_settings: MakeSettings, url: str
) -> None:
    s = _settings(make_settings, alice="budget: {usd_per_day: 0.05}")
    refused = _call("alice")

    async def go(p: Pipeline, state: StateBackend) -> list[Any]:
        # $0.028 held per call, $0.018 charged: 0 + 0.028, then 0.018 + 0.028 fit; 0.036 + 0.028 does not.
        outcomes = await _outcomes(p, [_call("alice"), _call("alice"), refused, _call("bob")])
        return [*outcomes, await state.budgets.usage(budget_key("key", "alice", "day"))]

    a1, a2, a3, b1, (spent, reserved) = _with_pipeline(s, url, go)
    assert (a1, a2, b1) == (None, None, None)
    assert isinstance(a3, BudgetExceeded) and http_429(a3)
    assert "API key 'alice' has $0.0140 left of its daily budget of $0.0500" in a3.message
    assert "this call may cost up to $0.0280" in a3.message
    assert a3.retry_after is not None and 0 < a3.retry_after <= 86_400
    assert refused.blocked_by is not None and refused.blocked_by.reason == "budget.day"
    assert (spent, reserved) == (pytest.approx(2 * COST), 0)


def http_429(exc: KeelError) -> bool:
    return error_response(exc).status_code == 429


def test_a_monthly_budget_refuses_with_its_own_reason(make_settings: MakeSettings) -> None:
    s = _settings(make_settings, feature="budget: {usd_per_month: 0.03}")
    refused = _call()

    async def go(p: Pipeline, state: StateBackend) -> list[KeelError | None]:
        return await _outcomes(p, [_call(), refused])

    ok, err = _with_pipeline(s, "memory", go)
    assert ok is None and isinstance(err, BudgetExceeded) and "monthly budget" in err.message
    assert refused.blocked_by is not None and refused.blocked_by.reason == "budget.month"


def test_the_estimate_uses_the_highest_prices_of_every_model_a_feature_may_fall_back_to(
    make_settings: MakeSettings,
) -> None:
    # m alone would be estimated at $0.028; with the fallback "big" it is 8 x 0.003 + 10 x 0.002 = $0.044.
    s = _settings(make_settings, feature="fallbacks: [big]\n    budget: {usd_per_day: 0.04}")
    provider = ScriptedProvider("m", [REPLY])

    async def go(p: Pipeline, state: StateBackend) -> list[KeelError | None]:
        return await _outcomes(p, [_call()])

    [err] = _with_pipeline(s, "memory", go, provider)
    assert isinstance(err, BudgetExceeded) and provider.requests == []
    assert "this call may cost up to $0.0440, more than the whole daily budget" in err.message


def test_a_failed_call_releases_its_hold_and_spends_nothing(make_settings: MakeSettings, url: str) -> None:
    s = _settings(make_settings, feature="budget: {usd_per_day: 1.0, usd_per_month: 5.0}")
    provider = ScriptedProvider("m", [UpstreamTimeout("slow")])

    async def go(p: Pipeline, state: StateBackend) -> list[Any]:
        outcomes = await _outcomes(p, [_call()])
        keys = [budget_key("feature", "support", period) for period in ("day", "month")]
        return [*outcomes, *[await state.budgets.usage(k) for k in keys]]

    err, day, month = _with_pipeline(s, url, go, provider)
    assert isinstance(err, UpstreamTimeout)
    assert day == (0.0, 0.0) and month == (0.0, 0.0)


def test_a_streamed_call_is_settled_when_its_stream_ends(make_settings: MakeSettings, url: str) -> None:
    s = _settings(make_settings, feature="budget: {usd_per_day: 1.0}")
    call = _call()

    async def go(p: Pipeline, state: StateBackend) -> tuple[float, float]:
        async for _ in await p.open_stream(call):
            pass
        return await state.budgets.usage(budget_key("feature", "support", "day"))

    spent, reserved = _with_pipeline(s, url, go)
    assert spent == pytest.approx(COST) == pytest.approx(call.usage.cost_usd) and reserved == 0


class _BrokenBudgets(MemoryBudgets):
    async def settle(self, key: str, reserved: float, actual: float, period_end: float) -> None:
        raise KeelError("state backend unavailable: Redis: connection refused", code="state_unavailable")


def test_settling_never_fails_a_call_when_the_store_does(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    s = _settings(make_settings, feature="budget: {usd_per_day: 1.0}")
    broken = _BrokenBudgets()

    async def go(p: Pipeline, state: StateBackend) -> Any:
        stages = p.features["support"].stages[Layer.LLM]
        stages[-1] = BudgetStage(
            broken,
            feature="support",
            budget=p.settings.feature("support").budget,
            key_budgets={},
            price=p.settings.model("m").price,
            count_messages=p.features["support"].provider.count_messages,
        )
        return await p.run(_call())

    with caplog.at_level(logging.WARNING, logger="keel.limits"):
        result = _with_pipeline(s, "memory", go)
    assert result.text == REPLY
    assert "event=budget_settle_failed" in caplog.text and "budget=feature:support:day" in caplog.text
