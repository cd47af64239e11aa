"""The prompt registry in PostgreSQL, shared by every gateway replica and CLI.

``postgresql://user@host:5432/db?schema=name``: ``schema`` is keel's own parameter (the tables go
there, created when missing). Writers serialise on a transaction-level advisory lock, so version
numbers stay dense and label events keep their order across replicas.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psycopg

from keel.errors import ConfigError
from keel.prompts.registry import FIRST_LABEL, LabelEvent, PromptRegistry, PromptVersion
from keel.stores.postgres_migrations import check_schema, split_schema

_LOCK_KEY = 0x6B65656C70  # "keelp": the advisory lock of registry writes


def _m001(cur: psycopg.Cursor[Any], s: str) -> None:
    cur.execute(
        f"""
        CREATE TABLE {s}prompt_versions (
            name TEXT NOT NULL, number INTEGER NOT NULL, hash TEXT NOT NULL, text TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, note TEXT NOT NULL DEFAULT '', PRIMARY KEY (name, number));
        CREATE TABLE {s}prompt_labels (
            name TEXT NOT NULL, label TEXT NOT NULL, number INTEGER NOT NULL, PRIMARY KEY (name, label));
        CREATE TABLE {s}prompt_label_events (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL,
            number INTEGER NOT NULL, previous INTEGER, at DOUBLE PRECISION NOT NULL,
            actor TEXT NOT NULL DEFAULT '');
        """
    )


MIGRATIONS: list[Callable[[psycopg.Cursor[Any], str], None]] = [_m001]


class PostgresPromptRegistry(PromptRegistry):
    """Versions and labels in three PostgreSQL tables; numbered migrations in ``_prompt_migrations``."""

    def __init__(self, url: str) -> None:
        conninfo, schema = split_schema(url)
        check_schema(schema, "prompt registry")
        parts = urlsplit(conninfo)
        self.where = f"{parts.hostname}:{parts.port or 5432}{parts.path}" + (
            f"?schema={schema}" if schema else ""
        )
        self._s = f'"{schema}".' if schema else ""
        self._conninfo = conninfo
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            raise ConfigError(
                f"prompt registry {self.where}: cannot connect: {' '.join(str(exc).split())}"
            ) from None
        self._lock = threading.Lock()
        with self._tx() as cur:
            if schema:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._s}_prompt_migrations (number INTEGER PRIMARY KEY)"
            )
            cur.execute(f"SELECT number FROM {self._s}_prompt_migrations")
            done = {r[0] for r in cur.fetchall()}
            for i, migration in enumerate(MIGRATIONS, start=1):
                if i not in done:
                    migration(cur, self._s)
                    cur.execute(f"INSERT INTO {self._s}_prompt_migrations VALUES (%s)", (i,))

    def _tx(self) -> _Transaction:
        return _Transaction(self)

    def _add_version(self, name: str, text: str, hash_: str, note: str) -> tuple[PromptVersion, bool]:
        s, now = self._s, time.time()
        with self._tx() as cur:
            cur.execute(
                f"SELECT name, number, hash, text, created_at, note FROM {s}prompt_versions "
                "WHERE name = %s ORDER BY number DESC LIMIT 1",
                (name,),
            )
            latest = cur.fetchone()
            if latest is not None and latest[2] == hash_:  # another writer registered it meanwhile
                return PromptVersion(*latest), False
            number = (latest[1] if latest else 0) + 1
            cur.execute(
                f"INSERT INTO {s}prompt_versions VALUES (%s, %s, %s, %s, %s, %s)",
                (name, number, hash_, text, now, note),
            )
            if number == 1:
                self._label(cur, name, FIRST_LABEL, 1, now, "first version")
        return PromptVersion(name, number, hash_, text, now, note), True

    def _label(
        self, cur: psycopg.Cursor[Any], name: str, label: str, number: int, at: float, actor: str
    ) -> LabelEvent:
        s = self._s
        cur.execute(f"SELECT number FROM {s}prompt_labels WHERE name = %s AND label = %s", (name, label))
        row = cur.fetchone()
        previous = row[0] if row else None
        cur.execute(
            f"INSERT INTO {s}prompt_labels VALUES (%s, %s, %s) "
            "ON CONFLICT (name, label) DO UPDATE SET number = EXCLUDED.number",
            (name, label, number),
        )
        cur.execute(
            f"INSERT INTO {s}prompt_label_events (name, label, number, previous, at, actor) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (name, label, number, previous, at, actor),
        )
        return LabelEvent(name, label, number, previous, at, actor)

    def _move_label(self, name: str, label: str, number: int, actor: str) -> LabelEvent:
        with self._tx() as cur:
            return self._label(cur, name, label, number, time.time(), actor)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # A gateway polls for label moves for as long as it runs: a dropped connection (a database
        # restart, a failover) is opened again once before the read is given up as an error.
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn.closed:
                        self._conn = self._connect()
                    with self._conn.cursor() as cur:
                        cur.execute(sql, args)
                        return cur.fetchall()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    if attempt == 2:
                        raise ConfigError(
                            f"prompt registry {self.where}: {' '.join(str(exc).split())}"
                        ) from None
                    self._conn.close()
            raise AssertionError("unreachable")  # the loop returns or raises

    def versions(self, name: str) -> list[PromptVersion]:
        rows = self._read(
            f"SELECT name, number, hash, text, created_at, note FROM {self._s}prompt_versions "
            "WHERE name = %s ORDER BY number",
            (name,),
        )
        return [PromptVersion(*r) for r in rows]

    def names(self) -> list[str]:
        return [r[0] for r in self._read(f"SELECT DISTINCT name FROM {self._s}prompt_versions ORDER BY name")]

    def labels(self, name: str) -> dict[str, int]:
        rows = self._read(f"SELECT label, number FROM {self._s}prompt_labels WHERE name = %s", (name,))
        return {r[0]: r[1] for r in rows}

    def history(self, name: str) -> list[LabelEvent]:
        rows = self._read(
            f"SELECT name, label, number, previous, at, actor FROM {self._s}prompt_label_events "
            "WHERE name = %s ORDER BY id",
            (name,),
        )
        return [LabelEvent(*r) for r in rows]

    def revision(self) -> int:
        s = self._s
        rows = self._read(
            f"SELECT (SELECT coalesce(max(id), 0) FROM {s}prompt_label_events), "
            f"(SELECT count(*) FROM {s}prompt_versions)"
        )
        return int(rows[0][0]) * 1_000_000 + int(rows[0][1])

    def close(self) -> None:
        self._conn.close()


class _Transaction:
    """One write transaction under the registry's advisory lock."""

    def __init__(self, registry: PostgresPromptRegistry) -> None:
        self.r = registry
        self._tx: Any = None
        self._cur: psycopg.Cursor[Any] | None = None

    def __enter__(self) -> psycopg.Cursor[Any]:
        self.r._lock.acquire()
        try:
            self._tx = self.r._conn.transaction()
            self._tx.__enter__()
            self._cur = self.r._conn.cursor()
            self._cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        except psycopg.Error as exc:
            self.r._lock.release()
            raise ConfigError(f"prompt registry {self.r.where}: {' '.join(str(exc).split())}") from None
        return self._cur

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: Any) -> None:
        try:
            if self._cur is not None:
                self._cur.close()
            self._tx.__exit__(et, ev, tb)
        finally:
            self.r._lock.release()
