"""What the exact and the semantic cache share: look up, serve a hit, or ask the model and keep its answer.

A cache is a ``Provider`` around the feature's model chain. On a hit it answers from the store,
in one piece or replayed as a stream, and notes the hit on the request's ``Trace`` (the pipeline
prices the saving). On a miss it asks the model and stores the answer once it is whole: a
stream is kept only if it ran to its end, and errors are never kept. The cache is never why a
call fails: when the store cannot be reached, lookups miss and answers are not kept.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable
from typing import Generic, TypeVar

from keel.call import Completion
from keel.errors import KeelError
from keel.llm.cache.entry import Entry, replay, serve, storable
from keel.llm.providers.base import Chunk, ModelRequest, Provider
from keel.llm.resilience.wrapper import Wrapper, close
from keel.llm.stream import StreamAccumulator

log = logging.getLogger("keel.cache")

T = TypeVar("T")
Slot = TypeVar("Slot")
"""Where a miss's answer will be stored (each cache knows what it needs)."""


class AnswerCache(Wrapper, Generic[Slot]):
    """A provider that answers from a store when it can, and fills the store when it cannot."""

    how: str = "cache"  # what a hit writes on ``Trace.cache``

    def __init__(self, inner: Provider, *, name: str | None = None) -> None:
        super().__init__(name or inner.name, [inner])
        self.inner = inner
        self.hits = 0
        self.misses = 0
        self._store_down = False

    @abstractmethod
    async def lookup(self, request: ModelRequest) -> tuple[Entry | None, Slot | None]:
        """The stored answer for ``request`` (or None), and where to keep a new one (None: do not)."""

    @abstractmethod
    async def keep(self, slot: Slot, completion: Completion, request: ModelRequest) -> None:
        """Store ``completion`` as the answer for ``slot``."""

    async def complete(self, request: ModelRequest) -> Completion:
        """The stored answer, or the model's (then stored)."""
        entry, slot = await self.lookup(request)
        if entry is not None:
            self.hits += 1
            return serve(entry, request, self.how)
        if slot is not None:
            self.misses += 1
        completion = await self.inner.complete(request)
        if slot is not None and storable(completion) and not request.trace.coalesced:
            # A coalesced answer was kept by the request that made it.
            await self._keep(slot, completion, request)
        return completion

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """The stored answer replayed as chunks, or the model's stream (stored once it has ended)."""
        entry, slot = await self.lookup(request)
        if entry is not None:
            self.hits += 1
            for chunk in replay(serve(entry, request, self.how)):
                yield chunk
            return
        chunks = self.inner.stream(request)
        if slot is None:
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await close(chunks)
            return
        self.misses += 1
        acc = StreamAccumulator()
        try:
            async for chunk in chunks:
                acc.add(chunk)
                yield chunk
        finally:
            await close(chunks)
        completion = acc.completion()  # reached only when the stream ran to its end
        if storable(completion):
            await self._keep(slot, completion, request)

    async def _keep(self, slot: Slot, completion: Completion, request: ModelRequest) -> None:
        await self.ask(self.keep(slot, completion, request))

    async def ask(self, op: Awaitable[T]) -> T | None:
        """A store operation's result, or None when the store cannot be reached (logged once)."""
        try:
            result = await op
        except KeelError as exc:  # stores translate their connection failures into KeelError
            if not self._store_down:
                log.warning(
                    "event=cache_store_unavailable cache=%s model=%s error=%r", self.how, self.name, str(exc)
                )
            self._store_down = True
            return None
        if self._store_down:
            log.info("event=cache_store_available cache=%s model=%s", self.how, self.name)
            self._store_down = False
        return result
