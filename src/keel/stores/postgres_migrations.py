"""Numbered migrations for the PostgreSQL stores, recorded by name in the schema's ``_migrations``.

The PostgreSQL counterpart of ``keel.stores.sqlite_migrations``: a store keeps its migrations as a
list of small functions ``fn(cursor, quoted_schema)`` and applies them with its own name prefix
(``ledger.m001_...``, ``keys.m001_...``), so several stores share one schema. Every step holds a
transaction-scoped advisory lock on the schema: replicas that start together take turns, and each
migration is applied once.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import tuple_row

from keel.errors import ConfigError

Migration = Callable[[psycopg.Cursor[Any], str], None]


def apply_migrations(
    conn: psycopg.Connection[Any],
    schema: str | None,
    prefix: str,
    migrations: Sequence[Migration],
    *,
    what: str,
) -> str:
    """Create ``schema`` when named, apply the migrations not yet recorded; return the schema used.

    With ``schema`` None the first schema of the search path is used; ``what`` names the setting
    in the error when there is none (``ledger``, ``key_store``).
    """
    create = schema is not None
    if schema is None:
        with conn.cursor(row_factory=tuple_row) as cur:  # whatever rows the connection makes
            row = cur.execute("SELECT current_schema()").fetchone()
        if row is None or row[0] is None:
            raise ConfigError(f"no schema on the search path: add ?schema=name to the {what} URL")
        schema = str(row[0])
    s = f'"{schema}"'
    lock = zlib.crc32(f"keel.migrations:{schema}".encode())
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        if create:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}._migrations"
            " (name text PRIMARY KEY, applied_at double precision NOT NULL)"
        )
    for fn in migrations:
        name = f"{prefix}.{fn.__name__}"
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            if cur.execute(f"SELECT 1 FROM {s}._migrations WHERE name = %s", (name,)).fetchone() is None:
                fn(cur, s)
                cur.execute(
                    f"INSERT INTO {s}._migrations (name, applied_at) VALUES (%s, %s)", (name, time.time())
                )
    return schema


def split_schema(url: str) -> tuple[str, str | None]:
    """The URL without keel's ``schema`` query parameter (libpq would refuse it), and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_schema(schema: str | None, where: str) -> None:
    """ConfigError naming ``where`` unless ``schema`` (when given) is a plain SQL identifier."""
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ConfigError(f"{where}: schema {schema!r}: use letters, digits and _")
