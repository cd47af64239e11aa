"""A closed-loop load test of an OpenAI-compatible endpoint: N workers, each sending its next request
as soon as its last one answered, until the request count is reached.

Latency is measured per request from send to the last byte of the body, on one pooled aiohttp
session; p50/p95/p99 are nearest-rank percentiles over the successful requests.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import aiohttp
import orjson

from keel.errors import ConfigError


@dataclass(slots=True)
class LoadResult:
    """What a load test measured."""

    url: str
    feature: str
    concurrency: int
    requests: int
    ok: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def percentile(self, q: float) -> float | None:
        """The nearest-rank ``q`` percentile (0..100) of successful latencies, in ms."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    @property
    def error_rate(self) -> float:
        """Share of requests that did not answer 200."""
        return 1 - self.ok / self.requests if self.requests else 0.0

    def summary(self) -> dict[str, Any]:
        """The figures as plain data."""
        return {
            "url": self.url,
            "feature": self.feature,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "ok": self.ok,
            "error_rate": round(self.error_rate, 4),
            "requests_per_s": round(self.requests / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
        }


def chat_url(url: str) -> str:
    """The chat-completions URL for a gateway root, a ``/v1`` base or the full path."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"expected an http:// or https:// URL, got {url!r}")
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


async def run_load(
    url: str,
    *,
    feature: str,
    concurrency: int,
    requests: int,
    message: str = "Say hello in five words.",
    api_key: str | None = None,
    max_tokens: int | None = 32,
    request_timeout: float = 60.0,
    progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Send ``requests`` chat requests for ``feature`` with ``concurrency`` in flight."""
    if concurrency < 1 or requests < 1:
        raise ConfigError("concurrency and requests must be at least 1")
    target = chat_url(url)
    body: dict[str, Any] = {"model": feature, "messages": [{"role": "user", "content": message}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    payload = orjson.dumps(body)
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    result = LoadResult(url, feature, concurrency, requests, 0, 0.0)
    remaining = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = perf_counter()
            try:
                async with session.post(target, data=payload, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.errors[type(exc).__name__] += 1
                status = 0
            elapsed = (perf_counter() - t0) * 1000
            result.statuses[status] += 1
            if status == 200:
                result.ok += 1
                result.latencies_ms.append(elapsed)
            if progress is not None:
                progress(sum(result.statuses.values()))

    connector = aiohttp.TCPConnector(limit=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=request_timeout)
    t_start = perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(min(concurrency, requests))))
    result.seconds = perf_counter() - t_start
    return result
