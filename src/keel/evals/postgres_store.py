"""Eval runs and the output cache in PostgreSQL (``evals.store: postgresql://…?schema=name``), shared by
every machine that runs suites, so ``keel eval compare`` and ``keel audit`` see every team's runs.

Writers take a transaction-level advisory lock, so run sequence numbers (``latest``, ``latest~1``)
follow commit order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg

from keel.errors import ConfigError
from keel.evals.store import _SCHEMA, EvalStore, Writer
from keel.stores.postgres_migrations import check_schema, split_schema

_LOCK_KEY = 0x6B65656C65  # "keele": the advisory lock of eval-store writes


class PostgresEvalStore(EvalStore):
    """The eval store's three tables in one PostgreSQL schema."""

    def __init__(self, url: str) -> None:
        conninfo, schema = split_schema(url)
        check_schema(schema, "eval store")
        parts = urlsplit(conninfo)
        self.where = f"{parts.hostname}:{parts.port or 5432}{parts.path}" + (
            f"?schema={schema}" if schema else ""
        )
        try:
            self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise ConfigError(
                f"eval store {self.where}: cannot connect: {' '.join(str(exc).split())}"
            ) from None
        self._lock = threading.Lock()

        def create(w: Writer) -> None:  # under the advisory lock: concurrent first uses do not collide
            if schema:
                w(f'CREATE SCHEMA IF NOT EXISTS "{schema}"', [()])
                w(f'SET search_path TO "{schema}"', [()])  # for the session, once committed
            for statement in _SCHEMA:
                w(statement, [()])

        try:
            self._write(create)
        except BaseException:
            self._conn.close()
            raise

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql.replace("?", "%s"), tuple(args)).fetchall()
            except psycopg.OperationalError as exc:
                raise ConfigError(f"eval store {self.where}: {' '.join(str(exc).split())}") from None

    def _write(self, build: Callable[[Writer], None]) -> None:
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                    build(lambda sql, rows: cur.executemany(sql.replace("?", "%s"), rows))
            except psycopg.OperationalError as exc:
                raise ConfigError(f"eval store {self.where}: {' '.join(str(exc).split())}") from None

    def close(self) -> None:
        self._conn.close()
