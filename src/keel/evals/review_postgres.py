"""The review queue in PostgreSQL, so every gateway replica samples into, and reviewers read, one queue.

``review.store: postgresql://user@host:5432/db[?schema=name]`` (the password from PGPASSWORD or
~/.pgpass). The table is created when missing, under an advisory lock so that replicas starting
together take turns; its migrations are recorded as ``review.*`` in the schema's ``_migrations``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from keel.errors import ConfigError, StateUnavailable
from keel.evals.review import ReviewStore
from keel.stores.postgres_migrations import Migration, apply_migrations, check_schema, split_schema

T = TypeVar("T")
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
        self.url, schema = split_schema(url)
        parts = urlsplit(url)
        netloc = parts.netloc if parts.password is None else parts.netloc.replace(parts.password, "***", 1)
        self.where = f"review queue {urlunsplit(parts._replace(netloc=netloc))}"
        check_schema(schema, self.where)
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        try:
            with self._connect() as conn:
                self.schema = apply_migrations(conn, schema, "review", MIGRATIONS, what="review store")
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
