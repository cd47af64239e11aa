"""The usage report behind ``keel usage``: calls, tokens, money, savings and latency per feature, model, key.

Latency comes as p50/p95 of the whole call and of each layer (input, context, llm, validation)
plus time to first token; savings split into what the cache saved and what routing saved.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
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

# What each percentile pair is taken over: summary field prefix → ledger column.
LATENCY_COLUMNS: dict[str, str] = {
    "latency": "latency_ms",
    "ttft": "ttft_ms",
    "input": "t_input_ms",
    "context": "t_context_ms",
    "llm": "t_llm_ms",
    "validation": "t_validation_ms",
}
LAYERS: tuple[str, ...] = ("input", "context", "llm", "validation", "ttft")
Percentiles = tuple[float | None, float | None]  # p50, p95


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
    cache_saved_usd: float = 0.0  # what cached answers would have cost
    route_saved_usd: float = 0.0  # what routing saved against each call's baseline model (negative: lost)
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    input_p50_ms: float | None = None
    input_p95_ms: float | None = None
    context_p50_ms: float | None = None
    context_p95_ms: float | None = None
    llm_p50_ms: float | None = None
    llm_p95_ms: float | None = None
    validation_p50_ms: float | None = None
    validation_p95_ms: float | None = None

    def to_dict(self, by: GroupBy = "feature") -> dict[str, Any]:
        """The summary as JSON-able data, its group named after the grouping (feature, model or key)."""
        d = asdict(self)
        return {by: d.pop("group"), **d}

    def layer(self, name: str) -> Percentiles:
        """(p50, p95) in ms of one of LAYERS."""
        p50: float | None = getattr(self, f"{name}_p50_ms")
        p95: float | None = getattr(self, f"{name}_p95_ms")
        return p50, p95


def build_summary(
    group: str | None, totals: Sequence[Any], percentiles: Mapping[str, Percentiles]
) -> UsageSummary:
    """A summary from a backend's totals row and its percentiles per LATENCY_COLUMNS key.

    ``totals``: calls, errors, blocked, input tokens, output tokens, cost, cache hits, cache saved,
    route saved (sums of an empty group may be None).
    """
    calls, errors, blocked, tin, tout, cost, hits, cache_saved, route_saved = (v or 0 for v in totals)
    pct = {f"{name}_p{q}_ms": percentiles.get(name, (None, None))[i] for name in LATENCY_COLUMNS
           for i, q in enumerate((50, 95))}  # fmt: skip
    return UsageSummary(
        group=group,
        calls=int(calls),
        errors=int(errors),
        blocked=int(blocked),
        input_tokens=int(tin),
        output_tokens=int(tout),
        cost_usd=float(cost),
        saved_usd=float(cache_saved) + float(route_saved),
        cache_hits=int(hits),
        cache_saved_usd=float(cache_saved),
        route_saved_usd=float(route_saved),
        **pct,
    )


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
    ("cache_saved_usd", "cache saved $"),
    ("route_saved_usd", "route saved $"),
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
    "cache_saved_usd",
    "route_saved_usd",
)
_MONEY = frozenset({"cost_usd", "saved_usd", "cache_saved_usd", "route_saved_usd"})


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in _MONEY:
        return f"{value:,.6f}"  # a cheap model's call costs millionths of a dollar
    if name.endswith("_ms"):
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


def has_layers(summaries: Sequence[UsageSummary]) -> bool:
    """True when some group recorded a per-layer latency or a time to first token."""
    return any(v is not None for s in summaries for name in LAYERS for v in s.layer(name))


def render_layers(summaries: Sequence[UsageSummary], *, by: GroupBy, title: str | None = None) -> Table:
    """Where the time went: p50 / p95 ms of each layer and of the time to first token, per group."""
    table = Table(title=title, title_justify="left")
    table.add_column(by, no_wrap=True)
    for name in LAYERS:
        table.add_column(f"{name} p50 / p95 ms", justify="right", no_wrap=True)
    for s in summaries:
        cells = []
        for name in LAYERS:
            p50, p95 = s.layer(name)
            cells.append("-" if p50 is None else f"{_cell('x_ms', p50)} / {_cell('x_ms', p95)}")
        table.add_row("(none)" if s.group is None else s.group, *cells)
    return table


def _plain(s: UsageSummary, by: GroupBy) -> dict[str, Any]:
    """``s.to_dict`` without float-summation noise (0.15600000000000003 → 0.156) for machine formats."""
    d = s.to_dict(by)
    for name, value in d.items():
        if isinstance(value, float):
            d[name] = round(value, 10 if name in _MONEY else 3)
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
