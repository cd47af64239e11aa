"""Managed API keys: issued by ``keel keys create``, stored hashed, scoped, listable and revocable.

- ``KeyStore`` (``base``): the interface; ``SQLiteKeyStore`` in the settings' SQLite file and
  ``MemoryKeyStore`` for tests pass the same contract suite.
- ``KeyDirectory`` (``directory``): keel.yaml keys plus the store's active keys, in memory,
  reloaded every 2 s, for the gateway and the rate-limit and budget stages.
"""

from __future__ import annotations

from keel.keystore.base import KeySpec, KeyStore, Revision, StoredKey, issue_key, parse_budgets
from keel.keystore.directory import KeyDirectory, KeyLookup
from keel.keystore.memory import MemoryKeyStore
from keel.keystore.sqlite import SQLiteKeyStore
from keel.settings import Settings

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
    "open_key_store",
    "parse_budgets",
]


def open_key_store(settings: Settings) -> KeyStore:
    """The key store ``settings`` name: the SQLite file at ``settings.db_path`` (nothing is created yet)."""
    return SQLiteKeyStore(settings.db_path)


def key_directory(settings: Settings) -> KeyDirectory:
    """Every key the settings' gateway accepts: keel.yaml's ``keys`` and the key store's."""
    return KeyDirectory(settings.keys, open_key_store(settings))
