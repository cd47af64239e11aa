"""The scale-out ledger: one PostgreSQL table that every gateway replica writes and every report reads.

``postgresql://user@host:5432/db?schema=name`` (``schema`` is keel's own parameter: the tables go
there, created when missing; without it, the first schema of the search path). The password
comes from ``PGPASSWORD`` or ``~/.pgpass`` as for any libpq client, so it stays out of keel.yaml.

A batch is one transaction: COPY into a temporary table, then ``INSERT … SELECT … ON CONFLICT (id)
DO NOTHING`` (COPY alone cannot skip stored ids). Each batch first takes a transaction-level
advisory lock, so writers from several replicas take turns: the identity column ``seq`` then
grows in commit order, which makes it a cursor ``tail()`` can follow without missing a row.
The schema grows by numbered migrations recorded in ``_migrations``, as in the SQLite ledger.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

import psycopg

from keel.errors import ConfigError, LedgerWriteError, StateUnavailable
from keel.monitor.ledger import GroupBy, Ledger, LedgerRow, TailPage, VerdictStats, json_text
from keel.monitor.open import describe
from keel.monitor.usage import LATENCY_COLUMNS, Percentiles, UsageSummary, build_summary, sort_summaries
from keel.stores.postgres_migrations import Migration, apply_migrations, check_schema, split_schema

T = TypeVar("T")
MIGRATIONS: list[Migration] = []

_COLUMNS = tuple(f.name for f in fields(LedgerRow))
_COLS = ", ".join(_COLUMNS)
_GROUP_COLUMN: dict[str, str] = {"feature": "feature", "model": "model", "key": "key_id"}
# Errors caused by a row's values: retrying the same rows can never succeed.
_BAD_ROW = (
    psycopg.DataError,
    psycopg.IntegrityError,
    UnicodeEncodeError,
    OverflowError,
    ValueError,
    TypeError,
)


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_create_calls(cur: psycopg.Cursor[Any], s: str) -> None:
    """The ``calls`` table: one row per call, no message content and no API keys; ``seq`` orders storage."""
    cur.execute(
        f"""
        CREATE TABLE {s}.calls (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            id text PRIMARY KEY,
            ts double precision NOT NULL,
            feature text NOT NULL,
            key_id text,
            model text,
            provider text,
            upstream_model text,
            prompt_name text,
            prompt_version text,
            status text NOT NULL,
            http_status integer NOT NULL,
            error_code text,
            input_tokens bigint NOT NULL,
            output_tokens bigint NOT NULL,
            cached_input_tokens bigint NOT NULL,
            tokens_estimated boolean NOT NULL,
            cost_usd double precision NOT NULL,
            saved_usd double precision NOT NULL,
            latency_ms double precision,
            ttft_ms double precision,
            t_input_ms double precision,
            t_context_ms double precision,
            t_llm_ms double precision,
            t_validation_ms double precision,
            stream boolean NOT NULL,
            cache text,
            route text,
            verdicts json NOT NULL,
            counters json NOT NULL,
            metadata json NOT NULL
        )
        """
    )
    cur.execute(f"CREATE UNIQUE INDEX calls_seq ON {s}.calls (seq)")
    cur.execute(f"CREATE INDEX calls_ts ON {s}.calls (ts)")
    cur.execute(f"CREATE INDEX calls_feature_ts ON {s}.calls (feature, ts)")


class PostgresLedger(Ledger):
    """The ledger in a PostgreSQL database: one write connection (the writer thread's), one for reads."""

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 5.0) -> None:
        self.url, from_url = split_schema(url)
        self.display = describe(url)
        self.connect_timeout = connect_timeout
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer: psycopg.Connection[Any] | None = None
        self._reader: psycopg.Connection[Any] | None = None
        self._closed = False
        wanted = schema or from_url
        check_schema(wanted, f"ledger {self.display}")
        try:
            with self._connect() as conn:
                self.schema = apply_migrations(conn, wanted, "ledger", MIGRATIONS, what="ledger")
        except psycopg.Error as exc:
            raise ConfigError(f"ledger {self.display}: cannot open: {_one_line(exc)}") from None
        s = f'"{self.schema}"'
        self._lock_key = zlib.crc32(f"keel.ledger:{self.schema}".encode())
        self._copy = f"COPY pg_temp.keel_calls_in ({_COLS}) FROM STDIN"
        self._insert = (
            f"INSERT INTO {s}.calls ({_COLS}) SELECT {_COLS} FROM pg_temp.keel_calls_in"
            " ON CONFLICT (id) DO NOTHING"
        )
        self._staging = (
            "CREATE TEMP TABLE IF NOT EXISTS keel_calls_in ON COMMIT DELETE ROWS AS "
            f"SELECT {_COLS} FROM {s}.calls WITH NO DATA"
        )
        self._delete = (
            f"DELETE FROM {s}.calls WHERE id IN (SELECT id FROM {s}.calls WHERE ts < %s ORDER BY ts LIMIT %s)"
        )
        self._table = f"{s}.calls"

    # -- writing (the writer thread) ------------------------------------------------------------

    def write(self, rows: Sequence[LedgerRow]) -> None:
        """Insert ``rows`` in one transaction (all or nothing); ids already stored are skipped."""
        if not rows:
            return

        def copy_in(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                with cur.copy(self._copy) as copy:
                    for row in rows:
                        copy.write_row(_to_params(row))
                cur.execute(self._insert)

        self._write(copy_in, "write")

    def delete_before(self, ts: float, *, limit: int = 10_000) -> int:
        """Delete up to ``limit`` of the oldest rows with ``ts`` before ``ts``; the number deleted."""

        def delete(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(self._delete, (ts, max(limit, 0)))
                return cur.rowcount

        return self._write(delete, "delete")

    def _write(self, work: Callable[[psycopg.Connection[Any]], T], what: str) -> T:
        with self._write_lock:
            if self._closed:
                raise LedgerWriteError(f"ledger {self.display} is closed", retryable=False)
            try:
                if self._writer is None:
                    self._writer = self._connect()
                    self._writer.execute(self._staging)
                return work(self._writer)
            except _BAD_ROW as exc:
                raise LedgerWriteError(
                    f"ledger {self.display}: row rejected: {_one_line(exc)}", retryable=False
                ) from exc
            except psycopg.Error as exc:
                self._writer = _discard_if_broken(self._writer)
                raise LedgerWriteError(
                    f"ledger {self.display}: {what} failed: {_one_line(exc)}", retryable=True
                ) from exc

    # -- reading ----------------------------------------------------------------------------------

    def rows(self, *, since: float | None = None, limit: int = 100) -> list[LedgerRow]:
        """The latest ``limit`` rows with ``ts >= since``, newest first."""
        sql = (
            f'SELECT {_COLS} FROM {self._table} WHERE ts >= %s ORDER BY ts DESC, id COLLATE "C" DESC LIMIT %s'
        )
        found = self._read(lambda cur: cur.execute(sql, (_since(since), max(limit, 0))).fetchall())
        return [_from_db(r) for r in found]

    def summarize(self, *, since: float | None, by: GroupBy) -> list[UsageSummary]:
        """Totals, savings and p50/p95 latencies (percentile_cont) per group."""
        col = _GROUP_COLUMN.get(by)
        if col is None:
            raise ValueError(f"cannot group by {by!r} (expected one of: {', '.join(_GROUP_COLUMN)})")
        pcts = ", ".join(
            f"percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY {column})"
            for column in LATENCY_COLUMNS.values()
        )
        sql = f"""
            SELECT {col}, count(*), count(*) FILTER (WHERE status = 'error'),
                   count(*) FILTER (WHERE status = 'blocked'), sum(input_tokens), sum(output_tokens),
                   sum(cost_usd), count(cache), sum(saved_usd) FILTER (WHERE cache IS NOT NULL),
                   sum(saved_usd) FILTER (WHERE cache IS NULL), {pcts}
            FROM {self._table} WHERE ts >= %s GROUP BY {col}
        """
        found = self._read(lambda cur: cur.execute(sql, (_since(since),)).fetchall())
        out = []
        n = len(LATENCY_COLUMNS)
        for group, *values in found:
            totals, arrays = values[:-n], values[-n:]
            percentiles: dict[str, Percentiles] = {
                name: (None, None) if pair is None else (pair[0], pair[1])
                for name, pair in zip(LATENCY_COLUMNS, arrays, strict=True)
            }
            out.append(build_summary(group, totals, percentiles))
        return sort_summaries(out)

    def tail(self, *, after: int | None, limit: int = 100, feature: str | None = None) -> TailPage:
        """Rows stored after ``seq`` ``after``, oldest first (``None``: the last ``limit`` rows)."""
        limit = max(limit, 1)
        where, params = ("", ()) if feature is None else (" AND feature = %s", (feature,))
        table = self._table

        def read(cur: psycopg.Cursor[Any]) -> tuple[int, list[Any]]:
            top = int(cur.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()[0])  # type: ignore[index]
            if after is None:
                sql = f"SELECT seq, {_COLS} FROM {table} WHERE seq <= %s{where} ORDER BY seq DESC LIMIT %s"
                return top, cur.execute(sql, (top, *params, limit)).fetchall()[::-1]
            sql = (
                f"SELECT seq, {_COLS} FROM {table} WHERE seq > %s AND seq <= %s{where} ORDER BY seq LIMIT %s"
            )
            return top, cur.execute(sql, (after, top, *params, limit)).fetchall()

        top, found = self._read(read)
        # Rows up to ``top`` are all committed (writers take turns); a full page may have more behind it.
        cursor = int(found[-1][0]) if after is not None and len(found) == limit else top
        return TailPage([_from_db(r[1:]) for r in found], cursor)

    def verdict_stats(self, *, since: float | None, stage: str) -> list[VerdictStats]:
        """Per feature: count, blocks and mean score of the verdicts of ``stage`` and its sub-stages."""
        sql = f"""
            SELECT c.feature, count(*), count(*) FILTER (WHERE v->>'action' = 'block'), count(v->'score'),
                   avg((v->>'score')::double precision)
            FROM {self._table} AS c, json_array_elements(c.verdicts) AS v
            WHERE c.ts >= %s AND (v->>'stage' = %s OR starts_with(v->>'stage', %s))
            GROUP BY c.feature ORDER BY c.feature COLLATE "C"
        """
        found = self._read(lambda cur: cur.execute(sql, (_since(since), stage, stage + ".")).fetchall())
        return [VerdictStats(f, int(n), int(b), int(k), mean) for f, n, b, k, mean in found]

    def _read(self, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """Run ``work`` on the read connection; once more on a fresh connection if that one had broken."""
        with self._read_lock:
            for retry in (True, False):
                try:
                    if self._reader is None:
                        self._reader = self._connect()
                    with self._reader.cursor() as cur:
                        return work(cur)
                except psycopg.Error as exc:
                    stale = self._reader is not None and (self._reader.broken or self._reader.closed)
                    self._reader = _discard_if_broken(self._reader)
                    if not (retry and stale):
                        message = f"ledger {self.display}: cannot read: {_one_line(exc)}"
                        raise StateUnavailable(message) from None
            raise AssertionError("unreachable")

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close both connections; idempotent."""
        with self._write_lock:
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(int(self.connect_timeout), 1),
            application_name="keel-ledger",
        )

    def __repr__(self) -> str:
        return f"PostgresLedger({self.display!r}, schema={self.schema!r})"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _discard_if_broken(conn: psycopg.Connection[Any] | None) -> psycopg.Connection[Any] | None:
    """Close and forget a connection that can no longer be used; keep a healthy one."""
    if conn is None or not (conn.broken or conn.closed):
        return conn
    conn.close()
    return None


def _since(since: float | None) -> float:
    return float("-inf") if since is None else since


def _to_params(row: LedgerRow) -> tuple[Any, ...]:
    return (
        row.id, row.ts, row.feature, row.key_id, row.model, row.provider, row.upstream_model,
        row.prompt_name, row.prompt_version, row.status, row.http_status, row.error_code,
        row.input_tokens, row.output_tokens, row.cached_input_tokens, row.tokens_estimated,
        row.cost_usd, row.saved_usd, row.latency_ms, row.ttft_ms, row.t_input_ms, row.t_context_ms,
        row.t_llm_ms, row.t_validation_ms, row.stream, row.cache, row.route,
        json_text(row.verdicts), json_text(row.counters), json_text(row.metadata),
    )  # fmt: skip


def _from_db(values: Sequence[Any]) -> LedgerRow:
    return LedgerRow(**dict(zip(_COLUMNS, values, strict=True)))
