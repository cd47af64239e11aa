"""``keel tail``: follow calls live as the ledger records them, one line per call; Ctrl-C stops."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import typer

from keel.cli.common import ConfigOption, settings_from
from keel.errors import InvalidRequest
from keel.monitor.ledger import Ledger, LedgerRow
from keel.monitor.open import describe, is_missing, ledger_target, open_ledger

_PAGE = 500  # rows per read while following: a burst is printed in pages, none skipped


def register(app: typer.Typer) -> None:
    """Add the ``tail`` command."""
    app.command("tail")(tail)


def tail(
    feature: Annotated[str | None, typer.Option("--feature", help="Only calls of this feature.")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Calls already recorded to show first.")] = 10,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Keep printing new calls until Ctrl-C.")
    ] = True,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between looks at the ledger.")] = 0.5,
    config: ConfigOption = None,
) -> None:
    """Print the last calls, then each new call as it is recorded (Ctrl-C stops)."""
    if lines < 0:
        raise InvalidRequest(f"--lines {lines}: expected 0 or more", param="lines")
    if interval <= 0:
        raise InvalidRequest(f"--interval {interval}: expected a number of seconds above 0", param="interval")
    settings = settings_from(config)
    target = ledger_target(settings)
    try:
        if is_missing(target):
            if not follow:
                print(f"no calls recorded yet (ledger: {describe(target)})")
                return
            print(f"waiting for the first call (ledger: {describe(target)})", file=sys.stderr, flush=True)
            while is_missing(target):
                time.sleep(interval)
        with open_ledger(target) as ledger:
            for row in follow_rows(ledger, feature=feature, first=lines, follow=follow, interval=interval):
                sys.stdout.write(format_row(row) + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        return  # Ctrl-C is how following ends: not an error
    except BrokenPipeError:  # piped into `head`, which has read enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def follow_rows(
    ledger: Ledger, *, feature: str | None, first: int, follow: bool, interval: float
) -> Iterator[LedgerRow]:
    """The last ``first`` rows, then (with ``follow``) every row stored after them, in storage order."""
    page = ledger.tail(after=None, limit=max(first, 1), feature=feature)
    yield from page.rows[len(page.rows) - first :] if first else ()
    cursor = page.cursor
    while follow:
        time.sleep(interval)
        while True:
            page = ledger.tail(after=cursor, limit=_PAGE, feature=feature)
            cursor = page.cursor
            yield from page.rows
            if len(page.rows) < _PAGE:
                break


def format_row(row: LedgerRow) -> str:
    """One call as one line: when, feature, model, outcome, tokens, cost, latency, cache/route, key, id."""
    when = datetime.fromtimestamp(row.ts).strftime("%Y-%m-%d %H:%M:%S")
    outcome = (
        row.status if row.status == "ok" else f"{row.status} {row.http_status} {row.error_code or ''}".strip()
    )
    latency = "-" if row.latency_ms is None else f"{row.latency_ms:,.0f}"
    parts = [
        when,
        row.feature,
        row.model or "-",
        outcome,
        f"{row.input_tokens:,} in {row.output_tokens:,} out",
        f"${row.cost_usd:.6f}",
        f"{latency} ms",
    ]
    if row.cache:
        parts.append(f"cache={row.cache}")
    if row.route:
        parts.append(f"route={row.route}")
    if row.prompt_version:
        parts.append(f"prompt={row.prompt_name or ''}@{row.prompt_version}")
    if row.key_id:
        parts.append(f"key={row.key_id}")
    parts.append(row.id)
    return "  ".join(parts)
