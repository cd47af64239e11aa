"""Where each configured budget stands in its current period: spent, held by calls in flight, limit."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from keel.errors import StateUnavailable
from keel.llm.limits import Period, budget_key, period_end
from keel.settings import Budget, KeyConfig, Settings
from keel.stores.base import Budgets

Scope = Literal["feature", "key"]


def _configured(settings: Settings, keys: Sequence[KeyConfig]) -> list[tuple[Scope, str, Budget]]:
    out: list[tuple[Scope, str, Budget]] = [
        ("feature", f.name, f.budget) for f in settings.features if f.budget is not None
    ]
    named = {k.name: k for k in [*settings.keys, *keys]}
    out += [("key", k.name, k.budget) for k in named.values() if k.budget is not None]
    return out


async def budget_status(
    settings: Settings, budgets: Budgets, *, keys: Sequence[KeyConfig] = (), now: float | None = None
) -> list[dict[str, Any]]:
    """One entry per budget (feature or key, day or month), read from the shared state.

    ``keys``: keys beyond keel.yaml's whose budgets to show too (managed keys, from the key store).
    ``spent_usd`` and ``reserved_usd`` are None, with an ``error``, when the state backend is down.
    """
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    for scope, name, budget in _configured(settings, keys):
        periods: tuple[tuple[Period, float | None], ...] = (
            ("day", budget.usd_per_day),
            ("month", budget.usd_per_month),
        )
        for period, limit in periods:
            if limit is None:
                continue
            entry: dict[str, Any] = {
                "scope": scope,
                "name": name,
                "period": period,
                "limit_usd": limit,
                "resets_at": period_end(period, now),
            }
            try:
                spent, reserved = await budgets.usage(budget_key(scope, name, period))
            except StateUnavailable as exc:
                entry.update(spent_usd=None, reserved_usd=None, error=str(exc))
            else:
                entry.update(spent_usd=spent, reserved_usd=reserved, share=(spent + reserved) / limit)
            out.append(entry)
    return out
