"""The test PostgreSQL for contract suites: reachable or skipped (failed when CI is set), and a fresh
schema per test, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

POSTGRES_URL = os.environ.get("KEEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_or_skip() -> str:
    """The test server's URL; skipped with the reason when unreachable, unless CI is set (then it fails)."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is unreachable at {POSTGRES_URL} and CI is set: {reason}")
        pytest.skip(f"PostgreSQL is unreachable at {POSTGRES_URL} ({reason}); with CI set this fails")
    return POSTGRES_URL


@contextmanager
def fresh_schema(prefix: str = "keel_test") -> Iterator[str]:
    """A URL with ``?schema=<prefix>_<random>``, the schema dropped afterwards."""
    base = postgres_or_skip()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{base}?schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
