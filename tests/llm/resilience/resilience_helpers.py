"""Helpers of the reliability wrappers' tests: requests, errors, a clock, providers that hang or fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import orjson

from keel.call import Completion
from keel.errors import KeelError, UpstreamStatusError
from keel.llm.providers.base import Chunk, ModelRequest, Provider
from keel.stores.memory import MemoryBreakers
from keel.testing.scripted import ScriptedProvider

T = TypeVar("T")
HELLO = [{"role": "user", "content": "Where is my parcel?"}]


def run(coro: Awaitable[T]) -> T:
    """Run ``coro`` on a fresh event loop."""

    async def go() -> T:
        return await coro

    return asyncio.run(go())


def req(timeout: float | None = None) -> ModelRequest:
    """A request saying hello, with ``timeout`` seconds left."""
    return ModelRequest(messages=list(HELLO), timeout=timeout)


def status(
    code: int, *, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> UpstreamStatusError:
    """An upstream's HTTP error, as the OpenAI provider raises it."""
    raw = orjson.dumps(body or {"error": {"message": f"failed with {code}", "type": "server_error"}}).decode()
    return UpstreamStatusError(f"upstream answered {code}", upstream_status=code, body=raw, headers=headers)


async def collect(stream: AsyncIterator[Chunk], into: list[Chunk] | None = None) -> list[Chunk]:
    """Every chunk of a stream (appended to ``into`` as they come, for errors raised midway)."""
    out = [] if into is None else into
    async for chunk in stream:
        out.append(chunk)
    return out


def text(chunks: list[Chunk]) -> str:
    """The streamed content, joined."""
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time on."""
        self.now += seconds


def breakers(clock: Clock) -> MemoryBreakers:
    """The in-process breaker store on ``clock``."""
    return MemoryBreakers(clock)


class Hanging(ScriptedProvider):
    """Never answers until ``release`` is set (ignores the request's deadline); counts calls."""

    kind: ClassVar[str] = "hanging"

    def __init__(self, name: str = "hanging", reply: str = "late") -> None:
        super().__init__(name, [reply])
        self.release = asyncio.Event()
        self.entered = asyncio.Event()  # set once a call is waiting
        self.started = 0

    async def complete(self, request: ModelRequest) -> Completion:
        self.started += 1
        self.entered.set()
        await self.release.wait()
        return await super().complete(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        self.started += 1
        self.entered.set()
        await self.release.wait()
        async for chunk in super().stream(request):
            yield chunk


class BreaksMidway(ScriptedProvider):
    """Streams the first ``after`` chunks of its reply, then fails with ``error``."""

    kind: ClassVar[str] = "breaks-midway"

    def __init__(
        self, name: str, error: KeelError, *, after: int = 2, reply: str = "one two three four"
    ) -> None:
        super().__init__(name, [reply])
        self.error = error
        self.after = after

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        n = 0
        async for chunk in super().stream(request):
            if n == self.after:
                raise self.error
            n += 1
            yield chunk


class Slow(ScriptedProvider):
    """Answers after ``delay`` seconds."""

    kind: ClassVar[str] = "slow"

    def __init__(self, name: str, delay: float, script: Any = ("ok",)) -> None:
        super().__init__(name, script)
        self.delay = delay

    async def complete(self, request: ModelRequest) -> Completion:
        await asyncio.sleep(self.delay)
        return await super().complete(request)


def names(provider: Provider) -> str:
    """The class names of a wrapper stack, outermost first (``Retrying>Breaker>Scripted``)."""
    parts = [type(provider).__name__.removesuffix("Provider")]
    inners = getattr(provider, "inners", None)
    if inners:
        inner = [names(p) for p in inners]
        parts.append(inner[0] if len(inner) == 1 else "[" + ", ".join(inner) + "]")
    return ">".join(parts)


Sleeper = Callable[[float], Awaitable[None]]


def recording_sleep(delays: list[float]) -> Sleeper:
    """A sleep that only records how long it was asked to wait."""

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return sleep
