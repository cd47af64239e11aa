"""``keel audit``: the production-readiness checklist per feature, with evidence; exit 1 on any "no"."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keel.audit.checks import AuditOptions
from keel.audit.report import render_html, table
from keel.audit.run import audit as run_audit
from keel.cli.common import ConfigOption, settings_from
from keel.errors import ConfigError

_out = Console(width=240, highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False)
DEFAULT_REDTEAM = Path("data/injection/redteam.jsonl")


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command."""
    app.command("audit")(audit)


def audit(
    config: ConfigOption = None,
    url: Annotated[
        str | None, typer.Option("--url", help="A running gateway to load-test and red-team.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="KEEL_API_KEY", help="Its bearer key.")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Load-test concurrency.")] = 8,
    requests: Annotated[int, typer.Option("--requests", min=1, help="Load-test requests per feature.")] = 40,
    max_p95: Annotated[
        float, typer.Option("--max-p95", help="Largest acceptable p95 latency (ms).")
    ] = 2000.0,
    min_pass_rate: Annotated[float, typer.Option("--min-pass-rate", min=0, max=1)] = 0.9,
    min_block_rate: Annotated[float, typer.Option("--min-block-rate", min=0, max=1)] = 0.9,
    redteam: Annotated[
        Path | None,
        typer.Option(
            "--redteam", help="Red-team JSONL (default: data/injection/redteam.jsonl beside keel.yaml)."
        ),
    ] = None,
    redteam_limit: Annotated[
        int, typer.Option("--redteam-limit", min=1, help="Attacks sent per feature.")
    ] = 40,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Answer the production checklist for every feature: accuracy, cost, latency, security, reliability."""
    settings = settings_from(config)
    if redteam is not None and not redteam.exists():
        raise ConfigError(f"{redteam}: red-team corpus not found")
    opts = AuditOptions(
        url=url,
        api_key=api_key,
        concurrency=concurrency,
        requests=requests,
        max_p95_ms=max_p95,
        min_pass_rate=min_pass_rate,
        min_block_rate=min_block_rate,
        redteam=redteam or settings.resolve(DEFAULT_REDTEAM),
        redteam_limit=redteam_limit,
    )
    audits = asyncio.run(run_audit(settings, opts, progress=lambda f: _err.print(f"auditing {f}…")))
    if html is not None:
        try:
            html.write_text(render_html(audits, source=settings.source, url=url), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{html}: cannot write the report: {exc}") from None
    if as_json:
        print(
            json.dumps(
                [
                    {"feature": a.feature, "ready": a.ready, "findings": [asdict(f) for f in a.findings]}
                    for a in audits
                ],
                indent=2,
            )
        )
    else:
        _out.print(table(audits))
        ready = [a.feature for a in audits if a.ready]
        _out.print(f"{len(ready)}/{len(audits)} feature(s) ready" + (f"; report: {html}" if html else ""))
    if not all(a.ready for a in audits):
        raise typer.Exit(1)
