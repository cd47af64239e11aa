"""The embedded ledger: one SQLite file in WAL mode, so reports read beside the writer thread.

The schema grows by migrations: small functions applied in order and recorded by name in the
``_migrations`` table (shared with other embedded stores, hence the ``ledger.`` prefix). The
implicit ``rowid`` orders rows as they were stored: it is the cursor ``tail()`` follows.
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

from keel.errors import ConfigError, LedgerWriteError
from keel.monitor.ledger import GroupBy, Ledger, LedgerRow, TailPage, VerdictStats, json_text
from keel.monitor.usage import LATENCY_COLUMNS, Percentiles, UsageSummary, build_summary, sort_summaries
from keel.stores.sqlite_migrations import use_wal

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
_COLS = ", ".join(_COLUMNS)
_SELECT = f"SELECT {_COLS} FROM calls"
_DELETE = "DELETE FROM calls WHERE rowid IN (SELECT rowid FROM calls WHERE ts < ? ORDER BY ts LIMIT ?)"
_GROUP_COLUMN: dict[str, str] = {"feature": "feature", "model": "model", "key": "key_id"}
_PERCENTILES = (0.5, 0.95)
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
                use_wal(db)
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
        try:
            self._in_transaction(lambda db: db.executemany(_INSERT, map(_to_params, rows)))
        except _BAD_ROW as exc:
            raise LedgerWriteError(f"ledger {self.path}: row rejected: {exc}", retryable=False) from exc
        except sqlite3.Error as exc:
            raise LedgerWriteError(f"ledger {self.path}: write failed: {exc}", retryable=True) from exc

    def delete_before(self, ts: float, *, limit: int = 10_000) -> int:
        """Delete up to ``limit`` of the oldest rows with ``ts`` before ``ts``; the number deleted."""
        try:
            deleted: int = self._in_transaction(lambda db: db.execute(_DELETE, (ts, max(limit, 0))).rowcount)
        except sqlite3.Error as exc:
            raise LedgerWriteError(f"ledger {self.path}: delete failed: {exc}", retryable=True) from exc
        return deleted

    def _in_transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` on the write connection inside BEGIN IMMEDIATE … COMMIT (rolled back on error)."""
        with self._lock:
            if self._closed:
                raise LedgerWriteError(f"ledger {self.path} is closed", retryable=False)
            if self._conn is None:
                self._conn = self._connect(check_same_thread=False)
            db = self._conn
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

    def rows(self, *, since: float | None = None, limit: int = 100) -> list[LedgerRow]:
        """The latest ``limit`` rows with ``ts >= since``, newest first."""
        where, params = _since_clause(since)
        with self._reader() as db:
            cur = db.execute(f"{_SELECT}{where} ORDER BY ts DESC, id DESC LIMIT ?", (*params, max(limit, 0)))
            return [_from_db(r) for r in cur]

    def summarize(self, *, since: float | None, by: GroupBy) -> list[UsageSummary]:
        """Totals, savings and p50/p95 latencies (linear interpolation, as percentile_cont) per group."""
        col = _GROUP_COLUMN.get(by)
        if col is None:
            raise ValueError(f"cannot group by {by!r} (expected one of: {', '.join(_GROUP_COLUMN)})")
        where, params = _since_clause(since)
        totals = f"""
            SELECT {col}, COUNT(*), SUM(status = 'error'), SUM(status = 'blocked'), SUM(input_tokens),
                   SUM(output_tokens), SUM(cost_usd), SUM(cache IS NOT NULL),
                   SUM(CASE WHEN cache IS NOT NULL THEN saved_usd ELSE 0 END),
                   SUM(CASE WHEN cache IS NULL THEN saved_usd ELSE 0 END)
            FROM calls{where} GROUP BY {col}
        """
        with self._reader() as db:
            groups = db.execute(totals, params).fetchall()
            pcts: dict[Any, dict[str, Percentiles]] = {}
            for name, column in LATENCY_COLUMNS.items():
                for g, pair in _percentiles(db, col, column, where, params).items():
                    pcts.setdefault(g, {})[name] = pair
        out = [build_summary(g, rest, pcts.get(g, {})) for g, *rest in groups]
        return sort_summaries(out)

    def tail(self, *, after: int | None, limit: int = 100, feature: str | None = None) -> TailPage:
        """Rows stored after rowid ``after``, oldest first (``None``: the last ``limit`` rows)."""
        limit = max(limit, 1)
        where, params = ("", ()) if feature is None else (" AND feature = ?", (feature,))
        with self._reader() as db:
            db.execute("BEGIN")  # one snapshot for the rows and the cursor
            top = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM calls").fetchone()[0]
            if after is None:
                sql = f"SELECT rowid, {_COLS} FROM calls WHERE 1{where} ORDER BY rowid DESC LIMIT ?"
                found = db.execute(sql, (*params, limit)).fetchall()[::-1]
            else:
                # A cursor past the newest row: the table was emptied and rowids started again.
                start = after if after <= top else 0
                sql = f"SELECT rowid, {_COLS} FROM calls WHERE rowid > ?{where} ORDER BY rowid LIMIT ?"
                found = db.execute(sql, (start, *params, limit)).fetchall()
            db.execute("COMMIT")
        # A full page may have more behind it; otherwise every row up to ``top`` was seen (or filtered).
        cursor = found[-1][0] if after is not None and len(found) == limit else top
        return TailPage([_from_db(r[1:]) for r in found], cursor)

    def verdict_stats(self, *, since: float | None, stage: str) -> list[VerdictStats]:
        """Per feature: count, blocks and mean score of the verdicts of ``stage`` and its sub-stages."""
        where, params = _since_clause(since)
        prefix = stage + "."
        sql = f"""
            SELECT c.feature, COUNT(*), SUM(json_extract(v.value, '$.action') = 'block'),
                   COUNT(json_extract(v.value, '$.score')), AVG(json_extract(v.value, '$.score'))
            FROM (SELECT feature, verdicts FROM calls{where}) AS c, json_each(c.verdicts) AS v
            WHERE json_extract(v.value, '$.stage') = ? OR substr(json_extract(v.value, '$.stage'), 1, ?) = ?
            GROUP BY c.feature ORDER BY c.feature
        """
        with self._reader() as db:
            found = db.execute(sql, (*params, stage, len(prefix), prefix)).fetchall()
        return [VerdictStats(f, n, int(b or 0), scored, mean) for f, n, b, scored, mean in found]

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


def _percentiles(
    db: sqlite3.Connection, group: str, column: str, where: str, params: tuple[float, ...]
) -> dict[Any, Percentiles]:
    """p50 and p95 of ``column`` per ``group``, over the rows where it is not null.

    Only the rows next to each percentile's rank come back, not every value.
    """
    filtered = f"{where} AND {column} IS NOT NULL" if where else f" WHERE {column} IS NOT NULL"
    ranks = " OR ".join(
        f"i = CAST((n - 1) * {p} AS INTEGER) OR i = CAST((n - 1) * {p} AS INTEGER) + 1" for p in _PERCENTILES
    )
    ranked = f"""
        SELECT g, i, n, v FROM (
            SELECT {group} AS g, {column} AS v,
                   ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY {column}) - 1 AS i,
                   COUNT(*) OVER (PARTITION BY {group}) AS n
            FROM calls{filtered}
        ) WHERE {ranks}
    """
    near: dict[Any, tuple[int, dict[int, float]]] = {}
    for g, i, n, value in db.execute(ranked, params):
        near.setdefault(g, (n, {}))[1][i] = value
    out: dict[Any, Percentiles] = {}
    for g, (n, values) in near.items():
        p50, p95 = (_interpolate(values, n, p) for p in _PERCENTILES)
        out[g] = (p50, p95)
    return out


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


def _to_params(row: LedgerRow) -> tuple[Any, ...]:
    return (
        row.id, row.ts, row.feature, row.key_id, row.model, row.provider, row.upstream_model,
        row.prompt_name, row.prompt_version, row.status, row.http_status, row.error_code,
        row.input_tokens, row.output_tokens, row.cached_input_tokens, int(row.tokens_estimated),
        row.cost_usd, row.saved_usd, row.latency_ms, row.ttft_ms, row.t_input_ms, row.t_context_ms,
        row.t_llm_ms, row.t_validation_ms, int(row.stream), row.cache, row.route,
        json_text(row.verdicts), json_text(row.counters), json_text(row.metadata),
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
