"""The in-process state backend (the default): every interface of ``keel.stores.base`` in plain dicts.

No operation awaits, so each one is atomic on the event loop: concurrent requests of one
process can never both take the last unit. Every entry carries a deadline; a heap of
deadlines is checked on each operation and sweeps a bounded number of expired entries, so
memory stays bounded by what is live and no single call pays for a mass expiry.

Rate-limit windows are kept as ``SLOTS`` sub-buckets (see ``Window``); the Redis backend
uses the same scheme, so both give the same answers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from keel.stores.base import (
    Breaker,
    Breakers,
    BudgetDecision,
    Budgets,
    Cache,
    CircuitState,
    Counters,
    Match,
    StateBackend,
    Vectors,
    WindowDecision,
)

Clock = Callable[[], float]
"""Epoch seconds; ``time.time`` unless a test drives time itself."""

SLOTS = 60
"""Sub-buckets per rate-limit window: a one-minute window slides in one-second steps."""

EPSILON = 1e-12
"""USD below which float rounding is not money: a budget's slack, and a reservation's remainder."""

_SWEEP_BATCH = 64  # expired entries removed per operation at most: the cost of a mass expiry is spread
_INLINE_CELLS = 1 << 20  # vector scans larger than this (rows x dims) run off the event loop


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Entry(Generic[V]):
    __slots__ = ("expires", "queued", "value")

    def __init__(self, value: V, expires: float) -> None:
        self.value = value
        self.expires = expires
        self.queued = math.inf  # the deadline of this entry's live heap item


class Expiring(Generic[K, V]):
    """A dict whose entries expire at their own deadline; a heap of deadlines sweeps them.

    Each live entry has exactly one live heap item (the one whose deadline equals its
    ``queued``); extending an entry's deadline costs nothing until its old deadline comes up,
    when it is queued again. Heap items of deleted or shortened entries are skipped, and the
    heap is rebuilt when they outnumber the live ones. ``on_drop`` sees every value that leaves.
    """

    def __init__(self, on_drop: Callable[[V], object] | None = None) -> None:
        self.items: dict[K, _Entry[V]] = {}
        self._on_drop = on_drop
        self._heap: list[tuple[float, int, K, _Entry[V]]] = []
        self._seq = itertools.count()  # a tie-breaker, so that keys need not be comparable

    def __len__(self) -> int:
        return len(self.items)

    def get(self, key: K, now: float) -> _Entry[V] | None:
        """The live entry for ``key``, or None (an expired one is dropped)."""
        entry = self.items.get(key)
        if entry is not None and entry.expires <= now:
            self.pop(key)
            return None
        return entry

    def put(self, key: K, value: V, expires: float) -> _Entry[V]:
        """Store ``value`` until ``expires``; returns its entry."""
        entry = self.items.get(key)
        if entry is None:
            entry = self.items[key] = _Entry(value, expires)
            self._queue(key, entry)
        else:
            entry.value = value
            self.extend(key, entry, expires)
        return entry

    def extend(self, key: K, entry: _Entry[V], expires: float) -> None:
        """Move ``entry``'s deadline to ``expires`` (later or earlier)."""
        entry.expires = expires
        if expires < entry.queued:
            self._queue(key, entry)

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its value, or None."""
        entry = self.items.pop(key, None)
        if entry is None:
            return None
        if self._on_drop is not None:
            self._on_drop(entry.value)
        return entry.value

    def sweep(self, now: float) -> None:
        """Drop up to a batch of expired entries (cheap when nothing is due)."""
        heap = self._heap
        for _ in range(_SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                break
            deadline, _, key, entry = heapq.heappop(heap)
            if self.items.get(key) is not entry or entry.queued != deadline:
                continue  # a stale item: the entry was deleted, replaced or queued again
            if entry.expires <= now:
                self.pop(key)
            else:
                self._queue(key, entry)
        if len(heap) > 2 * len(self.items) + 1024:
            self._rebuild()

    def _queue(self, key: K, entry: _Entry[V]) -> None:
        entry.queued = entry.expires
        heapq.heappush(self._heap, (entry.expires, next(self._seq), key, entry))

    def _rebuild(self) -> None:
        self._heap = []
        for key, entry in self.items.items():
            entry.queued = entry.expires
            self._heap.append((entry.expires, next(self._seq), key, entry))
        heapq.heapify(self._heap)


# -- counters -------------------------------------------------------------------------------------


class Window:
    """A sliding window of ``SLOTS`` sub-buckets.

    A hit at time t lands in sub-bucket ``floor(t / width)`` (width = window / SLOTS) and is
    counted until that sub-bucket's end plus one window. So every interval of ``window``
    seconds holds at most ``limit`` (the window never under-counts), a hit is counted for at
    most one sub-bucket longer than the window, and memory per key is bounded by SLOTS + 1.
    ``retry_after`` is exact for this scheme: the time until enough sub-buckets leave.
    """

    __slots__ = ("slots", "total", "width")

    def __init__(self, window: float) -> None:
        self.width = window / SLOTS
        self.slots: deque[tuple[int, float]] = deque()  # (sub-bucket, amount), oldest first
        self.total = 0.0

    def prune(self, current: int) -> None:
        """Forget sub-buckets that no longer count at sub-bucket ``current``."""
        slots = self.slots
        while slots and slots[0][0] < current - SLOTS:
            self.total -= slots.popleft()[1]
        if not slots:
            self.total = 0.0  # no drift from float sums

    def add(self, current: int, amount: float) -> None:
        """Add ``amount`` to sub-bucket ``current``."""
        slots = self.slots
        if slots and slots[-1][0] == current:
            slots[-1] = (current, slots[-1][1] + amount)
        else:
            slots.append((current, amount))
        self.total += amount

    def expires(self) -> float:
        """When the newest sub-bucket stops counting (epoch seconds)."""
        return (self.slots[-1][0] + 1 + SLOTS) * self.width if self.slots else 0.0

    def retry_after(self, amount: float, limit: float, now: float) -> float:
        """Seconds until ``amount`` more fits under ``limit`` (one window when it never can)."""
        need = self.total + amount - limit
        if amount > limit:
            return self.width * SLOTS
        freed = 0.0
        for slot, value in self.slots:
            freed += value
            if freed >= need:
                return max((slot + 1 + SLOTS) * self.width - now, 0.0)
        return self.width * SLOTS


class MemoryCounters(Counters):
    """Sliding-window counters in a dict (see ``Window``); one key is used with one window length."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._windows: Expiring[str, Window] = Expiring()

    def _window(self, key: str, window: float, now: float) -> tuple[_Entry[Window], int]:
        self._windows.sweep(now)
        entry = self._windows.get(key, now)
        if entry is None or entry.value.width != window / SLOTS:
            entry = self._windows.put(key, Window(window), now + window)
        w = entry.value
        current = math.floor(now / w.width)
        w.prune(current)
        return entry, current

    async def hit(self, key: str, amount: float, limit: float, window: float) -> WindowDecision:
        """Add ``amount`` to ``key``'s window if the total stays within ``limit``."""
        now = self._clock()
        entry, current = self._window(key, window, now)
        w = entry.value
        if w.total + amount <= limit:
            w.add(current, amount)
            self._windows.extend(key, entry, w.expires())
            return WindowDecision(True, w.total, limit, 0.0)
        return WindowDecision(False, w.total, limit, w.retry_after(amount, limit, now))

    async def add(self, key: str, amount: float, window: float) -> None:
        """Add ``amount`` unconditionally (negative to give back)."""
        now = self._clock()
        entry, current = self._window(key, window, now)
        entry.value.add(current, amount)
        self._windows.extend(key, entry, entry.value.expires())


# -- budgets --------------------------------------------------------------------------------------


class MemoryBudgets(Budgets):
    """Budgets per (key, period): ``[spent, reserved]``, forgotten when the period ends."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._periods: Expiring[tuple[str, float], list[float]] = Expiring()
        self._current: Expiring[str, float] = Expiring()  # key -> its latest period_end, for usage()

    async def reserve(self, key: str, amount: float, limit: float, period_end: float) -> BudgetDecision:
        """Hold ``amount`` if spent + reserved + amount stays within ``limit``."""
        now = self._clock()
        self._periods.sweep(now)
        self._current.sweep(now)
        entry = self._periods.get((key, period_end), now)
        spent, reserved = entry.value if entry is not None else (0.0, 0.0)
        if spent + reserved + amount > limit + EPSILON:
            return BudgetDecision(False, spent, reserved, limit, max(period_end - now, 0.0))
        if entry is None:
            entry = self._periods.put((key, period_end), [0.0, 0.0], period_end)
        entry.value[1] = reserved = reserved + amount
        latest = self._current.get(key, now)
        if latest is None or latest.value < period_end:
            self._current.put(key, period_end, period_end)
        return BudgetDecision(True, spent, reserved, limit, 0.0)

    async def settle(self, key: str, reserved: float, actual: float, period_end: float) -> None:
        """Release ``reserved`` and record ``actual``; nothing when the period is over."""
        entry = self._periods.get((key, period_end), self._clock())
        if entry is None:
            return
        held = entry.value[1] - reserved
        entry.value[1] = held if held > EPSILON else 0.0
        entry.value[0] += actual

    async def usage(self, key: str) -> tuple[float, float]:
        """(spent, reserved) for ``key`` in its current period."""
        now = self._clock()
        latest = self._current.get(key, now)
        entry = self._periods.get((key, latest.value), now) if latest is not None else None
        return (entry.value[0], entry.value[1]) if entry is not None else (0.0, 0.0)


# -- breakers -------------------------------------------------------------------------------------


def breaker_retention(until: float, cooldown: float, window: float) -> float:
    """When an open breaker nobody asks about is forgotten (it then starts closed)."""
    return until + max(cooldown, window, 600.0)


class _BreakerState:
    __slots__ = ("failures", "since", "state", "until")

    def __init__(self) -> None:
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.since = 0.0  # when the current failure window started
        self.until = 0.0  # open: end of the cooldown; half-open: end of the probe's lease

    def view(self) -> Breaker:
        return Breaker(self.state, self.failures, self.until)


_CLOSED = Breaker(CircuitState.CLOSED, 0, 0.0)


class MemoryBreakers(Breakers):
    """Breakers in a dict. A half-open probe holds a lease of one cooldown: a probe that never
    reports (its process died) does not keep the breaker half-open forever."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._breakers: Expiring[str, _BreakerState] = Expiring()

    async def get(self, name: str) -> Breaker:
        """The breaker's state (closed with no failures when never seen)."""
        entry = self._breakers.get(name, self._clock())
        return entry.value.view() if entry is not None else _CLOSED

    async def acquire(self, name: str, cooldown: float) -> bool:
        """True when closed, or for exactly one caller once the cooldown (or a probe's lease) is over."""
        now = self._clock()
        entry = self._breakers.get(name, now)
        if entry is None or entry.value.state is CircuitState.CLOSED:
            return True
        b = entry.value
        if now < b.until:
            return False
        b.state, b.until = CircuitState.HALF_OPEN, now + cooldown
        self._breakers.extend(name, entry, breaker_retention(b.until, cooldown, 0.0))
        return True

    async def record(self, name: str, ok: bool, *, failures: int, window: float, cooldown: float) -> Breaker:
        """A success closes; ``failures`` failures within ``window`` (or a failed probe) open."""
        now = self._clock()
        self._breakers.sweep(now)
        if ok:
            self._breakers.pop(name)
            return _CLOSED
        entry = self._breakers.get(name, now) or self._breakers.put(name, _BreakerState(), now)
        b = entry.value
        if b.state is CircuitState.HALF_OPEN:
            b.state, b.until = CircuitState.OPEN, now + cooldown
        elif b.state is CircuitState.CLOSED:
            if b.failures == 0 or now - b.since > window:
                b.failures, b.since = 1, now
            else:
                b.failures += 1
            if b.failures >= failures:
                b.state, b.until = CircuitState.OPEN, now + cooldown
        # open: a late failure of a call let through before it opened changes nothing
        keep = (
            b.since + window
            if b.state is CircuitState.CLOSED
            else breaker_retention(b.until, cooldown, window)
        )
        self._breakers.extend(name, entry, keep)
        return b.view()


# -- cache ----------------------------------------------------------------------------------------


class MemoryCache(Cache):
    """Bytes with a time to live, at most ``max_bytes`` in all (the oldest writes go first)."""

    def __init__(self, clock: Clock = time.time, *, max_bytes: int = 256 * 2**20) -> None:
        self._clock = clock
        self._entries: Expiring[str, bytes] = Expiring(on_drop=self._forget)
        self.max_bytes = max_bytes
        self._bytes = 0

    def _forget(self, value: bytes) -> None:
        self._bytes -= len(value)

    async def get(self, key: str) -> bytes | None:
        """The value, or None when missing or expired."""
        entry = self._entries.get(key, self._clock())
        return None if entry is None else entry.value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        now = self._clock()
        self._entries.pop(key)
        self._entries.sweep(now)
        self._entries.put(key, value, now + ttl)
        self._bytes += len(value)
        items = self._entries.items
        while self._bytes > self.max_bytes and len(items) > 1:
            self._entries.pop(next(iter(items)))  # the oldest write

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._entries.pop(key)


# -- vectors --------------------------------------------------------------------------------------

Vector = npt.NDArray[np.float32]


def unit_vector(data: bytes) -> Vector:
    """float32 bytes as a unit vector (normalised again, so cosine is a dot product)."""
    v = np.frombuffer(data, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v.copy()


class VectorTable:
    """Rows of unit vectors with their keys and deadlines, oldest first; ``nearest`` is one matrix product.

    Rows are appended into spare capacity; when it runs out, the live rows (unexpired and among
    the newest ``keep``) are copied into fresh arrays with room to grow. Copying is amortised,
    memory stays within twice ``keep`` rows, and arrays a reader holds are never written below
    its row count (so a scan may run in a thread while rows are appended).
    """

    def __init__(self) -> None:
        self.dim = 0
        self.keep = 0  # only the newest ``keep`` rows count
        self.n = 0  # rows in use
        self._vecs: Vector = np.empty((0, 0), dtype=np.float32)
        self._expires: npt.NDArray[np.float64] = np.empty(0)
        self._keys: list[str] = []

    def append(self, key: str, vector: Vector, expires: float, keep: int, now: float) -> None:
        """Add a row; only the newest ``keep`` rows count from now on."""
        self.keep = keep
        if vector.shape[0] != self.dim:
            # Another embedding model: the old rows cannot be compared with the new ones.
            self.dim, self.n, self._keys = vector.shape[0], 0, []
            self._vecs, self._expires = np.empty((0, self.dim), dtype=np.float32), np.empty(0)
        if self.n >= len(self._expires):
            self._compact(now)
        self._vecs[self.n] = vector
        self._expires[self.n] = expires
        self._keys.append(key)
        self.n += 1

    def _compact(self, now: float) -> None:
        lo = max(self.n - self.keep, 0)
        live = np.nonzero(self._expires[lo : self.n] > now)[0] + lo
        capacity = max(16, 2 * len(live))
        vecs = np.empty((capacity, self.dim), dtype=np.float32)
        expires = np.zeros(capacity)
        vecs[: len(live)] = self._vecs[live]
        expires[: len(live)] = self._expires[live]
        self._keys = [self._keys[i] for i in live.tolist()]
        self._vecs, self._expires, self.n = vecs, expires, len(live)

    async def nearest(self, query: Vector, now: float) -> Match | None:
        """The best live row by cosine similarity (scanned in a thread when the table is large)."""
        if self.n == 0 or query.shape[0] != self.dim:
            return None
        lo = max(self.n - self.keep, 0)
        snap = (self._vecs, self._expires, self._keys, lo, self.n)
        if (self.n - lo) * self.dim > _INLINE_CELLS:
            return await asyncio.to_thread(_scan, snap, query, now)
        return _scan(snap, query, now)


def _scan(
    snap: tuple[Vector, npt.NDArray[np.float64], list[str], int, int], query: Vector, now: float
) -> Match | None:
    vecs, expires, keys, lo, hi = snap
    if hi <= lo:
        return None
    scores = vecs[lo:hi] @ query
    scores[expires[lo:hi] <= now] = -np.inf
    i = int(np.argmax(scores))
    best = float(scores[i])
    return None if best == -math.inf else Match(best, keys[lo + i])


class MemoryVectors(Vectors):
    """A VectorTable per scope; a scope is forgotten when its last entry expires."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._scopes: Expiring[str, VectorTable] = Expiring()

    async def add(self, scope: str, key: str, vector: bytes, ttl: float, max_entries: int) -> None:
        """Remember ``vector`` under ``key`` in ``scope``, keeping at most ``max_entries``."""
        now = self._clock()
        self._scopes.sweep(now)
        entry = self._scopes.get(scope, now) or self._scopes.put(scope, VectorTable(), now + ttl)
        entry.value.append(key, unit_vector(vector), now + ttl, max_entries, now)
        if now + ttl > entry.expires:
            self._scopes.extend(scope, entry, now + ttl)

    async def nearest(self, scope: str, vector: bytes) -> Match | None:
        """The most similar live entry in ``scope``, or None."""
        now = self._clock()
        entry = self._scopes.get(scope, now)
        return None if entry is None else await entry.value.nearest(unit_vector(vector), now)


# -- the backend ----------------------------------------------------------------------------------


class MemoryState(StateBackend):
    """All shared state in this process: the default (``state: memory``), and the fake for tests."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.counters = MemoryCounters(clock)
        self.budgets = MemoryBudgets(clock)
        self.breakers = MemoryBreakers(clock)
        self.cache = MemoryCache(clock)
        self.vectors = MemoryVectors(clock)

    async def aclose(self) -> None:
        """Nothing to release."""
