"""Numbered migrations for the embedded SQLite stores, recorded by name in one ``_migrations`` table,
and the switch of a store's file to WAL.

A store keeps its migrations as a list of small functions and applies them with its own name
prefix (``review.m001_...``), so several stores share one file without stepping on each other.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

Migration = Callable[[sqlite3.Connection], None]


def use_wal(db: sqlite3.Connection, timeout: float = 10.0) -> None:
    """Put ``db``'s file in WAL mode. While another connection holds the file (two stores opening
    a new file at once), the switch answers "database is locked" at once, without SQLite's busy
    timeout, so it is retried here for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def apply_migrations(db: sqlite3.Connection, prefix: str, migrations: Sequence[Migration]) -> None:
    """Apply the migrations not yet recorded, each in its own transaction with its record.

    ``db`` must be in autocommit mode (``isolation_level=None``). Each check is repeated under
    the write lock, so two processes that start together apply a migration once.
    """
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for fn in migrations:
        name = f"{prefix}.{fn.__name__}"
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone() is None:
                fn(db)
                db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
