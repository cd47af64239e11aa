"""Single flight: identical requests in flight at the same time make one upstream call.

When a deterministic request (temperature 0 or a seed) arrives while an identical one (the
same exact-cache key) is still being answered in this process, it waits for that answer
instead of asking again. The upstream call runs in a task of its own, so the callers that
wait on it are independent: one that is cancelled (even the first) leaves the others their
answer; only when every caller has gone is the upstream call cancelled. Each caller gets its
own copy of the answer, or of the error. Streams are never shared.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson

from keel.call import Completion
from keel.errors import KeelError, UpstreamTimeout
from keel.llm.cache.keys import exact_key, is_deterministic
from keel.llm.providers.base import Chunk, ModelRequest, Provider, Trace
from keel.llm.resilience.wrapper import Wrapper


class _Flight:
    """One upstream call and the callers waiting for it."""

    __slots__ = ("answer", "task", "trace", "waiters")

    def __init__(self, task: asyncio.Task[Completion], trace: Trace) -> None:
        self.task = task
        self.trace = trace  # the first caller's: the wrappers inside note who answered there
        self.waiters = 0
        self.answer: Completion | None = None  # a pristine copy for the others, once landed


class CoalescingProvider(Wrapper):
    """Shares one upstream call among identical deterministic requests in flight (per process)."""

    def __init__(self, inner: Provider, *, name: str | None = None) -> None:
        super().__init__(name or inner.name, [inner])
        self.inner = inner
        self.coalesced = 0  # requests answered by another request's upstream call
        self._flights: dict[str, _Flight] = {}

    @property
    def in_flight(self) -> int:
        """Distinct upstream calls in flight now."""
        return len(self._flights)

    async def complete(self, request: ModelRequest) -> Completion:
        """The answer of the identical request already in flight, or of a new upstream call."""
        key = exact_key(request, self.name) if is_deterministic(request.params) else None
        if key is None:
            return await self.inner.complete(request)
        loop = asyncio.get_running_loop()
        flight = self._flights.get(key)
        lead = flight is None or flight.task.done() or flight.task.get_loop() is not loop
        if lead:
            flight = _Flight(loop.create_task(self.inner.complete(request)), request.trace)
            flight.task.add_done_callback(functools.partial(self._landed, key, flight))
            self._flights[key] = flight
        assert flight is not None
        flight.waiters += 1
        try:
            if lead:
                return await asyncio.shield(flight.task)
            return await self._follow(flight, request)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.task.cancel()  # every caller has gone: nobody wants the answer
                self._drop(key, flight)

    async def _follow(self, flight: _Flight, request: ModelRequest) -> Completion:
        trace = request.trace
        trace.coalesced = True
        try:
            async with asyncio.timeout(request.timeout):
                await asyncio.shield(flight.task)
        except TimeoutError:
            raise UpstreamTimeout(
                f"model {self.name!r}: no answer in time (waiting for an identical request in flight)"
            ) from None
        except KeelError as exc:
            clone = _again(exc)
            if clone is exc:
                raise
            raise clone from exc
        finally:
            _note(trace, flight.trace)
        self.coalesced += 1
        # No pristine copy: this was the only caller left when the answer landed, so it is untouched.
        return _copy(flight.answer if flight.answer is not None else flight.task.result())

    def _landed(self, key: str, flight: _Flight, task: asyncio.Task[Completion]) -> None:
        # Runs before any waiting caller resumes: the copy is taken before anyone can change the answer.
        self._drop(key, flight)
        if task.cancelled():
            return
        if task.exception() is None and flight.waiters > 1:
            flight.answer = _copy(task.result())

    def _drop(self, key: str, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """The wrapped stream: a stream is never shared."""
        return self.inner.stream(request)


def _note(trace: Trace, leader: Trace) -> None:
    trace.model = leader.model
    trace.route = leader.route
    trace.baseline = leader.baseline


def _copy(c: Completion) -> Completion:
    """A deep copy of an answer (its parts are JSON, so a JSON round trip is the quick way)."""
    parts: Any = orjson.loads(orjson.dumps([c.choices, c.extra]))
    usage = replace(c.usage) if c.usage is not None else None
    return Completion(parts[0], c.model, usage, c.id, c.created, parts[1])


def _again(exc: KeelError) -> KeelError:
    """A copy of ``exc`` for another caller (the same one when it cannot be copied)."""
    try:
        return copy.copy(exc)
    except TypeError:  # a constructor with required keyword arguments
        return exc
