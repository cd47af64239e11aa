"""The embedded ledger: one SQLite file in WAL mode, so reports read beside the writer thread.

The schema grows by migrations: small functions applied in order and recorded by name in the
``_migrations`` table (shared with other embedded stores, hence the ``ledger.`` prefix).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson

from keel.errors import ConfigError, LedgerWriteError
from keel.monitor.ledger import GroupBy, Ledger, LedgerRow
from keel.monitor.usage import UsageSummary, sort_summaries

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_create_calls(db: sqlite3.Connection) -> None:
    """The ``calls`` table: one row per call, no message content and no API keys."""
    db.execute(
        """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            ts REAL NOT NULL,
            feature TEXT NOT NULL,
            key_id TEXT,
            model TEXT,
            provider TEXT,
            upstream_model TEXT,
            prompt_name TEXT,
            prompt_version TEXT,
            status TEXT NOT NULL,
            http_status INTEGER NOT NULL,
            error_code TEXT,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cached_input_tokens INTEGER NOT NULL,
            tokens_estimated INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            saved_usd REAL NOT NULL,
            latency_ms REAL,
            ttft_ms REAL,
            t_input_ms REAL,
            t_context_ms REAL,
            t_llm_ms REAL,
            t_validation_ms REAL,
            stream INTEGER NOT NULL,
            cache TEXT,
            route TEXT,
            verdicts TEXT NOT NULL,
            counters TEXT NOT NULL,
            metadata TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX calls_ts ON calls (ts)")
    db.execute("CREATE INDEX calls_feature_ts ON calls (feature, ts)")


_COLUMNS = tuple(f.name for f in fields(LedgerRow))
_BOOLS = frozenset({"tokens_estimated", "stream"})
_JSON = frozenset({"verdicts", "counters", "metadata"})
_INSERT = (
    f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    " ON CONFLICT (id) DO NOTHING"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM calls"
_GROUP_COLUMN: dict[str, str] = {"feature": "feature", "model": "model", "key": "key_id"}
_PERCENTILES = (0.5, 0.95)
_JSON_OPTS = orjson.OPT_NON_STR_KEYS
# Errors caused by a row's values: retrying the same rows can never succeed.
_BAD_ROW = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    UnicodeEncodeError,
    OverflowError,
    ValueError,
    TypeError,
)


class SQLiteLedger(Ledger):
    """The ledger in a SQLite file (created with its directory when missing)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()  # the write connection is shared by whichever thread writes
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db:
                db.execute("PRAGMA journal_mode=WAL")
                _migrate(db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"ledger {self.path}: cannot open: {exc}") from None

    def _connect(self, *, check_same_thread: bool = True) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=check_same_thread)
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes of the process
        return db

    def write(self, rows: Sequence[LedgerRow]) -> None:
        """Insert ``rows`` in one transaction (all or nothing); ids already stored are skipped."""
        if not rows:
            return
        with self._lock:
            if self._closed:
                raise LedgerWriteError(f"ledger {self.path} is closed", retryable=False)
            try:
                if self._conn is None:
                    self._conn = self._connect(check_same_thread=False)
                db = self._conn
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(_INSERT, map(_to_params, rows))
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except _BAD_ROW as exc:
                raise LedgerWriteError(f"ledger {self.path}: row rejected: {exc}", retryable=False) from exc
            except sqlite3.Error as exc:
                raise LedgerWriteError(f"ledger {self.path}: write failed: {exc}", retryable=True) from exc

    def rows(self, *, since: float | None = None, limit: int = 100) -> list[LedgerRow]:
        """The latest ``limit`` rows with ``ts >= since``, newest first."""
        where, params = _since_clause(since)
        with self._reader() as db:
            cur = db.execute(f"{_SELECT}{where} ORDER BY ts DESC, id DESC LIMIT ?", (*params, max(limit, 0)))
            return [_from_db(r) for r in cur]

    def summarize(self, *, since: float | None, by: GroupBy) -> list[UsageSummary]:
        """Totals and latency p50/p95 (linear interpolation, as percentile_cont) per group."""
        col = _GROUP_COLUMN.get(by)
        if col is None:
            raise ValueError(f"cannot group by {by!r} (expected one of: {', '.join(_GROUP_COLUMN)})")
        where, params = _since_clause(since)
        totals = f"""
            SELECT {col}, COUNT(*), SUM(status = 'error'), SUM(status = 'blocked'), SUM(input_tokens),
                   SUM(output_tokens), SUM(cost_usd), SUM(saved_usd), SUM(cache IS NOT NULL)
            FROM calls{where} GROUP BY {col}
        """
        # Only the rows next to each percentile's rank come back, not every latency.
        latency_where = f"{where} AND latency_ms IS NOT NULL" if where else " WHERE latency_ms IS NOT NULL"
        ranks = " OR ".join(
            f"i = CAST((n - 1) * {p} AS INTEGER) OR i = CAST((n - 1) * {p} AS INTEGER) + 1"
            for p in _PERCENTILES
        )
        ranked = f"""
            SELECT g, i, n, latency_ms FROM (
                SELECT {col} AS g, latency_ms,
                       ROW_NUMBER() OVER (PARTITION BY {col} ORDER BY latency_ms) - 1 AS i,
                       COUNT(*) OVER (PARTITION BY {col}) AS n
                FROM calls{latency_where}
            ) WHERE {ranks}
        """
        with self._reader() as db:
            groups = db.execute(totals, params).fetchall()
            near: dict[Any, tuple[int, dict[int, float]]] = {}
            for g, i, n, latency in db.execute(ranked, params):
                near.setdefault(g, (n, {}))[1][i] = latency
        out = []
        for g, calls, errors, blocked, tin, tout, cost, saved, hits in groups:
            n, values = near.get(g, (0, {}))
            p50, p95 = (_interpolate(values, n, p) for p in _PERCENTILES)
            out.append(
                UsageSummary(
                    group=g,
                    calls=calls,
                    errors=errors,
                    blocked=blocked,
                    input_tokens=tin,
                    output_tokens=tout,
                    cost_usd=cost,
                    saved_usd=saved,
                    cache_hits=hits,
                    latency_p50_ms=p50,
                    latency_p95_ms=p95,
                )
            )
        return sort_summaries(out)

    def close(self) -> None:
        """Close the write connection; idempotent."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own for one read: WAL lets it run beside the writer."""
        try:
            with closing(self._connect()) as db:
                db.execute("PRAGMA query_only=1")
                yield db
        except sqlite3.Error as exc:
            raise ConfigError(f"ledger {self.path}: cannot read: {exc}") from None

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"


def _migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations not yet recorded, each in its own transaction with its record."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for fn in MIGRATIONS:
        name = f"ledger.{fn.__name__}"
        db.execute("BEGIN IMMEDIATE")  # re-checked under the lock: two processes may start together
        try:
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone() is None:
                fn(db)
                db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _since_clause(since: float | None) -> tuple[str, tuple[float, ...]]:
    return ("", ()) if since is None else (" WHERE ts >= ?", (since,))


def _interpolate(values: dict[int, float], n: int, p: float) -> float | None:
    """percentile_cont: the value at rank (n-1)*p, interpolated between its two neighbours."""
    if n == 0:
        return None
    h = (n - 1) * p
    lo = math.floor(h)
    low = values[lo]
    if lo + 1 >= n:
        return low
    return low + (h - lo) * (values[lo + 1] - low)


def _json_text(value: Any) -> str:
    """JSON text for any metadata: odd types become strings, lone surrogates are escaped."""
    try:
        return orjson.dumps(value, default=str, option=_JSON_OPTS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str)


def _to_params(row: LedgerRow) -> tuple[Any, ...]:
    return (
        row.id, row.ts, row.feature, row.key_id, row.model, row.provider, row.upstream_model,
        row.prompt_name, row.prompt_version, row.status, row.http_status, row.error_code,
        row.input_tokens, row.output_tokens, row.cached_input_tokens, int(row.tokens_estimated),
        row.cost_usd, row.saved_usd, row.latency_ms, row.ttft_ms, row.t_input_ms, row.t_context_ms,
        row.t_llm_ms, row.t_validation_ms, int(row.stream), row.cache, row.route,
        _json_text(row.verdicts), _json_text(row.counters), _json_text(row.metadata),
    )  # fmt: skip


def _from_db(values: Sequence[Any]) -> LedgerRow:
    kwargs: dict[str, Any] = {}
    for name, value in zip(_COLUMNS, values, strict=True):
        if name in _BOOLS:
            value = bool(value)
        elif name in _JSON:
            value = json.loads(value)
        kwargs[name] = value
    return LedgerRow(**kwargs)
