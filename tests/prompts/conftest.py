"""Prompt-registry fixtures: one contract, run on SQLite and on the real PostgreSQL (a schema per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from keel.prompts.open import open_registry
from keel.prompts.registry import PromptRegistry

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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A registry URL with a fresh schema of its own, dropped afterwards."""
    base = postgres_or_skip()
    schema = f"keel_prompts_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{base}?schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def registry_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a registry lives, once per backend."""
    if request.param == "sqlite":
        return tmp_path / "keel.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def registry(registry_target: str | Path) -> Iterator[PromptRegistry]:
    with open_registry(registry_target) as reg:
        yield reg
