"""The dashboard's numbers: aggregations over the ledger's ``calls`` table for a time range and filters.

Totals, series and breakdowns are SQL aggregations, so they stay exact however many calls the
range holds. Percentiles are taken in Python over the newest ``LATENCY_SAMPLE`` calls of the
range (the response says how many). The SQL is written once for SQLite and PostgreSQL; a
``Dialect`` supplies the few spellings that differ (placeholders, time buckets, JSON arrays).
Reads use a connection of their own, never the ledger writer's.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import ConfigError, StateUnavailable
from keel.monitor.ledger import Ledger
from keel.monitor.sqlite_ledger import SQLiteLedger

LATENCY_SAMPLE = 50_000
"""Percentiles are computed over at most this many of the range's newest calls."""

LAYER_COLUMNS: dict[str, str] = {
    "input": "t_input_ms",
    "context": "t_context_ms",
    "llm": "t_llm_ms",
    "validation": "t_validation_ms",
    "ttft": "ttft_ms",
    "total": "latency_ms",
}
PERCENTILES = (50, 95, 99)
# Ledger columns a recent-call row shows: no content and no key, as the ledger stores none.
RECENT_COLUMNS = (
    "id", "ts", "feature", "key_id", "model", "upstream_model", "prompt_version", "status",
    "http_status", "error_code", "input_tokens", "output_tokens", "cost_usd", "saved_usd",
    "latency_ms", "cache", "route", "stream", "verdicts",
)  # fmt: skip

Reader = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one SQL engine spells what differs: placeholders, time buckets, the verdicts JSON array."""

    name: str
    table: str
    placeholder: str
    bucket: str  # SQL for the bucket number of ``ts`` given the bucket width as a parameter
    verdicts_from: str  # a FROM item expanding ``c.verdicts`` into rows named ``v``
    verdict_field: str  # SQL for one field of ``v``; ``{name}`` is the field

    def sql(self, text: str) -> str:
        """``text`` with its ``?`` placeholders and ``calls`` table spelled for this engine."""
        return text.replace("{calls}", self.table).replace("?", self.placeholder)


SQLITE = Dialect(
    name="sqlite",
    table="calls",
    placeholder="?",
    bucket="CAST(ts / ? AS INTEGER)",  # ts is positive, so the cast floors
    verdicts_from="json_each(c.verdicts) AS v",
    verdict_field="json_extract(v.value, '$.{name}')",
)


def postgres_dialect(schema: str) -> Dialect:
    """The dialect for a PostgreSQL ledger in ``schema`` (``verdicts`` is a ``json`` column)."""
    return Dialect(
        name="postgresql",
        table=f'"{schema}".calls',
        placeholder="%s",
        bucket="CAST(FLOOR(ts / ?) AS BIGINT)",
        verdicts_from="json_array_elements(c.verdicts) AS v",
        verdict_field="v->>'{name}'",
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """Which calls the dashboard shows: a time range and optionally one feature, model and key."""

    since: float
    until: float
    feature: str | None = None
    model: str | None = None
    key: str | None = None

    def where(self, *, times_only: bool = False) -> tuple[str, list[Any]]:
        """A WHERE clause (``?`` placeholders, columns of alias ``c``) and its parameters."""
        parts = ["c.ts >= ?", "c.ts < ?"]
        params: list[Any] = [self.since, self.until]
        if not times_only:
            for column, value in (("feature", self.feature), ("model", self.model), ("key_id", self.key)):
                if value is not None:
                    parts.append(f"c.{column} = ?")
                    params.append(value)
        return " WHERE " + " AND ".join(parts), params


def bucket_seconds(span: float) -> int:
    """A bucket width that cuts ``span`` seconds into about 60-100 bars, on a round clock value."""
    for width in (60, 300, 900, 1800, 3600, 7200, 14_400, 21_600, 43_200, 86_400, 604_800):
        if span / width <= 100:
            return width
    return 2_592_000


def sqlite_reader(path: Path) -> Reader:
    """Run queries on the SQLite ledger at ``path``, read-only, on a connection per call."""

    def read(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not path.exists():
            return []  # nothing recorded yet: the file appears with the first batch
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                db.execute("PRAGMA busy_timeout=5000")
                return db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise ConfigError(f"ledger {path}: cannot read: {exc}") from None

    return read


class DashboardQueries:
    """Everything the dashboard shows, read with ``reader`` in ``dialect``. Blocking: run in a thread."""

    def __init__(self, reader: Reader, dialect: Dialect = SQLITE) -> None:
        self.read = reader
        self.dialect = dialect

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.read(self.dialect.sql(sql), params)

    def overview(self, f: Filters) -> dict[str, Any]:
        """Totals, series, latency, cache, routes, verdicts, errors and filter options for ``f``.

        Each query scans the range once; totals come from the series and cache and routes from one
        breakdown, so a long range costs six scans, not nine.
        """
        width = bucket_seconds(f.until - f.since)
        series = self.series(f, width)
        mix = self._mix(f)
        return {
            "range": {"since": f.since, "until": f.until, "bucket_seconds": width},
            "totals": _totals(series),
            "series": series,
            "latency": self.latency(f, width),
            "cache": _cache(mix),
            "routes": _routes(mix),
            "verdicts": self.verdicts(f),
            "errors": self.errors(f),
            "options": self.options(f),
        }

    def totals(self, f: Filters) -> dict[str, Any]:
        """Calls, outcomes, tokens, money and cache hits for the whole range."""
        return _totals(self.series(f, bucket_seconds(f.until - f.since)))

    def series(self, f: Filters, width: int) -> list[dict[str, Any]]:
        """Per time bucket and feature: calls, outcomes, tokens, money, cache hits (``t``: bucket start)."""
        where, params = f.where()
        rows = self._rows(
            f"SELECT {self.dialect.bucket} AS b, c.feature, COUNT(*),"
            " SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN c.status = 'blocked' THEN 1 ELSE 0 END), SUM(c.input_tokens),"
            " SUM(c.output_tokens), SUM(c.cost_usd), SUM(c.saved_usd),"
            f" SUM(CASE WHEN c.cache IS NOT NULL THEN 1 ELSE 0 END) FROM {{calls}} AS c{where}"
            " GROUP BY b, c.feature ORDER BY b, c.feature",
            [width, *params],
        )
        # PostgreSQL sums integers as numeric (Decimal): everything is made int or float here.
        return [
            {
                "t": int(b) * width,
                "feature": feature,
                "calls": int(calls),
                "errors": int(errors or 0),
                "blocked": int(blocked or 0),
                "input_tokens": int(tin or 0),
                "output_tokens": int(tout or 0),
                "cost_usd": float(cost or 0),
                "saved_usd": float(saved or 0),
                "cache_hits": int(hits or 0),
            }
            for b, feature, calls, errors, blocked, tin, tout, cost, saved, hits in rows
        ]

    def latency(self, f: Filters, width: int) -> dict[str, Any]:
        """p50/p95/p99 per layer, and p50/p95 of the whole call per bucket, over the newest calls."""
        where, params = f.where()
        columns = ", ".join(f"c.{c}" for c in LAYER_COLUMNS.values())
        rows = self._rows(
            f"SELECT c.ts, {columns} FROM {{calls}} AS c{where} ORDER BY c.ts DESC LIMIT ?",
            [*params, LATENCY_SAMPLE],
        )
        layers: dict[str, dict[str, float | None]] = {}
        for i, layer in enumerate(LAYER_COLUMNS, start=1):
            values = sorted(r[i] for r in rows if r[i] is not None)
            layers[layer] = {f"p{q}": percentile(values, q / 100) for q in PERCENTILES}
            layers[layer]["n"] = len(values)
        by_bucket: dict[int, list[float]] = {}
        total = len(LAYER_COLUMNS)  # the last column: the whole call
        for r in rows:
            if r[total] is not None:
                by_bucket.setdefault(int(r[0] // width), []).append(r[total])
        series = []
        for b in sorted(by_bucket):
            values = sorted(by_bucket[b])
            series.append({"t": b * width, "p50": percentile(values, 0.5), "p95": percentile(values, 0.95)})
        return {"sample": len(rows), "layers": layers, "series": series}

    def cache(self, f: Filters) -> list[dict[str, Any]]:
        """Calls and money saved per cache outcome: ``exact``, ``semantic`` or ``miss``."""
        return _cache(self._mix(f))

    def routes(self, f: Filters) -> list[dict[str, Any]]:
        """Calls, cost and savings per (route, model that answered), busiest first.

        Calls refused before a model was chosen are left out: they took no route.
        """
        return _routes(self._mix(f))

    def _mix(self, f: Filters) -> list[tuple[str, str, str | None, int, float, float]]:
        """Calls, cost and savings per (cache outcome, route, model): what cache() and routes() split."""
        where, params = f.where()
        rows = self._rows(
            "SELECT COALESCE(c.cache, 'miss') AS k, COALESCE(c.route, 'default') AS r, c.model AS m,"
            f" COUNT(*), SUM(c.cost_usd), SUM(c.saved_usd) FROM {{calls}} AS c{where} GROUP BY k, r, m",
            params,
        )
        return [(k, r, m, int(n), float(cost or 0), float(saved or 0)) for k, r, m, n, cost, saved in rows]

    def verdicts(self, f: Filters) -> list[dict[str, Any]]:
        """How many verdicts each (stage, reason, action) gave, most frequent first."""
        where, params = f.where()
        d = self.dialect
        stage, reason, action = (d.verdict_field.format(name=n) for n in ("stage", "reason", "action"))
        rows = self._rows(
            f"SELECT {stage} AS s, {reason} AS r, {action} AS a, COUNT(*)"
            f" FROM {{calls}} AS c, {d.verdicts_from}{where}"
            " GROUP BY s, r, a ORDER BY COUNT(*) DESC, s, r, a LIMIT 50",
            params,
        )
        return [{"stage": s, "reason": r, "action": a, "count": int(n)} for s, r, a, n in rows]

    def errors(self, f: Filters) -> list[dict[str, Any]]:
        """Failed and refused calls per (status, HTTP status, error code), most frequent first."""
        where, params = f.where()
        rows = self._rows(
            "SELECT c.status, c.http_status, COALESCE(c.error_code, ''), COUNT(*), MAX(c.ts)"
            f" FROM {{calls}} AS c{where} AND c.status <> 'ok'"
            " GROUP BY c.status, c.http_status, c.error_code ORDER BY COUNT(*) DESC LIMIT 50",
            params,
        )
        return [
            {"status": s, "http_status": int(h), "code": code or None, "count": int(n), "last_ts": float(t)}
            for s, h, code, n, t in rows
        ]

    def options(self, f: Filters) -> dict[str, list[str]]:
        """The features, models and keys seen in the time range (for the filter menus)."""
        where, params = f.where(times_only=True)
        rows = self._rows(
            f"SELECT DISTINCT c.feature, c.model, c.key_id FROM {{calls}} AS c{where} LIMIT 20000", params
        )
        return {
            name: sorted({r[i] for r in rows if r[i] is not None})[:500]
            for i, name in enumerate(("features", "models", "keys"))
        }

    def recent(self, f: Filters, limit: int = 50) -> list[dict[str, Any]]:
        """The newest calls in the range: outcome, tokens, money, time; verdicts without their detail."""
        where, params = f.where()
        columns = ", ".join(f"c.{c}" for c in RECENT_COLUMNS)
        rows = self._rows(
            f"SELECT {columns} FROM {{calls}} AS c{where} ORDER BY c.ts DESC, c.id DESC LIMIT ?",
            [*params, limit],
        )
        out = []
        for values in rows:
            d = dict(zip(RECENT_COLUMNS, values, strict=True))
            d["stream"] = bool(d["stream"])
            verdicts = d["verdicts"]
            if isinstance(verdicts, str):
                verdicts = json.loads(verdicts)
            # A verdict's detail may quote the input; the stage, reason and score say enough here.
            d["verdicts"] = [
                {k: v[k] for k in ("stage", "action", "reason", "score") if k in v} for v in verdicts or []
            ]
            out.append(d)
        return out


def _totals(series: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The range's totals: the sums of its series."""
    names = ("calls", "errors", "blocked", "input_tokens", "output_tokens", "cache_hits")
    t: dict[str, Any] = {n: sum(r[n] for r in series) for n in names}
    t["cost_usd"] = sum(r["cost_usd"] for r in series)
    t["saved_usd"] = sum(r["saved_usd"] for r in series)
    calls = t["calls"]
    t["error_rate"] = t["errors"] / calls if calls else None
    t["cache_hit_rate"] = t["cache_hits"] / calls if calls else None
    return t


def _cache(mix: Sequence[tuple[str, str, str | None, int, float, float]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind, _, _, calls, _, saved in mix:
        entry = out.setdefault(kind, {"cache": kind, "calls": 0, "saved_usd": 0.0})
        entry["calls"] += calls
        if kind != "miss":  # a miss's savings come from routing, not the cache
            entry["saved_usd"] += saved
    return [out[k] for k in sorted(out)]


def _routes(mix: Sequence[tuple[str, str, str | None, int, float, float]]) -> list[dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, route, model, calls, cost, saved in mix:
        if model is None:
            continue
        entry = out.setdefault(
            (route, model), {"route": route, "model": model, "calls": 0, "cost_usd": 0.0, "saved_usd": 0.0}
        )
        entry["calls"] += calls
        entry["cost_usd"] += cost
        if kind == "miss":  # a cache hit's savings are the cache's
            entry["saved_usd"] += saved
    return sorted(out.values(), key=lambda e: (-e["calls"], e["route"], e["model"]))


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p`` quantile of sorted ``values``, interpolated between neighbours (as percentile_cont)."""
    n = len(values)
    if n == 0:
        return None
    h = (n - 1) * p
    lo = math.floor(h)
    if lo + 1 >= n:
        return float(values[lo])
    return float(values[lo] + (h - lo) * (values[lo + 1] - values[lo]))


class PostgresReader:
    """Run queries on a PostgreSQL ledger over one connection of its own, reopened when it breaks."""

    def __init__(self, url: str, display: str, *, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.display = display
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Any = None

    def __call__(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one query; StateUnavailable (503) when the server cannot be reached."""
        import psycopg  # only a PostgreSQL ledger needs it

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self.url,
                        autocommit=True,
                        connect_timeout=max(int(self.connect_timeout), 1),
                        application_name="keel-dashboard",
                    )
                with self._conn.cursor() as cur:
                    rows: list[tuple[Any, ...]] = cur.execute(sql, params).fetchall()
                    return rows
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.broken or self._conn.closed):
                    self._conn.close()
                    self._conn = None
                message = " ".join(str(exc).split())
                raise StateUnavailable(f"ledger {self.display}: cannot read: {message}") from None

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def queries_for(ledger: Ledger) -> DashboardQueries:
    """The dashboard's queries over the storage of ``ledger``, on read connections of their own."""
    if isinstance(ledger, SQLiteLedger):
        return DashboardQueries(sqlite_reader(ledger.path), SQLITE)
    from keel.monitor.postgres_ledger import PostgresLedger  # psycopg loads only when used

    if isinstance(ledger, PostgresLedger):
        return DashboardQueries(PostgresReader(ledger.url, ledger.display), postgres_dialect(ledger.schema))
    raise ConfigError(f"the dashboard cannot read a {type(ledger).__name__}")
