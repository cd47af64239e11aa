"""The review queue in a SQLite file (WAL): the table ``review_items`` beside keel's other embedded state.

Migrations are recorded as ``review.*`` in the file's shared ``_migrations`` table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from keel.errors import ConfigError
from keel.evals.review import ReviewStore
from keel.stores.sqlite_migrations import Migration, apply_migrations, use_wal

MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_create_review_items(db: sqlite3.Connection) -> None:
    """Items and their labels; ``status`` is pending until a reviewer labels the item."""
    db.execute(
        """
        CREATE TABLE review_items (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            call_id TEXT NOT NULL UNIQUE,
            ts REAL NOT NULL,
            feature TEXT NOT NULL,
            key_id TEXT,
            model TEXT,
            prompt_version TEXT,
            source TEXT NOT NULL,
            messages TEXT NOT NULL,
            variables TEXT NOT NULL,
            answer TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            verdict TEXT,
            score REAL,
            note TEXT,
            corrected TEXT,
            reviewer TEXT,
            reviewed_at REAL
        )
        """
    )
    db.execute("CREATE INDEX review_items_status ON review_items (status, feature, ts)")


class SQLiteReviewStore(ReviewStore):
    """The review queue in a SQLite file; a connection per operation, so any thread may use it."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.where = f"review queue {self.path}"
        self.busy_timeout = busy_timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db:
                use_wal(db, self.busy_timeout)
                apply_migrations(db, "review", MIGRATIONS)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.where}: cannot open: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(self._connect()) as db:
                yield db
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.where}: {exc}") from None

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._db() as db:
            return [dict(r) for r in db.execute(sql, tuple(params))]

    def _change(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._db() as db:
            return db.execute(sql, tuple(params)).rowcount

    def close(self) -> None:
        """Nothing to release: each operation opens and closes its own connection."""

    def _insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            before = db.total_changes
            try:
                db.executemany(sql, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            added = db.total_changes - before
            db.execute("COMMIT")
            return added
