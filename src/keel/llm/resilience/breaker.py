"""A circuit breaker around one deployment: fail fast while it keeps failing, probe it after a cooldown.

    closed ──(``failures`` failures within ``window`` s)──▶ open ──(``cooldown`` s)──▶ half-open
       ▲                                                     ▲                         │
       └──────────────── the probe answered ─────────────────┴── the probe failed ──────┘

The state lives in a ``Breakers`` store (in process, or Redis so that every gateway replica
sees the same breaker). What counts as a failure: timeouts, connection errors, 5xx, 429 and
malformed answers; the caller's own 4xx do not (the deployment answered). A stream counts as
answered once its first chunk arrived.

What is written to the store: every failure while closed, and the probe's outcome. Successes
while closed are not (they would reset the count, making "N failures in a window" "N in a
row", and they would cost a store round trip per call), nor are the late outcomes of calls let
through before the breaker opened (the probe decides). A success is written, though, when this
process has not heard from the store for a cooldown: the breaker may have opened (another
replica's failures) and this call may have been its probe without knowing it. When the store
cannot be reached the breaker lets calls through: losing shared state must not stop the answers.

This wrapper is also the attempt boundary: it counts each upstream call on the request's trace
and cuts off a call that outlives its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from keel.call import Completion
from keel.errors import CircuitOpen, KeelError
from keel.llm.providers.base import Chunk, ModelRequest, Provider, Trace
from keel.llm.resilience.classify import counts_against_breaker
from keel.llm.resilience.deadline import backstop, deadline_passed
from keel.llm.resilience.wrapper import Mark, Wrapper, close, first_chunk, mark, note_failure, note_success
from keel.settings import BreakerConfig
from keel.stores.base import Breaker, Breakers, CircuitState

log = logging.getLogger("keel.resilience")
T = TypeVar("T")

_RECHECK = 1.0  # seconds a refused deployment is skipped before the store is asked again


class BreakerProvider(Wrapper):
    """One deployment (``key``) of a model behind a circuit breaker kept in ``store``."""

    def __init__(
        self,
        inner: Provider,
        key: str,
        store: Breakers,
        config: BreakerConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(inner.name, [inner])
        self.inner = inner
        self.key = key
        self.store = store
        self.config = config
        self.in_flight = 0
        self.opened = 0  # times this process saw the breaker open
        self._clock = clock  # epoch seconds, as the store keeps them
        self._state = CircuitState.CLOSED  # as last seen
        self._skip_until = 0.0  # known open (or probed by another call) until then: fail fast, no I/O
        self._heard = float("-inf")  # when the store last told this process the breaker's state
        self._store_down = False

    def available(self) -> bool:
        """False while the breaker is known to be open: calls would fail fast."""
        return self._clock() >= self._skip_until

    async def complete(self, request: ModelRequest) -> Completion:
        """Call the deployment if the breaker lets the call through, and record how it went."""
        probe = await self._acquire()
        trace, before = request.trace, mark(request.trace)
        self.in_flight += 1
        try:
            try:
                async with asyncio.timeout(backstop(request)):
                    completion = await self.inner.complete(request)
            except TimeoutError as exc:
                raise deadline_passed(self.name, request) from exc
        except KeelError as exc:
            await self._failed(exc, probe, trace, before)
            raise
        finally:
            self.in_flight -= 1
        await self._record(True, probe)
        note_success(trace, self.name, before)
        return completion

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """Stream from the deployment; the call counts as answered once the first chunk arrived."""
        probe = await self._acquire()
        trace, before = request.trace, mark(request.trace)
        self.in_flight += 1
        try:
            chunks = self.inner.stream(request)
            try:
                try:
                    async with asyncio.timeout(backstop(request)):
                        first = await first_chunk(chunks)
                except TimeoutError as exc:
                    raise deadline_passed(self.name, request) from exc
            except KeelError as exc:
                await self._failed(exc, probe, trace, before)
                raise
            await self._record(True, probe)
            note_success(trace, self.name, before)
            try:
                if first is not None:
                    yield first
                    async for chunk in chunks:
                        yield chunk
            finally:
                await close(chunks)
        finally:
            self.in_flight -= 1

    async def health(self) -> dict[str, Any]:
        """The breaker's stored state, and the calls in flight from this process."""
        b = await self._ask(self.store.get(self.key))
        if b is None:
            state, failures, open_for = "unknown", None, 0.0
        else:
            self._seen(b)
            state, failures = str(b.state), b.failures
            open_for = max(b.opened_until - self._clock(), 0.0) if b.state is not CircuitState.CLOSED else 0.0
        return {
            "deployments": [
                {
                    "name": self.key,
                    "model": self.name,
                    "state": state,
                    "failures": failures,
                    "open_for_s": round(open_for, 3),
                    "opened": self.opened,
                    "in_flight": self.in_flight,
                }
            ]
        }

    # -- the store ---------------------------------------------------------------------------

    async def _acquire(self) -> bool:
        """Let the call through or raise CircuitOpen; True when it is (most likely) the half-open probe."""
        if self._clock() < self._skip_until:
            raise self._refused()
        allowed = await self._ask(self.store.acquire(self.key, self.config.cooldown))
        if allowed is False:
            # Open, or half-open with another call probing: skip it for a while without asking.
            now = self._clock()
            self._heard, self._skip_until = now, now + min(self.config.cooldown, _RECHECK)
            if self._state is CircuitState.CLOSED:
                self._opened(None)
            self._state = CircuitState.OPEN
            raise self._refused()
        if self._state is CircuitState.CLOSED:
            return False
        self._state = CircuitState.HALF_OPEN  # let through while known open: the cooldown is over
        return True

    async def _failed(self, exc: KeelError, probe: bool, trace: Trace, before: Mark) -> None:
        await self._record(not counts_against_breaker(exc), probe)  # a caller's 4xx: the deployment answered
        note_failure(trace, self.name, before, exc)

    async def _record(self, ok: bool, probe: bool) -> None:
        # See the module's docstring: what is written to the store.
        if not probe:
            if self._state is not CircuitState.CLOSED:
                return
            if ok and self._clock() - self._heard < self.config.cooldown:
                return
        c = self.config
        b = await self._ask(
            self.store.record(self.key, ok, failures=c.failures, window=c.window, cooldown=c.cooldown)
        )
        if b is not None:
            self._seen(b)

    def _seen(self, b: Breaker) -> None:
        self._heard = self._clock()
        was = self._state
        self._state = b.state
        if b.state is CircuitState.OPEN:
            self._skip_until = b.opened_until
            if was is not CircuitState.OPEN:
                self._opened(b)
        else:
            self._skip_until = 0.0
            if was is not CircuitState.CLOSED and b.state is CircuitState.CLOSED:
                log.info("event=circuit_closed deployment=%s model=%s", self.key, self.name)

    def _opened(self, b: Breaker | None) -> None:
        self.opened += 1
        log.warning(
            "event=circuit_opened deployment=%s model=%s failures=%s cooldown=%g",
            self.key,
            self.name,
            b.failures if b is not None else "?",  # None: opened by another replica
            self.config.cooldown,
        )

    async def _ask(self, op: Awaitable[T]) -> T | None:
        """A store operation's answer, or None when the store cannot be reached (then calls pass)."""
        try:
            answer = await op
        except KeelError as exc:  # the store translates its connection failures into KeelError
            if not self._store_down:
                log.warning("event=breaker_store_unavailable deployment=%s error=%r", self.key, str(exc))
            self._store_down = True
            return None
        if self._store_down:
            log.info("event=breaker_store_available deployment=%s", self.key)
            self._store_down = False
        return answer

    def _refused(self) -> CircuitOpen:
        return CircuitOpen(
            f"model {self.name!r}: deployment {self.key!r} failed repeatedly; its circuit is open "
            f"(it is tried again after {self.config.cooldown:g} s)"
        )
