"""Open the prompt registry a configuration names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from keel.prompts.registry import PromptRegistry

if TYPE_CHECKING:
    from keel.settings import Settings

_POSTGRES = ("postgresql://", "postgres://")


def open_registry(target: str | Path) -> PromptRegistry:
    """PostgreSQL for a ``postgresql://`` URL, else a SQLite file."""
    if isinstance(target, str) and target.startswith(_POSTGRES):
        from keel.prompts.postgres_registry import PostgresPromptRegistry  # psycopg loads only when used

        return PostgresPromptRegistry(target)
    from keel.prompts.sqlite_registry import SQLitePromptRegistry

    return SQLitePromptRegistry(Path(target))


def registry_target(settings: Settings) -> str | Path:
    """``prompts.registry`` (a relative path against the config file), else keel's state file."""
    configured = settings.prompts.registry
    if configured is None:
        return settings.db_path
    if configured.startswith(_POSTGRES):
        return configured
    return settings.resolve(Path(configured))


def settings_registry(settings: Settings) -> PromptRegistry:
    """The registry of ``settings``, with ``prompts_dir`` synced into it when ``prompts.sync`` is on."""
    registry = open_registry(registry_target(settings))
    if settings.prompts.sync:
        try:
            registry.sync_dir(settings.resolve(settings.prompts_dir))
        except BaseException:
            registry.close()
            raise
    return registry
