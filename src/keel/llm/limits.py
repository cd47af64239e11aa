"""Rate limits and budgets: refuse a call before it costs anything, and settle what it really cost.

``RateLimitStage`` and ``BudgetStage`` run in the LLM layer, after the prompt is rendered and
before the model is called; ``BudgetSettleStage`` runs in the Monitoring layer, after the cost
is known. Their state lives in a ``StateBackend`` (in-process or Redis), whose atomic
operations make the limits hold across concurrent calls and replicas.

A call's size is counted before it is made: its input tokens plus the output tokens it may
use (``max_tokens``/``max_completion_tokens``, else ``DEFAULT_MAX_OUTPUT_TOKENS``). Rate
limits count that as its tokens per minute; budgets reserve it at the highest prices of the
models the feature may call, so no fallback or route can spend more than was reserved.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, Literal, NoReturn, TypeVar

from keel.call import Action, Call, Message, Verdict
from keel.errors import BudgetExceeded, KeelError, RateLimited
from keel.keystore.directory import KeyLookup
from keel.llm.providers import Provider
from keel.settings import Budget, FeatureConfig, KeyConfig, Price, RateLimit, Settings
from keel.stage import Layer, Stage
from keel.stores.base import BudgetDecision, Budgets, Counters, StateBackend

log = logging.getLogger("keel.limits")

DEFAULT_MAX_OUTPUT_TOKENS = 1024
"""Output tokens a call is assumed to use when it sets no ``max_tokens`` (set ``limits.max_output_tokens``
on a feature to make every call carry one, which also makes its budget estimate an upper bound)."""

MINUTE = 60.0

Period = Literal["day", "month"]
CountMessages = Callable[[list[Message]], int]


def input_tokens(call: Call, count_messages: CountMessages) -> int:
    """The call's prompt tokens, counted once and kept on ``call.input_tokens``."""
    if call.input_tokens is None:
        call.input_tokens = count_messages(call.messages)
    return call.input_tokens


def max_output_tokens(call: Call, default: int = DEFAULT_MAX_OUTPUT_TOKENS) -> int:
    """The most output tokens the call asks for (the larger of the two names), else ``default``."""
    asked = [
        v
        for v in (call.params.get("max_tokens"), call.params.get("max_completion_tokens"))
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0
    ]
    return max(asked) if asked else default


def _keys_of(settings: Settings, feature: str) -> list[tuple[str, RateLimit | None, Budget | None]]:
    return [
        (k.name, k.rate_limit, k.budget) for k in settings.keys if k.features is None or feature in k.features
    ]


T = TypeVar("T")


class _PerKey(Generic[T]):
    """The limits a call's key brings: the feature's own plus the key's.

    With ``keys`` (a live lookup, e.g. ``KeyDirectory.by_name``) a key's limits are read when its
    calls come, so keys created after start-up are limited too; they are cached per key object,
    and a reloaded key with other limits is a new object. Without it, ``static`` was computed
    from keel.yaml at load.
    """

    __slots__ = ("_cache", "feature", "keys", "own", "static")

    def __init__(
        self,
        feature: tuple[T, ...],
        own: Callable[[KeyConfig], tuple[T, ...]],
        *,
        keys: KeyLookup | None = None,
        static: Mapping[str, tuple[T, ...]] | None = None,
    ) -> None:
        self.feature = feature
        self.own = own
        self.keys = keys
        self.static = static or {}
        self._cache: dict[str, tuple[KeyConfig, tuple[T, ...]]] = {}

    def get(self, key_id: str | None) -> tuple[T, ...]:
        """Every limit that applies to a call made with ``key_id``."""
        if key_id is None:
            return self.feature
        if self.keys is None:
            return self.static.get(key_id, self.feature)
        key = self.keys(key_id)
        if key is None:
            return self.feature
        hit = self._cache.get(key_id)
        if hit is not None and hit[0] is key:
            return hit[1]
        limits = self.feature + self.own(key)
        self._cache[key_id] = (key, limits)
        return limits


# -- rate limits ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Limit:
    counter: str  # the counter's key in the store
    tokens: bool  # tokens per minute (else requests)
    limit: int
    who: str  # "feature 'support'" or "API key 'alice'", for messages

    @property
    def reason(self) -> str:
        return "limit.tpm" if self.tokens else "limit.rpm"

    @property
    def unit(self) -> str:
        unit = "token" if self.tokens else "request"
        return unit if self.limit == 1 else unit + "s"


def _limits(scope: str, name: str, who: str, rl: RateLimit | None) -> tuple[_Limit, ...]:
    if rl is None:
        return ()
    out = []
    if rl.rpm is not None:
        out.append(_Limit(f"{scope}:{name}:rpm", False, rl.rpm, who))
    if rl.tpm is not None:
        out.append(_Limit(f"{scope}:{name}:tpm", True, rl.tpm, who))
    return tuple(out)


class RateLimitStage(Stage):
    """Requests and tokens per minute, per feature and per API key (sliding windows in the store).

    A call counts against every limit that applies, or against none: when one refuses, what the
    others took is given back. Refused: ``RateLimited`` (429) naming the limit, with the seconds
    until the window lets it through as ``retry_after``, and a blocking verdict ``limit.rpm`` or
    ``limit.tpm``.
    """

    name = "llm.rate_limit"
    layer = Layer.LLM

    def __init__(
        self,
        counters: Counters,
        *,
        feature: str,
        limit: RateLimit | None,
        key_limits: Mapping[str, RateLimit] | None = None,
        keys: KeyLookup | None = None,
        count_messages: CountMessages,
        default_max_output: int = DEFAULT_MAX_OUTPUT_TOKENS,
    ) -> None:
        self.counters = counters
        self.count_messages = count_messages
        self.default_max_output = default_max_output
        own = _limits("feature", feature, f"feature {feature!r}", limit)
        self._limits = _PerKey(
            own,
            lambda k: _limits("key", k.name, f"API key {k.name!r}", k.rate_limit),
            keys=keys,
            static={
                key: own + _limits("key", key, f"API key {key!r}", rl)
                for key, rl in (key_limits or {}).items()
            },
        )

    @classmethod
    def for_feature(
        cls,
        fc: FeatureConfig,
        settings: Settings,
        state: StateBackend,
        provider: Provider,
        keys: KeyLookup | None = None,
    ) -> RateLimitStage | None:
        """The stage for feature ``fc``; None when neither it nor a keel.yaml key is limited and
        there is no live ``keys`` lookup (through which a key made later may bring limits)."""
        static = {name: rl for name, rl, _ in _keys_of(settings, fc.name) if rl is not None}
        if fc.rate_limit is None and not static and keys is None:
            return None
        return cls(
            state.counters,
            feature=fc.name,
            limit=fc.rate_limit,
            key_limits=static,
            keys=keys,
            count_messages=provider.count_messages,
        )

    async def run(self, call: Call) -> None:
        """Count the call against its limits; RateLimited when one is reached."""
        limits = self._limits.get(call.key_id)
        if not limits:
            return
        tokens = 0
        if any(lim.tokens for lim in limits):
            tokens = input_tokens(call, self.count_messages) + max_output_tokens(
                call, self.default_max_output
            )
            for lim in limits:
                if lim.tokens and tokens > lim.limit:
                    self._block(
                        call,
                        lim,
                        f"this request counts {tokens} tokens (input plus max output tokens), more than "
                        f"{lim.who} allows per minute ({lim.limit}); lower max_tokens or shorten the input",
                        None,
                    )
        taken: list[tuple[_Limit, int]] = []
        for lim in limits:
            amount = tokens if lim.tokens else 1
            decision = await self.counters.hit(lim.counter, amount, lim.limit, MINUTE)
            if not decision.allowed:
                for prev, took in taken:
                    await self.counters.add(prev.counter, -took, MINUTE)
                wait = max(decision.retry_after, 0.001)
                extra = f" (this request counts {tokens})" if lim.tokens else ""
                self._block(
                    call,
                    lim,
                    f"rate limit reached: {lim.who} allows {lim.limit} {lim.unit} per minute{extra}; "
                    f"try again in {_duration(wait)}",
                    wait,
                )
            taken.append((lim, amount))

    def _block(self, call: Call, lim: _Limit, message: str, retry_after: float | None) -> NoReturn:
        call.add_verdict(Verdict(self.name, Action.BLOCK, lim.reason, float(lim.limit), lim.who))
        raise RateLimited(message, retry_after=retry_after)


# -- budgets --------------------------------------------------------------------------------------


def period_end(period: Period, now: float) -> float:
    """The end (epoch seconds) of the UTC calendar day or month that contains ``now``."""
    d = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return (d + timedelta(days=1)).timestamp()
    d = d.replace(day=1)
    return (
        d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)
    ).timestamp()


@dataclass(frozen=True, slots=True)
class BudgetHold:
    """Money reserved for a call against one budget, in one store, until its period ends."""

    budgets: Budgets
    key: str
    amount: float
    period_end: float


@dataclass(frozen=True, slots=True)
class _Budget:
    key: str  # the budget's key in the store
    period: Period
    limit: float
    who: str

    @property
    def reason(self) -> str:
        return f"budget.{self.period}"

    @property
    def adjective(self) -> str:
        return "daily" if self.period == "day" else "monthly"


def budget_key(scope: Literal["feature", "key"], name: str, period: Period) -> str:
    """The store key of a feature's or an API key's budget for ``period`` (for reports: ``usage()``)."""
    return f"{scope}:{name}:{period}"


def _budgets(scope: Literal["feature", "key"], name: str, who: str, b: Budget | None) -> tuple[_Budget, ...]:
    if b is None:
        return ()
    out = []
    if b.usd_per_day is not None:
        out.append(_Budget(budget_key(scope, name, "day"), "day", b.usd_per_day, who))
    if b.usd_per_month is not None:
        out.append(_Budget(budget_key(scope, name, "month"), "month", b.usd_per_month, who))
    return tuple(out)


def _usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:.4f}"


def price_ceiling(prices: list[Price]) -> Price:
    """The highest input and output prices among ``prices``: what a call may cost at most per token."""
    return Price(
        input_per_mtok=max((p.input_per_mtok for p in prices), default=0.0),
        output_per_mtok=max((p.output_per_mtok for p in prices), default=0.0),
    )


class BudgetStage(Stage):
    """USD per UTC day and month, per feature and per API key: reserve the estimate before the call.

    Each granted reservation goes on ``call.reservations`` as a ``BudgetHold``; the Monitoring
    layer's ``BudgetSettleStage`` releases it and records the real cost, whatever happened to
    the call. Refused: ``BudgetExceeded`` (429) naming the budget and what is left, with the
    seconds until the period ends as ``retry_after``, and a blocking verdict ``budget.day`` or
    ``budget.month``.
    """

    name = "llm.budget"
    layer = Layer.LLM

    def __init__(
        self,
        budgets: Budgets,
        *,
        feature: str,
        budget: Budget | None,
        key_budgets: Mapping[str, Budget] | None = None,
        keys: KeyLookup | None = None,
        price: Price,
        count_messages: CountMessages,
        answers: int = 1,
        default_max_output: int = DEFAULT_MAX_OUTPUT_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budgets = budgets
        self.price = price  # the ceiling over every model the feature may call
        self.answers = answers  # model answers one call may pay for (a cascade's length)
        self.count_messages = count_messages
        self.default_max_output = default_max_output
        self.clock = clock
        own = _budgets("feature", feature, f"feature {feature!r}", budget)
        self._budgets = _PerKey(
            own,
            lambda k: _budgets("key", k.name, f"API key {k.name!r}", k.budget),
            keys=keys,
            static={
                key: own + _budgets("key", key, f"API key {key!r}", b)
                for key, b in (key_budgets or {}).items()
            },
        )
        self._ends: dict[Period, float] = {"day": 0.0, "month": 0.0}

    @classmethod
    def for_feature(
        cls,
        fc: FeatureConfig,
        settings: Settings,
        state: StateBackend,
        provider: Provider,
        keys: KeyLookup | None = None,
    ) -> BudgetStage | None:
        """The stage for feature ``fc``; None when neither it nor a keel.yaml key has a budget and
        there is no live ``keys`` lookup (through which a key made later may bring one)."""
        static = {name: b for name, _, b in _keys_of(settings, fc.name) if b is not None}
        if fc.budget is None and not static and keys is None:
            return None
        cascade = fc.routing.cascade if fc.routing is not None else None
        return cls(
            state.budgets,
            feature=fc.name,
            budget=fc.budget,
            key_budgets=static,
            keys=keys,
            price=price_ceiling([settings.model(m).price for m in fc.models_used()]),
            count_messages=provider.count_messages,
            answers=len(cascade.models) if cascade is not None else 1,
        )

    def estimate(self, call: Call) -> float:
        """The most this call may cost (USD): its tokens at the highest prices, per answer it may buy."""
        tokens_in = input_tokens(call, self.count_messages)
        tokens_out = max_output_tokens(call, self.default_max_output)
        p = self.price
        return self.answers * (tokens_in * p.input_per_mtok + tokens_out * p.output_per_mtok) / 1_000_000

    def _period_end(self, period: Period, now: float) -> float:
        end = self._ends[period]
        if now >= end:
            end = self._ends[period] = period_end(period, now)
        return end

    async def run(self, call: Call) -> None:
        """Reserve the estimate against every budget that applies; BudgetExceeded when one is short."""
        budgets = self._budgets.get(call.key_id)
        if not budgets:
            return
        amount = self.estimate(call)
        now = self.clock()
        for b in budgets:
            end = self._period_end(b.period, now)
            decision = await self.budgets.reserve(b.key, amount, b.limit, end)
            if not decision.allowed:
                call.add_verdict(Verdict(self.name, Action.BLOCK, b.reason, amount, b.who))
                raise BudgetExceeded(
                    _refusal(b, amount, decision), retry_after=max(decision.retry_after, 0.001)
                )
            call.reservations.append(BudgetHold(self.budgets, b.key, amount, end))


def _refusal(b: _Budget, amount: float, decision: BudgetDecision) -> str:
    renews = f"it renews in {_duration(decision.retry_after)}, at the start of the next UTC {b.period}"
    if amount > b.limit:
        return (
            f"this call may cost up to {_usd(amount)}, more than the whole {b.adjective} budget of "
            f"{b.who} ({_usd(b.limit)}); lower max_tokens or shorten the input"
        )
    left = max(b.limit - decision.spent - decision.reserved, 0.0)
    return (
        f"{b.who} has {_usd(left)} left of its {b.adjective} budget of {_usd(b.limit)} "
        f"and this call may cost up to {_usd(amount)}; {renews}"
    )


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{max(math.ceil(seconds), 1)} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 1:
        return f"{minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if days else f"{hours} h {minutes} min"


class BudgetSettleStage(Stage):
    """Release every budget hold of the call and record its real cost (0 when nothing was spent).

    Runs after ``CostStage``. It never raises: a store that fails is logged, and its hold
    lapses when its period ends. The settling finishes even when the caller is cancelled.
    """

    name = "monitoring.budget"
    layer = Layer.MONITORING

    async def run(self, call: Call) -> None:
        """Settle ``call.reservations`` with ``call.usage.cost_usd``."""
        holds = [h for h in call.reservations if isinstance(h, BudgetHold)]
        if not holds:
            return
        call.reservations = [r for r in call.reservations if not isinstance(r, BudgetHold)]
        await asyncio.shield(_settle(holds, call.usage.cost_usd, call.id))


async def _settle(holds: list[BudgetHold], actual: float, call_id: str) -> None:
    for hold in holds:
        try:
            await hold.budgets.settle(hold.key, hold.amount, actual, hold.period_end)
        except KeelError as exc:
            log.warning(
                "event=budget_settle_failed call_id=%s budget=%s reserved=%.6f actual=%.6f error=%s",
                call_id,
                hold.key,
                hold.amount,
                actual,
                exc.message,
            )
