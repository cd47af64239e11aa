"""Retries of one model: exponential backoff with full jitter, on failures that may pass.

The n-th retry waits ``uniform(0, min(max_backoff, backoff * 2**n))`` seconds (AWS's "full
jitter": clients that failed together do not come back together), or as long as the upstream
asked with ``Retry-After``. Only retryable failures are retried (timeouts, connection errors,
429, 5xx, malformed answers), never a 4xx that would fail again nor an open circuit. No wait
and no attempt runs past the call's deadline: when the next one would not fit, the last error
is raised at once, so a fallback model still has the time that is left. A stream is retried
only until its first chunk arrived.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import parsedate_to_datetime

from keel.call import Completion
from keel.errors import KeelError, UpstreamError
from keel.llm.providers.base import Chunk, ModelRequest, Provider
from keel.llm.resilience.classify import is_retryable
from keel.llm.resilience.deadline import Deadline
from keel.llm.resilience.wrapper import Wrapper, close, first_chunk, give_up, mark, note_failure, note_success
from keel.settings import RetryConfig


class RetryingProvider(Wrapper):
    """``inner`` tried up to ``config.attempts`` times in all."""

    def __init__(
        self,
        inner: Provider,
        config: RetryConfig,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        super().__init__(inner.name, [inner])
        self.inner = inner
        self.config = config
        self._rng = rng or random.Random()
        self._sleep = sleep

    async def complete(self, request: ModelRequest) -> Completion:
        """The inner provider's answer, retried on retryable failures."""
        deadline = Deadline(request.timeout)
        trace, start = request.trace, mark(request.trace)
        attempt, n = request, 0
        while True:
            before = mark(trace)
            try:
                completion = await self.inner.complete(attempt)
            except KeelError as exc:
                note_failure(trace, self.name, before, exc)
                attempt = await self._again(exc, n, request, deadline, start)
                n += 1
                continue
            note_success(trace, self.name, before)
            return completion

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """The inner provider's stream, retried on retryable failures before its first chunk."""
        deadline = Deadline(request.timeout)
        trace, start = request.trace, mark(request.trace)
        attempt, n = request, 0
        while True:
            before = mark(trace)
            chunks = self.inner.stream(attempt)
            try:
                first = await first_chunk(chunks)
            except KeelError as exc:
                note_failure(trace, self.name, before, exc)
                attempt = await self._again(exc, n, request, deadline, start)
                n += 1
                continue
            note_success(trace, self.name, before)
            break
        try:
            if first is not None:
                yield first
                async for chunk in chunks:
                    yield chunk
        finally:
            await close(chunks)

    async def _again(
        self, exc: KeelError, n: int, request: ModelRequest, deadline: Deadline, start: tuple[int, int]
    ) -> ModelRequest:
        """Wait before attempt ``n + 1`` and return its request; raise ``exc`` when there is none."""
        if not is_retryable(exc) or n + 1 >= self.config.attempts:
            raise give_up(exc, request.trace, start)
        delay = self.delay(n, exc)
        if delay is None or not deadline.fits(delay):
            raise give_up(exc, request.trace, start)
        if delay > 0:
            await self._sleep(delay)
        return deadline.narrow(request, self.name)

    def delay(self, n: int, exc: KeelError) -> float | None:
        """Seconds to wait before retry ``n`` (0-based); None when the upstream asked for longer than
        ``max_backoff`` (waiting that long is the fallback model's job, not a retry's)."""
        c = self.config
        wait = self._rng.uniform(0.0, min(c.max_backoff, c.backoff * 2**n))
        asked = retry_after(exc) if isinstance(exc, UpstreamError) else None
        if asked is None:
            return wait
        if asked > c.max_backoff:
            return None
        return max(wait, asked)


def retry_after(exc: UpstreamError) -> float | None:
    """Seconds the upstream asked to wait (``Retry-After-Ms``, or ``Retry-After`` in seconds or as an
    HTTP date), or None."""
    headers = exc.headers
    if not headers:
        return None
    if any(k != k.lower() for k in headers):
        headers = {k.lower(): v for k, v in headers.items()}
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        n = float(value)
    except ValueError:
        return None
    return n if 0 <= n < float("inf") else None
