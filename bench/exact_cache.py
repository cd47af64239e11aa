"""keel's own time for an exact-cache hit, side by side with an upstream call it saves.

    .venv/bin/python bench/exact_cache.py [--hits 20000] [--misses 2000] [--redis redis://127.0.0.1:6379/0]

A hit goes through ``ExactCacheProvider`` (key: normalise and hash the request; look up; decode;
note the hit on the trace) with the in-process store, and with Redis when ``--redis`` is given
and reachable. Each call gets a fresh request of a realistic size (a system prompt, a few turns
of history, a question: about 1.5 KB). The reference is the same request answered by keel's
OpenAI provider from ``FakeUpstream`` over loopback HTTP with no added latency: the cheapest
upstream call there is, and a floor for what a hit saves. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Awaitable, Callable

from keel.llm.cache import ExactCacheProvider
from keel.llm.providers.base import ModelRequest, Provider
from keel.llm.providers.openai import OpenAIOptions, OpenAIProvider
from keel.settings import ExactCacheConfig
from keel.stores import open_state
from keel.stores.base import Cache
from keel.stores.memory import MemoryCache
from keel.testing import FakeUpstream
from keel.testing.scripted import ScriptedProvider

SYSTEM = (
    "You are the support assistant of an online shop. Answer in two or three sentences, politely, "
    "using only the order data and policies given. If you do not know, say so and offer a human. "
) * 3
HISTORY = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Hi, I ordered a desk lamp last Tuesday, order 88213."},
    {"role": "assistant", "content": "Thanks! I can see order 88213: one desk lamp, shipped on Thursday."},
]
QUESTION = {"role": "user", "content": "When will it arrive, and can I still change the delivery address?"}
ANSWER = "It should arrive on Monday. You can change the address until it is out for delivery. " * 3


def request() -> ModelRequest:
    """A fresh request, as the pipeline makes one per call."""
    return ModelRequest(
        messages=[*HISTORY, QUESTION],
        params={"temperature": 0, "max_tokens": 200},
        feature="support",
        prompt_version="v3",
        timeout=30.0,
    )


async def timed(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    """Microseconds per call, ``n`` calls one after another."""
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        await call()
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def summary(name: str, us: list[float], reference: float | None) -> str:
    """One table row: median, p99, mean, and the median as a share of the reference."""
    p50 = statistics.median(us)
    p99 = statistics.quantiles(us, n=100)[98]
    ratio = f"{p50 / reference:.3f}" if reference else "1"
    return f"| {name} | {len(us)} | {p50:.1f} | {p99:.1f} | {statistics.fmean(us):.1f} | {ratio} |"


async def hits(cache: Cache, n: int, stream: bool = False) -> list[float]:
    """Hit latencies through the exact cache on ``cache``."""
    provider = ExactCacheProvider(ScriptedProvider("model", [ANSWER]), cache, ExactCacheConfig(ttl=600))
    await provider.complete(request())  # the miss that fills the cache

    async def hit() -> None:
        r = request()
        if stream:
            async for _ in provider.stream(r):
                pass
        else:
            await provider.complete(r)
        assert r.trace.cache == "exact"

    await timed(min(n, 1000), hit)  # warm up
    try:
        return await timed(n, hit)
    finally:
        key = provider.key(request())
        if key is not None:
            await cache.delete(key)


async def upstream(fake: FakeUpstream, n: int) -> list[float]:
    """Latencies of the same request answered by the fake upstream over HTTP."""
    provider: Provider = OpenAIProvider("model", OpenAIOptions(base_url=fake.base_url))
    try:
        await provider.start()
        await timed(min(n, 200), lambda: provider.complete(request()))
        return await timed(n, lambda: provider.complete(request()))
    finally:
        await provider.aclose()


async def measure(args: argparse.Namespace) -> None:
    """Run every round and print the table."""
    async with FakeUpstream() as fake:
        reference = await upstream(fake, args.misses)
    ref = statistics.median(reference)
    rows = [
        summary("upstream call (OpenAI provider → fake upstream, loopback HTTP)", reference, None),
        summary("exact hit, memory store", await hits(MemoryCache(), args.hits), ref),
        summary(
            "exact hit replayed as a stream, memory store", await hits(MemoryCache(), args.hits, True), ref
        ),
    ]
    if args.redis:
        state = open_state(args.redis + ("&" if "?" in args.redis else "?") + "prefix=bench-exact")
        try:
            rows.append(
                summary("exact hit, Redis store (loopback)", await hits(state.cache, args.hits // 4), ref)
            )
        finally:
            await state.aclose()
    print("## Exact cache: keel's time for a hit\n")
    print(f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; ")
    print("one request at a time; a request of about 1.5 KB (system prompt, history, question).\n")
    print("| path | calls | p50 µs | p99 µs | mean µs | p50 / upstream p50 |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


def main() -> None:
    """Parse arguments and run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hits", type=int, default=20_000)
    ap.add_argument("--misses", type=int, default=2_000)
    ap.add_argument("--redis", default=None, help="also measure hits with a Redis store at this URL")
    asyncio.run(measure(ap.parse_args()))


if __name__ == "__main__":
    main()
