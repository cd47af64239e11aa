"""The Budgets contract: reservations never let spending pass the limit, and periods start afresh."""

from __future__ import annotations

import asyncio
import time

import pytest
from state_helpers import run_with

from keel.stores.base import StateBackend

DAY = 86_400.0


def test_a_reservation_holds_money_until_it_is_settled_with_the_real_cost(url: str) -> None:
    async def go(s: StateBackend) -> None:
        end = time.time() + DAY
        first = await s.budgets.reserve("b", 0.4, 1.0, end)
        assert first.allowed and first.spent == 0 and first.reserved == pytest.approx(0.4)
        assert await s.budgets.usage("b") == pytest.approx((0.0, 0.4))
        second = await s.budgets.reserve("b", 0.5, 1.0, end)
        assert second.allowed and second.reserved == pytest.approx(0.9)
        await s.budgets.settle("b", 0.4, 0.1, end)
        assert await s.budgets.usage("b") == pytest.approx((0.1, 0.5))
        await s.budgets.settle("b", 0.5, 0.5, end)
        assert await s.budgets.usage("b") == pytest.approx((0.6, 0.0))

    run_with(url, go)


def test_a_reservation_that_would_pass_the_limit_is_refused_until_the_period_ends(url: str) -> None:
    async def go(s: StateBackend) -> None:
        end = time.time() + 3600
        await s.budgets.reserve("b", 0.7, 1.0, end)
        await s.budgets.settle("b", 0.7, 0.7, end)
        await s.budgets.reserve("b", 0.2, 1.0, end)
        refused = await s.budgets.reserve("b", 0.2, 1.0, end)
        assert not refused.allowed
        assert refused.spent == pytest.approx(0.7) and refused.reserved == pytest.approx(0.2)
        assert refused.limit == 1.0 and 3500 < refused.retry_after <= 3600
        assert (await s.budgets.reserve("b", 0.1, 1.0, end)).allowed  # exactly what is left

    run_with(url, go)


def test_200_concurrent_reservations_never_hold_more_than_the_limit(url: str) -> None:
    async def go(s: StateBackend) -> tuple[int, tuple[float, float]]:
        end = time.time() + DAY
        decisions = await asyncio.gather(*(s.budgets.reserve("b", 0.01, 1.0, end) for _ in range(200)))
        granted = sum(d.allowed for d in decisions)
        await asyncio.gather(*(s.budgets.settle("b", 0.01, 0.005, end) for _ in range(granted)))
        return granted, await s.budgets.usage("b")

    granted, (spent, reserved) = run_with(url, go)
    assert granted == 100  # 100 cents in a dollar: float rounding takes none of them
    assert spent == pytest.approx(0.5) and reserved == 0


def test_a_budget_starts_again_when_its_period_ends(url: str) -> None:
    async def go(s: StateBackend) -> None:
        end = time.time() + 0.6
        await s.budgets.reserve("b", 1.0, 1.0, end)
        assert not (await s.budgets.reserve("b", 0.5, 1.0, end)).allowed
        await asyncio.sleep(0.7)
        assert await s.budgets.usage("b") == (0.0, 0.0)
        await s.budgets.settle("b", 1.0, 1.0, end)  # a call of the old period settles late: no effect
        fresh = await s.budgets.reserve("b", 1.0, 1.0, time.time() + DAY)
        assert fresh.allowed and fresh.spent == 0 and fresh.reserved == pytest.approx(1.0)

    run_with(url, go)


def test_usage_of_an_unknown_budget_is_zero_and_budgets_are_independent(url: str) -> None:
    async def go(s: StateBackend) -> None:
        end = time.time() + DAY
        assert await s.budgets.usage("nobody") == (0.0, 0.0)
        await s.budgets.reserve("a", 1.0, 1.0, end)
        assert (await s.budgets.reserve("b", 1.0, 1.0, end)).allowed
        assert not (await s.budgets.reserve("c", 1.5, 1.0, end)).allowed  # more than the whole budget

    run_with(url, go)
