"""``keel usage``: calls, tokens, cost, savings and latency (per layer too) per feature, model or key."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from keel.cli.common import ConfigOption, settings_from
from keel.monitor.ledger import GroupBy
from keel.monitor.open import describe, is_missing, ledger_target, open_ledger
from keel.monitor.usage import (
    Format,
    UsageSummary,
    describe_since,
    has_layers,
    parse_format,
    parse_group_by,
    parse_since,
    render_csv,
    render_json,
    render_layers,
    render_table,
)

_WIDE = 200  # when piped, rich would wrap at 80 columns; a report line should stay one line


def register(app: typer.Typer) -> None:
    """Add the ``usage`` command."""
    app.command("usage")(usage)


def usage(
    since: Annotated[
        str,
        typer.Option("--since", help="Start of the window: 30m, 24h, 7d, a date (2026-11-01) or ISO time."),
    ] = "24h",
    by: Annotated[str, typer.Option("--by", help="Group by feature, model or key.")] = "feature",
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    config: ConfigOption = None,
) -> None:
    """Show calls, tokens, cost, savings and latency per feature, model or key since a point in time."""
    start = parse_since(since)
    group = parse_group_by(by)
    form = parse_format(fmt)
    settings = settings_from(config)
    target = ledger_target(settings)
    where = describe(target)
    if is_missing(target):
        _emit([], group, form, start, empty=f"no calls recorded yet (ledger: {where})")
        return
    with open_ledger(target) as ledger:
        summaries = ledger.summarize(since=start, by=group)
    _emit(
        summaries,
        group,
        form,
        start,
        empty=f"no calls recorded since {describe_since(start)} (ledger: {where})",
    )


def _emit(summaries: list[UsageSummary], by: GroupBy, form: Format, since: float, *, empty: str) -> None:
    """Print the report. With no rows, say so: csv/json still print an empty document and say it on stderr."""
    if form == "csv":
        sys.stdout.write(render_csv(summaries, by=by))
    elif form == "json":
        sys.stdout.write(render_json(summaries, by=by, since=since) + "\n")
    elif summaries:
        console = Console()
        if not console.is_terminal:
            console = Console(width=_WIDE)
        console.print(render_table(summaries, by=by, title=f"usage by {by} since {describe_since(since)}"))
        if has_layers(summaries):
            console.print(render_layers(summaries, by=by, title="latency per layer"))
    if not summaries:
        print(empty, file=sys.stdout if form == "table" else sys.stderr)
