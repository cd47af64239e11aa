"""The checks that send traffic: a load test and the red-team corpus through a running gateway, and a
fault-injection run of a feature in process against ``keel fake-upstream`` servers.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from keel.audit.checks import AuditOptions, Finding
from keel.audit.loadtest import chat_url, run_load
from keel.call import Call
from keel.errors import ConfigError, KeelError
from keel.llm.providers import Provider
from keel.llm.providers.openai import OpenAIOptions, OpenAIProvider
from keel.pipeline import Pipeline
from keel.settings import CacheConfig, Settings
from keel.testing import FakeUpstream


async def latency(feature: str, opts: AuditOptions) -> Finding:
    """p95 of a load test against the gateway, under ``opts.concurrency``."""
    if opts.url is None:
        return Finding("Latency", "p95 under load", "no", "not measured: run keel audit --url http://gateway")
    r = await run_load(
        opts.url, feature=feature, concurrency=opts.concurrency, requests=opts.requests, api_key=opts.api_key
    )
    p95 = r.percentile(95)
    head = f"{opts.requests} requests at concurrency {opts.concurrency}: "
    if r.ok == 0 or p95 is None:
        codes = ", ".join(f"{k}×{v}" for k, v in r.statuses.items())
        return Finding("Latency", "p95 under load", "no", head + f"no request succeeded ({codes})")
    ok = p95 <= opts.max_p95_ms and r.error_rate <= 0.01
    return Finding(
        "Latency",
        "p95 under load",
        "yes" if ok else "no",
        head + f"p95 {p95:.0f} ms (limit {opts.max_p95_ms:.0f}), p50 {r.percentile(50):.0f} ms, "
        f"errors {r.error_rate:.1%}, {r.summary()['requests_per_s']} req/s",
    )


def read_corpus(path: Path, limit: int) -> list[str]:
    """The attack texts of a red-team JSONL file (``label: injection``; every line when unlabelled)."""
    texts: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
        if row.get("label", "injection") == "injection" and row.get("role", "user") == "user":
            texts.append(str(row["text"]))
    return texts[:limit]


async def redteam(feature: str, opts: AuditOptions) -> Finding:
    """Share of the red-team corpus the gateway refuses (400) for ``feature``."""
    q = "red-team block rate"
    if opts.redteam is None or not opts.redteam.exists():
        return Finding("Security", q, "skip", "no red-team corpus (--redteam data/injection/redteam.jsonl)")
    if opts.url is None:
        return Finding("Security", q, "no", "not measured: run keel audit --url http://gateway")
    attacks = read_corpus(opts.redteam, opts.redteam_limit)
    if not attacks:
        return Finding("Security", q, "skip", f"{opts.redteam}: no user-role injection prompts")
    headers = {"content-type": "application/json"}
    if opts.api_key:
        headers["authorization"] = f"Bearer {opts.api_key}"
    target = chat_url(opts.url)
    blocked = 0
    gate = asyncio.Semaphore(opts.concurrency)

    async def send(session: aiohttp.ClientSession, text: str) -> None:
        nonlocal blocked
        body = orjson.dumps(
            {"model": feature, "messages": [{"role": "user", "content": text}], "max_tokens": 16}
        )
        async with gate, session.post(target, data=body, headers=headers) as resp:
            raw = await resp.read()
        if resp.status == 400 and _refused_as_injection(raw):
            blocked += 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(send(session, t) for t in attacks))
    rate = blocked / len(attacks)
    return Finding(
        "Security",
        q,
        "yes" if rate >= opts.min_block_rate else "no",
        f"{blocked}/{len(attacks)} attacks from {opts.redteam.name} refused "
        f"({rate:.0%}; needs ≥ {opts.min_block_rate:.0%})",
    )


def _refused_as_injection(raw: bytes) -> bool:
    """True for OpenAI error JSON whose code says the input was refused as an injection."""
    try:
        error = orjson.loads(raw).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return False
    code = str(error.get("code") or "")
    return code.startswith("prompt_injection") or code == "input_rejected"


async def fault_run(settings: Settings, feature: str, opts: AuditOptions) -> Finding:
    """The feature in process with its primary model's upstream failing every call (a 503 from
    ``keel fake-upstream``) and its fallbacks on a healthy one: how many calls are still answered."""
    fc = settings.feature(feature)
    q = "survives an upstream outage?"
    # In memory and uncached: a drill must not open real breakers, spend budgets or hit the cache.
    drill_fc = fc.model_copy(
        update={"cache": CacheConfig(), "rate_limit": None, "budget": None, "routing": None}
    )
    if fc.routing is not None and fc.routing.cascade is not None:
        drill_fc = drill_fc.model_copy(update={"fallbacks": list(fc.routing.cascade.models[1:])})
    drill = settings.model_copy(
        update={
            "features": [drill_fc],
            "state": "memory",
            "keys": [],
            "server": settings.server.model_copy(update={"default_feature": None}),
        }
    )
    with FakeUpstream(error_rate=1.0, error_status=503) as down, FakeUpstream() as up:
        providers: dict[str, Provider] = {
            name: _fake_leaf(name, down.base_url if name == fc.model else up.base_url)
            for name in drill_fc.models_used()
        }
        answered, by = 0, set()
        try:
            async with Pipeline(drill, providers=providers, ledger=False) as pipeline:
                for i in range(opts.fault_calls):
                    call = Call(
                        feature=feature, messages=[{"role": "user", "content": f"Fault drill {i}: hello"}]
                    )
                    try:
                        result = await pipeline.run(call)
                    except KeelError:
                        continue
                    answered += 1
                    by.add(result.model or "?")
        except KeelError as exc:
            return Finding("Reliability", q, "no", f"the drill could not run: {exc}")
        failed_upstream = down.stats()["requests"]
    evidence = (
        f"{answered}/{opts.fault_calls} calls answered while every call to {fc.model} got 503 from keel "
        f"fake-upstream ({failed_upstream} failed attempts)"
    )
    if by:
        evidence += f"; answered by {', '.join(sorted(by))}"
    return Finding("Reliability", q, "yes" if answered == opts.fault_calls else "no", evidence)


def _fake_leaf(name: str, base_url: str) -> Provider:
    options: Any = OpenAIOptions(base_url=base_url)
    return OpenAIProvider(name, options, api_key="keel-audit")
