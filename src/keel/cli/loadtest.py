"""``keel loadtest``: latency percentiles of a gateway (or any OpenAI-compatible URL) under concurrency."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from keel.audit.loadtest import LoadResult, run_load
from keel.cli.progress import progress_bar


def register(app: typer.Typer) -> None:
    """Add the ``loadtest`` command."""
    app.command("loadtest")(loadtest)


def loadtest(
    url: Annotated[str, typer.Argument(help="The gateway, e.g. http://127.0.0.1:8000 (or its /v1 base).")],
    feature: Annotated[
        str, typer.Option("--feature", "-f", help="The feature (the request's model).")
    ] = "default",
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Requests in flight.")] = 8,
    requests: Annotated[int, typer.Option("--requests", "-n", min=1, help="Requests in total.")] = 200,
    message: Annotated[
        str, typer.Option("--message", help="The user message sent.")
    ] = "Say hello in five words.",
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="max_tokens of each request.")] = 32,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="KEEL_API_KEY", help="Bearer key.")
    ] = None,
    max_p95: Annotated[
        float | None, typer.Option("--max-p95", help="Exit 1 when p95 exceeds this (ms).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Send REQUESTS chat requests with CONCURRENCY in flight; print p50/p95/p99, throughput and errors."""
    with progress_bar(f"loadtest {feature} ×{concurrency}") as bar:
        task = bar.add_task("requests", total=requests)
        result = asyncio.run(
            run_load(
                url,
                feature=feature,
                concurrency=concurrency,
                requests=requests,
                message=message,
                api_key=api_key,
                max_tokens=max_tokens,
                progress=lambda done: bar.update(task, completed=done),
            )
        )
    summary = result.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _print(result)
    p95 = result.percentile(95)
    if max_p95 is not None and (p95 is None or p95 > max_p95):
        raise typer.Exit(1)
    if result.ok == 0:
        raise typer.Exit(1)


def _print(r: LoadResult) -> None:
    s = r.summary()

    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f} ms"

    print(f"{r.requests} requests to {r.url} (feature {r.feature}) at concurrency {r.concurrency}")
    print(f"  ok {r.ok} · errors {r.error_rate:.1%} · {s['requests_per_s']} req/s over {r.seconds:.2f} s")
    print(f"  latency p50 {ms(s['p50_ms'])} · p95 {ms(s['p95_ms'])} · p99 {ms(s['p99_ms'])}")
    if len(r.statuses) > 1 or 200 not in r.statuses:
        print("  statuses " + ", ".join(f"{k}×{v}" for k, v in sorted(r.statuses.items())))
