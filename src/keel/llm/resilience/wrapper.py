"""What every reliability wrapper shares: it is a ``Provider`` around other providers.

A wrapper takes the configured model name of what it wraps, passes token counting and the
start/close hooks through, reports its ``health()``, and writes what it saw on the request's
``Trace``: the model that answered, the upstream calls made and the failures.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from keel.call import Message
from keel.errors import CircuitOpen, KeelError, UpstreamError
from keel.llm.providers.base import Chunk, Provider, Trace
from keel.llm.resilience.classify import failure_label


class Wrapper(Provider):
    """A provider that adds one reliability concern around ``inners`` (the first one speaks for them)."""

    def __init__(self, name: str, inners: Sequence[Provider]) -> None:
        if not inners:
            raise ValueError("a wrapper needs at least one provider to wrap")
        super().__init__(name)
        self.inners = list(inners)

    def available(self) -> bool:
        """False when calling now would surely fail fast (every circuit known to be open)."""
        return any(available(p) for p in self.inners)

    async def health(self) -> dict[str, Any]:
        """Breaker state, in-flight calls and latency of every deployment underneath."""
        deployments: list[dict[str, Any]] = []
        for p in self.inners:
            if isinstance(p, Wrapper):
                deployments += (await p.health()).get("deployments", [])
        return {"deployments": deployments}

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs on the wrapped model."""
        return self.inners[0].count_tokens(text)

    def count_messages(self, messages: list[Message]) -> int:
        """Prompt tokens these messages cost on the wrapped model."""
        return self.inners[0].count_messages(messages)

    async def start(self) -> None:
        """Start every wrapped provider."""
        for p in self.inners:
            await p.start()

    async def aclose(self) -> None:
        """Close every wrapped provider."""
        for p in self.inners:
            await p.aclose()


def available(provider: Provider) -> bool:
    """Whether ``provider`` may be worth calling now (a bare provider always is)."""
    return provider.available() if isinstance(provider, Wrapper) else True


async def health(provider: Provider) -> dict[str, Any]:
    """The health of a built model: its deployments and a ``status``: ok, degraded (some circuits
    open), down (all open) or unknown (the breaker store cannot be reached; calls go through)."""
    if not isinstance(provider, Wrapper):
        return {"status": "ok", "deployments": []}
    report = await provider.health()
    states = [d.get("state") for d in report.get("deployments", [])]
    open_ = sum(1 for s in states if s in ("open", "half_open"))
    if open_:
        status = "down" if open_ == len(states) else "degraded"
    else:
        status = "unknown" if "unknown" in states else "ok"
    return {"status": status, **report}


# -- the trace -------------------------------------------------------------------------------------
#
# Every layer notes what it saw unless a layer inside it already did: the innermost wrapper around
# a leaf counts each upstream call once, and a stack built without breakers still gets counted.

Mark = tuple[int, int]
"""(attempts, failures) on a trace before a layer called inside: what it must not count twice."""


def mark(trace: Trace) -> Mark:
    """Where the trace stands now."""
    return trace.attempts, len(trace.failures)


def note_failure(trace: Trace, name: str, before: Mark, exc: KeelError) -> None:
    """Record a failed call to ``name`` unless a layer inside already did."""
    if len(trace.failures) == before[1]:
        trace.failures.append(f"{name}: {failure_label(exc)}")
    if trace.attempts == before[0] and not isinstance(exc, CircuitOpen):  # refused: nothing was sent
        trace.attempts += 1


def note_success(trace: Trace, name: str, before: Mark) -> None:
    """Record that ``name`` answered (deployments of one model share its name)."""
    if trace.attempts == before[0]:
        trace.attempts += 1
    if trace.model is None:
        trace.model = name


def give_up(exc: KeelError, trace: Trace, before: Mark) -> KeelError:
    """``exc`` carrying every upstream call made since ``before``; raise it."""
    if isinstance(exc, UpstreamError):
        exc.attempts = max(exc.attempts, trace.attempts - before[0])
    return exc


# -- streams ---------------------------------------------------------------------------------------


async def first_chunk(chunks: AsyncIterator[Chunk]) -> Chunk | None:
    """The stream's first chunk (None when it is empty); the stream is closed if that fails."""
    try:
        return await anext(chunks, None)
    except BaseException:
        await close(chunks)
        raise


async def close(chunks: AsyncIterator[Chunk]) -> None:
    """Close a stream left early (its connection goes back or is dropped now, not at GC)."""
    if isinstance(chunks, AsyncGenerator):
        await chunks.aclose()
