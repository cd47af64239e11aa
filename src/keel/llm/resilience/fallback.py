"""A feature's fallback chain: the primary model, then each fallback in order, within one deadline.

The next model is tried only on failures another model may not have (``should_fall_back``):
retryable upstream failures (the primary already spent its retries on them), an open circuit,
a prompt too long for the model's context window and a content filter's refusal. Any other
4xx is the caller's mistake and is raised at once. When every model failed, the last error is
raised, carrying the number of upstream calls made. A stream falls back only until its first
chunk: after that the caller has part of an answer, and an error ends the stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from keel.call import Completion
from keel.errors import KeelError, UpstreamTimeout
from keel.llm.providers.base import Chunk, ModelRequest, Provider
from keel.llm.resilience.classify import should_fall_back
from keel.llm.resilience.deadline import Deadline
from keel.llm.resilience.wrapper import (
    Mark,
    Wrapper,
    close,
    first_chunk,
    give_up,
    mark,
    note_failure,
    note_success,
)


class FallbackProvider(Wrapper):
    """``chain[0]``, and the next provider whenever one fails in a way that ``fallback_on`` accepts."""

    def __init__(
        self, chain: Sequence[Provider], *, fallback_on: Callable[[KeelError], bool] = should_fall_back
    ) -> None:
        if not chain:
            raise ValueError("a fallback chain needs at least one model")
        super().__init__(chain[0].name, chain)
        self.fallback_on = fallback_on

    async def complete(self, request: ModelRequest) -> Completion:
        """The first answer along the chain."""
        deadline, trace = Deadline(request.timeout), request.trace
        start = mark(trace)
        last: KeelError | None = None
        for i, provider in enumerate(self.inners):
            attempt = request if i == 0 else self._next(request, deadline, provider, last, start)
            before = mark(trace)
            try:
                completion = await provider.complete(attempt)
            except KeelError as exc:
                note_failure(trace, provider.name, before, exc)
                if not self.fallback_on(exc):
                    give_up(exc, trace, start)
                    raise
                last = exc
                continue
            note_success(trace, provider.name, before)
            return completion
        raise give_up(_last(last, self.name), trace, start)

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """The first stream along the chain that delivered a chunk; errors after it end the stream."""
        deadline, trace = Deadline(request.timeout), request.trace
        start = mark(trace)
        last: KeelError | None = None
        for i, provider in enumerate(self.inners):
            attempt = request if i == 0 else self._next(request, deadline, provider, last, start)
            before = mark(trace)
            chunks = provider.stream(attempt)
            try:
                first = await first_chunk(chunks)
            except KeelError as exc:
                note_failure(trace, provider.name, before, exc)
                if not self.fallback_on(exc):
                    give_up(exc, trace, start)
                    raise
                last = exc
                continue
            note_success(trace, provider.name, before)
            try:
                if first is not None:
                    yield first
                    async for chunk in chunks:
                        yield chunk
            finally:
                await close(chunks)
            return
        raise give_up(_last(last, self.name), trace, start)

    async def health(self) -> dict[str, Any]:
        """The chain's model names, and every deployment underneath."""
        return {"chain": [p.name for p in self.inners], **(await super().health())}

    @staticmethod
    def _next(
        request: ModelRequest, deadline: Deadline, provider: Provider, last: KeelError | None, start: Mark
    ) -> ModelRequest:
        """The request for the next model, with the time left; the last error when none is."""
        left = deadline.left()
        if left is not None and left <= 0 and last is not None:
            raise give_up(last, request.trace, start)
        return deadline.narrow(request, provider.name)


def _last(last: KeelError | None, name: str) -> KeelError:
    return last if last is not None else UpstreamTimeout(f"model {name!r}: no model of the chain was tried")
