"""Shared state behind four small interfaces, each in-process (``memory``) or in Redis (scale-out).

Everything that must hold across gateway replicas lives here: the answer cache, rate-limit
windows, budget reservations and circuit-breaker state. Every operation that decides
something (may this request pass? may this call spend?) is atomic in the backend, so two
replicas can never both take the last unit. Each interface has one contract test suite that
every backend passes (``tests/stores``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class WindowDecision:
    """The outcome of adding to a sliding-window counter."""

    allowed: bool
    used: float  # in the window, after this hit when allowed
    limit: float
    retry_after: float  # seconds until the same hit would be allowed; 0 when allowed


class Counters(ABC):
    """Sliding-window counters for rate limits (requests or tokens per window)."""

    @abstractmethod
    async def hit(self, key: str, amount: float, limit: float, window: float) -> WindowDecision:
        """Add ``amount`` to ``key``'s window of ``window`` seconds if the total stays within ``limit``."""

    @abstractmethod
    async def add(self, key: str, amount: float, window: float) -> None:
        """Add ``amount`` unconditionally (e.g. the tokens a call turned out to use beyond its estimate)."""


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """The outcome of a reservation against a budget."""

    allowed: bool
    spent: float  # settled so far in the period
    reserved: float  # held by calls in flight, this one included when allowed
    limit: float
    retry_after: float  # seconds until the period ends, when refused; 0 when allowed


class Budgets(ABC):
    """Money per period: reserve the estimate before a call, settle the real cost after it."""

    @abstractmethod
    async def reserve(self, key: str, amount: float, limit: float, period_end: float) -> BudgetDecision:
        """Hold ``amount`` if spent + reserved + amount stays within ``limit``.

        The key expires at ``period_end`` (epoch seconds), which starts a new period.
        """

    @abstractmethod
    async def settle(self, key: str, reserved: float, actual: float, period_end: float) -> None:
        """Release a reservation of ``reserved`` and record ``actual`` as spent."""

    @abstractmethod
    async def usage(self, key: str) -> tuple[float, float]:
        """(spent, reserved) for ``key`` in its current period."""


class CircuitState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"  # calls pass
    OPEN = "open"  # calls fail fast until the cooldown ends
    HALF_OPEN = "half_open"  # one probe call decides


@dataclass(frozen=True, slots=True)
class Breaker:
    """A breaker's state as stored."""

    state: CircuitState
    failures: int  # within the current window
    opened_until: float  # epoch seconds; meaningful when open


class Breakers(ABC):
    """Circuit-breaker state per deployment, with atomic transitions."""

    @abstractmethod
    async def get(self, name: str) -> Breaker:
        """The breaker's state (closed with no failures when never seen)."""

    @abstractmethod
    async def acquire(self, name: str, cooldown: float) -> bool:
        """May a call go to ``name`` now? Closed: yes. Open past its cooldown: yes for exactly one
        caller (it becomes the half-open probe). Otherwise no."""

    @abstractmethod
    async def record(self, name: str, ok: bool, *, failures: int, window: float, cooldown: float) -> Breaker:
        """Record a call's outcome: a success closes the breaker; ``failures`` failures within ``window``
        seconds (or a failed probe) open it for ``cooldown`` seconds."""


class Cache(ABC):
    """Bytes by key with a time to live."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or None when missing or expired."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget ``key``."""


@dataclass(frozen=True, slots=True)
class Match:
    """A semantic-cache neighbour: its similarity and the cache key of its answer."""

    score: float
    key: str


class Vectors(ABC):
    """Unit vectors per scope, for nearest-neighbour lookups (the semantic cache)."""

    @abstractmethod
    async def add(self, scope: str, key: str, vector: bytes, ttl: float, max_entries: int) -> None:
        """Remember ``vector`` (float32 bytes) under ``key`` in ``scope``, keeping at most ``max_entries``."""

    @abstractmethod
    async def nearest(self, scope: str, vector: bytes) -> Match | None:
        """The most similar live entry in ``scope`` by cosine similarity, or None."""


class StateBackend(ABC):
    """All shared state of one gateway, from one backend."""

    counters: Counters
    budgets: Budgets
    breakers: Breakers
    cache: Cache
    vectors: Vectors

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""
