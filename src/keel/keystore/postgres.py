"""Managed API keys in PostgreSQL, so every gateway replica accepts (and refuses) the same keys.

``key_store: postgresql://user@host:5432/db[?schema=name]`` (the password from PGPASSWORD or
~/.pgpass, as for any libpq client). The ``api_keys`` table has the SQLite store's columns; a
partial unique index keeps names unique among active keys, so two ``keel keys create`` racing
for one name cannot both win. Migrations are recorded as ``keys.*`` in the schema's
``_migrations`` table, under an advisory lock so that replicas starting together take turns.
Operations are rare (the CLI writes, each gateway reads a two-number revision every 2 s), so
each opens its own short connection: nothing is held open between them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from keel.errors import InvalidRequest, StateUnavailable
from keel.keystore.base import KeyStore, Revision, StoredKey, revoked
from keel.keystore.rows import COLUMNS, from_row, to_row
from keel.stores.postgres_migrations import Migration, apply_migrations, check_schema

MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_create_api_keys(cur: psycopg.Cursor[Any], s: str) -> None:
    """The ``api_keys`` table, as in the SQLite store: hash, prefix, scopes, lifetime; never the key."""
    cur.execute(
        f"""
        CREATE TABLE {s}.api_keys (
            id text PRIMARY KEY,
            name text NOT NULL,
            hash text NOT NULL UNIQUE,
            prefix text NOT NULL,
            features text,
            models text,
            admin integer NOT NULL,
            rpm integer,
            tpm integer,
            usd_per_day double precision,
            usd_per_month double precision,
            created_at double precision NOT NULL,
            revoked_at double precision
        )
        """
    )
    cur.execute(f"CREATE UNIQUE INDEX api_keys_active_name ON {s}.api_keys (name) WHERE revoked_at IS NULL")


class PostgresKeyStore(KeyStore):
    """Managed keys in a PostgreSQL schema (the first of the search path unless ``?schema=`` names one)."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        wanted = next((v for k, v in query if k == "schema"), None)
        self.url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
        netloc = parts.netloc if parts.password is None else parts.netloc.replace(parts.password, "***", 1)
        self.where = f"key store {urlunsplit(parts._replace(netloc=netloc))}"
        check_schema(wanted, self.where)
        self.connect_timeout = connect_timeout
        self._wanted = wanted
        self._schema: str | None = None  # known once migrated (on the first operation)

    def add(self, key: StoredKey) -> None:
        """Insert ``key``; InvalidRequest when an active key has the same name."""
        with self._cursor() as (cur, s):
            try:
                cur.execute(
                    f"INSERT INTO {s}.api_keys ({COLUMNS}) VALUES ({', '.join(['%s'] * 13)})", to_row(key)
                )
            except psycopg.errors.UniqueViolation:
                raise InvalidRequest(
                    f"an active key named {key.name!r} already exists; revoke it or choose another name"
                ) from None

    def list_keys(self, *, include_revoked: bool = False) -> list[StoredKey]:
        """Active keys (or all of them), oldest first."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self._cursor() as (cur, s):
            rows = cur.execute(
                f"SELECT {COLUMNS} FROM {s}.api_keys{where} ORDER BY created_at, id"
            ).fetchall()
        return [from_row(r) for r in rows]

    def revoke(self, name: str, *, now: float | None = None) -> StoredKey:
        """Set the revocation time of the active key called ``name`` (one statement: atomic)."""
        when = time.time() if now is None else now
        with self._cursor() as (cur, s):
            row = cur.execute(
                f"UPDATE {s}.api_keys SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL "
                f"RETURNING {COLUMNS}",
                (when, name),
            ).fetchone()
        if row is None:
            raise InvalidRequest(f"no active key named {name!r} (see: keel keys list)")
        return revoked(from_row(row), when)

    def revision(self) -> Revision:
        """Keys ever created and keys revoked: both only grow, so any change shows."""
        with self._cursor() as (cur, s):
            row = cur.execute(f"SELECT COUNT(*), COUNT(revoked_at) FROM {s}.api_keys").fetchone()
        assert row is not None  # an aggregate always returns a row
        return Revision(int(row[0]), int(row[1]))

    def close(self) -> None:
        """Nothing stays open between operations."""

    @contextmanager
    def _cursor(self) -> Iterator[tuple[psycopg.Cursor[Any], str]]:
        """A cursor on a fresh autocommit connection, and the quoted schema; StateUnavailable on failure."""
        try:
            with psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(int(self.connect_timeout), 1),
                application_name="keel-keys",
            ) as conn:
                if self._schema is None:
                    self._schema = apply_migrations(conn, self._wanted, "keys", MIGRATIONS, what="key_store")
                with conn.cursor() as cur:
                    yield cur, f'"{self._schema}"'
        except psycopg.Error as exc:
            raise StateUnavailable(f"{self.where}: {' '.join(str(exc).split())}") from None

    @property
    def location(self) -> str:
        """The URL without its password (and the schema, when named)."""
        return self.where.removeprefix("key store ")

    def __repr__(self) -> str:
        return f"PostgresKeyStore({self.location!r})"
