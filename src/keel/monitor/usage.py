"""The usage report behind ``keel usage``: calls, tokens, money and latency per feature, model or key."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Literal

from rich.table import Table

from keel.errors import InvalidRequest
from keel.monitor.ledger import GroupBy

Format = Literal["table", "csv", "json"]
GROUPS: tuple[GroupBy, ...] = ("feature", "model", "key")
FORMATS: tuple[Format, ...] = ("table", "csv", "json")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(slots=True, frozen=True)
class UsageSummary:
    """One group's totals; latency percentiles are over the calls that recorded a latency."""

    group: str | None  # None: calls without a model or key (e.g. refused before routing, library calls)
    calls: int
    errors: int
    blocked: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    saved_usd: float
    cache_hits: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    def to_dict(self, by: GroupBy = "feature") -> dict[str, Any]:
        """The summary as JSON-able data, its group named after the grouping (feature, model or key)."""
        d = asdict(self)
        return {by: d.pop("group"), **d}


def sort_summaries(summaries: list[UsageSummary]) -> list[UsageSummary]:
    """Most expensive first, then busiest, then by name (no group last): the order every ledger returns."""
    return sorted(summaries, key=lambda s: (-s.cost_usd, -s.calls, s.group is None, s.group or ""))


# -- parsing the command's options --------------------------------------------------------------


def parse_since(text: str, *, now: float | None = None) -> float:
    """Epoch seconds for ``24h``/``30m``/``7d``/``2w`` ago, a date (local midnight) or an ISO datetime."""
    now = time.time() if now is None else now
    value = text.strip()
    m = _DURATION.fullmatch(value)
    if m:
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
        return max(now - seconds, 0.0) if math.isfinite(seconds) else 0.0
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"--since {text!r}: expected a duration (30m, 24h, 7d, 2w), a date (2026-11-01) "
            "or an ISO datetime (2026-11-01T09:30:00+00:00)",
            param="since",
        ) from None
    ts = when.timestamp()  # a naive value is local time, as the user reads a clock
    if ts > now:
        raise InvalidRequest(f"--since {text!r} is in the future", param="since")
    return ts


def parse_group_by(text: str) -> GroupBy:
    """``feature``, ``model`` or ``key``; InvalidRequest naming the choices otherwise."""
    value = text.strip().lower()
    if value not in GROUPS:
        raise InvalidRequest(f"--by {text!r}: expected one of {', '.join(GROUPS)}", param="by")
    return value


def parse_format(text: str) -> Format:
    """``table``, ``csv`` or ``json``; InvalidRequest naming the choices otherwise."""
    value = text.strip().lower()
    if value not in FORMATS:
        raise InvalidRequest(f"--format {text!r}: expected one of {', '.join(FORMATS)}", param="format")
    return value


def describe_since(since: float | None) -> str:
    """``since`` as a local date and time for people ('the beginning' when None)."""
    if since is None or since <= 0:
        return "the beginning"
    return datetime.fromtimestamp(since).astimezone().strftime("%Y-%m-%d %H:%M %Z")


# -- rendering ------------------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("calls", "calls"),
    ("errors", "errors"),
    ("blocked", "blocked"),
    ("cache_hits", "cache hits"),
    ("input_tokens", "input tok"),
    ("output_tokens", "output tok"),
    ("cost_usd", "cost $"),
    ("saved_usd", "saved $"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
)
_SUMMED = (
    "calls",
    "errors",
    "blocked",
    "cache_hits",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "saved_usd",
)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in ("cost_usd", "saved_usd"):
        return f"{value:,.6f}"  # a cheap model's call costs millionths of a dollar
    if name.startswith("latency"):
        return f"{value:,.1f}"
    return f"{value:,}"


def render_table(summaries: Sequence[UsageSummary], *, by: GroupBy, title: str | None = None) -> Table:
    """A rich table, numbers right-aligned, with a total line when there is more than one group."""
    totals = {n: sum(getattr(s, n) for s in summaries) for n in _SUMMED}
    footer = len(summaries) > 1
    table = Table(title=title, show_footer=footer, title_justify="left")
    table.add_column(by, footer="total" if footer else "", no_wrap=True)
    for name, header in _COLUMNS:
        table.add_column(
            header,
            justify="right",
            no_wrap=True,
            footer=_cell(name, totals[name]) if footer and name in totals else "",
        )
    for s in summaries:
        table.add_row(
            "(none)" if s.group is None else s.group, *(_cell(n, getattr(s, n)) for n, _ in _COLUMNS)
        )
    return table


def _plain(s: UsageSummary, by: GroupBy) -> dict[str, Any]:
    """``s.to_dict`` without float-summation noise (0.15600000000000003 → 0.156) for machine formats."""
    d = s.to_dict(by)
    for name, digits in (("cost_usd", 10), ("saved_usd", 10), ("latency_p50_ms", 3), ("latency_p95_ms", 3)):
        if d[name] is not None:
            d[name] = round(d[name], digits)
    return d


def render_csv(summaries: Sequence[UsageSummary], *, by: GroupBy) -> str:
    """CSV with a header line; empty cells where a value is unknown."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([by, *(f.name for f in fields(UsageSummary)[1:])])
    for s in summaries:
        writer.writerow(["" if v is None else v for v in _plain(s, by).values()])
    return out.getvalue()


def render_json(summaries: Sequence[UsageSummary], *, by: GroupBy, since: float | None) -> str:
    """``{"since": ISO time or null, "by": ..., "groups": [...]}``, indented."""
    start = (
        None if since is None else datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds")
    )
    doc = {"since": start, "by": by, "groups": [_plain(s, by) for s in summaries]}
    return json.dumps(doc, indent=2)
