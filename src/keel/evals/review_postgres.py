"""The review queue in PostgreSQL, so every gateway replica samples into, and reviewers read, one queue.

``review.store: postgresql://user@host:5432/db[?schema=name]`` (the password from PGPASSWORD or
~/.pgpass). The table is created when missing, under an advisory lock so that replicas starting
together take turns; its migrations are recorded as ``review.*`` in the schema's ``_migrations``.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from keel.errors import ConfigError, StateUnavailable
from keel.evals.review import ReviewStore

T = TypeVar("T")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
Migration = Callable[[psycopg.Cursor[Any], str], None]
MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_create_review_items(cur: psycopg.Cursor[Any], s: str) -> None:
    """Items and their labels, as in the SQLite store."""
    cur.execute(
        f"""
        CREATE TABLE {s}.review_items (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            call_id text NOT NULL UNIQUE,
            ts double precision NOT NULL,
            feature text NOT NULL,
            key_id text,
            model text,
            prompt_version text,
            source text NOT NULL,
            messages text NOT NULL,
            variables text NOT NULL,
            answer text,
            status text NOT NULL DEFAULT 'pending',
            verdict text,
            score double precision,
            note text,
            corrected text,
            reviewer text,
            reviewed_at double precision
        )
        """
    )
    cur.execute(f"CREATE INDEX review_items_status ON {s}.review_items (status, feature, ts)")


class PostgresReviewStore(ReviewStore):
    """The review queue in a PostgreSQL schema, over one connection guarded by a lock."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        schema = next((v for k, v in query if k == "schema"), None)
        self.url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
        netloc = parts.netloc if parts.password is None else parts.netloc.replace(parts.password, "***", 1)
        self.where = f"review queue {urlunsplit(parts._replace(netloc=netloc))}"
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ConfigError(f"{self.where}: schema {schema!r}: use letters, digits and _")
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        try:
            with self._connect() as conn:
                self.schema = _migrate(conn, schema)
        except psycopg.Error as exc:
            raise ConfigError(f"{self.where}: cannot open: {' '.join(str(exc).split())}") from None
        self._table = f'"{self.schema}".review_items'

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(int(self.connect_timeout), 1),
            application_name="keel-review",
            row_factory=dict_row,
        )

    def _sql(self, sql: str) -> str:
        return sql.replace("review_items", self._table).replace("?", "%s")

    def _run(self, work: Callable[[psycopg.Connection[dict[str, Any]]], T]) -> T:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                return work(self._conn)
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.broken or self._conn.closed):
                    self._conn = None
                raise StateUnavailable(f"{self.where}: {' '.join(str(exc).split())}") from None

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._run(lambda c: c.execute(self._sql(sql), tuple(params)).fetchall())

    def _change(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._run(lambda c: c.execute(self._sql(sql), tuple(params)).rowcount)

    def _insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        def insert(conn: psycopg.Connection[dict[str, Any]]) -> int:
            added = 0
            with conn.transaction(), conn.cursor() as cur:
                for row in rows:
                    added += cur.execute(self._sql(sql), tuple(row)).rowcount
            return added

        return self._run(insert)

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _migrate(conn: psycopg.Connection[Any], schema: str | None) -> str:
    """Create the schema when named and apply the migrations not yet recorded; the schema used."""
    if schema is None:
        row = conn.execute("SELECT current_schema() AS s").fetchone()
        if row is None or row["s"] is None:
            raise ConfigError("no schema on the search path: add ?schema=name to the review store URL")
        schema = str(row["s"])
    s = f'"{schema}"'
    key = zlib.crc32(f"keel.migrations:{schema}".encode())
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {s}._migrations"
            " (name text PRIMARY KEY, applied_at double precision NOT NULL)"
        )
        for fn in MIGRATIONS:
            name = f"review.{fn.__name__}"
            if cur.execute(f"SELECT 1 FROM {s}._migrations WHERE name = %s", (name,)).fetchone() is None:
                fn(cur, s)
                cur.execute(
                    f"INSERT INTO {s}._migrations (name, applied_at) VALUES (%s, %s)", (name, time.time())
                )
    return schema
