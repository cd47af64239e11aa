"""Prompt-registry fixtures: one contract, run on SQLite and on the real PostgreSQL (a schema per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.pg_schema import fresh_schema

from keel.prompts.open import open_registry
from keel.prompts.registry import PromptRegistry


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A registry URL with a fresh schema of its own, dropped afterwards."""
    with fresh_schema("keel_prompts") as url:
        yield url


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
