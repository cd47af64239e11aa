"""Managed API keys: issued by ``keel keys create``, stored hashed, scoped, listable and revocable.

- ``KeyStore`` (``base``): the interface; ``SQLiteKeyStore`` (the settings' SQLite file, the
  default), ``PostgresKeyStore`` (``key_store: postgresql://...``, shared by replicas) and
  ``MemoryKeyStore`` (for tests) pass the same contract suite.
- ``KeyDirectory`` (``directory``): keel.yaml keys plus the store's active keys, in memory,
  reloaded every 2 s, for the gateway and the rate-limit and budget stages.
"""

from __future__ import annotations

from pathlib import Path

from keel.errors import ConfigError
from keel.keystore.base import KeySpec, KeyStore, Revision, StoredKey, issue_key, parse_budgets
from keel.keystore.directory import KeyDirectory, KeyLookup
from keel.keystore.memory import MemoryKeyStore
from keel.keystore.sqlite import SQLiteKeyStore
from keel.settings import Settings

_POSTGRES = ("postgresql://", "postgres://")

__all__ = [
    "KeyDirectory",
    "KeyLookup",
    "KeySpec",
    "KeyStore",
    "MemoryKeyStore",
    "Revision",
    "SQLiteKeyStore",
    "StoredKey",
    "issue_key",
    "key_directory",
    "key_store_target",
    "open_key_store",
    "parse_budgets",
]


def key_store_target(settings: Settings) -> str | Path:
    """Where ``settings`` keep managed keys: ``key_store`` (a ``postgresql://`` URL, or a SQLite file
    relative to the config file), else the SQLite file at ``storage.path``."""
    target = settings.key_store
    if target is None:
        return settings.db_path
    return target if target.startswith(_POSTGRES) else settings.resolve(Path(target))


def open_key_store(settings: Settings) -> KeyStore:
    """The key store ``settings`` name (nothing is created or connected yet)."""
    target = key_store_target(settings)
    if isinstance(target, Path):
        return SQLiteKeyStore(target)
    try:  # psycopg loads only when a PostgreSQL key store is configured
        from keel.keystore.postgres import PostgresKeyStore
    except ImportError as exc:
        raise ConfigError(
            f"key_store: PostgreSQL needs psycopg ({exc.name} is not installed); pip install 'keel[postgres]'"
        ) from None
    return PostgresKeyStore(target)


def key_directory(settings: Settings) -> KeyDirectory:
    """Every key the settings' gateway accepts: keel.yaml's ``keys`` and the key store's."""
    return KeyDirectory(settings.keys, open_key_store(settings))
