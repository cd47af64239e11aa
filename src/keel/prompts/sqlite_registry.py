"""The prompt registry in a SQLite file (WAL), beside the ledger in keel's state file by default."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from keel.errors import ConfigError
from keel.prompts.registry import FIRST_LABEL, LabelEvent, PromptRegistry, PromptVersion
from keel.stores.sqlite_migrations import use_wal

Migration = Callable[[sqlite3.Connection], None]


def _m001(db: sqlite3.Connection) -> None:
    # One statement at a time: executescript() would commit the migration's transaction half-way.
    script = """
        CREATE TABLE prompt_versions (
            name TEXT NOT NULL, number INTEGER NOT NULL, hash TEXT NOT NULL, text TEXT NOT NULL,
            created_at REAL NOT NULL, note TEXT NOT NULL DEFAULT '', PRIMARY KEY (name, number));
        CREATE TABLE prompt_labels (
            name TEXT NOT NULL, label TEXT NOT NULL, number INTEGER NOT NULL, PRIMARY KEY (name, label));
        CREATE TABLE prompt_label_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, label TEXT NOT NULL,
            number INTEGER NOT NULL, previous INTEGER, at REAL NOT NULL, actor TEXT NOT NULL DEFAULT '');
        """
    for statement in filter(str.strip, script.split(";")):
        db.execute(statement)


MIGRATIONS: list[Migration] = [_m001]


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking SQLite's write lock at the start (BEGIN IMMEDIATE)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection) -> None:
    with immediate(db):  # the write lock first: concurrent writers take turns
        db.execute("CREATE TABLE IF NOT EXISTS _prompt_migrations (number INTEGER PRIMARY KEY)")
        done = {r[0] for r in db.execute("SELECT number FROM _prompt_migrations")}
        for i, migration in enumerate(MIGRATIONS, start=1):
            if i not in done:
                migration(db)
                db.execute("INSERT INTO _prompt_migrations VALUES (?)", (i,))


def open_sqlite(path: Path, what: str, setup: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
    """An autocommit WAL connection to ``path`` with ``setup`` run on it; ConfigError names ``what``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        use_wal(db)
        setup(db)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"{path}: cannot open the {what}: {exc}") from None
    return db


class SQLitePromptRegistry(PromptRegistry):
    """Versions and labels in three tables of a SQLite file; numbered migrations in ``_prompt_migrations``."""

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        self._db = open_sqlite(path, "prompt registry", _migrate)
        self._lock = threading.Lock()

    def _add_version(self, name: str, text: str, hash_: str, note: str) -> tuple[PromptVersion, bool]:
        now = time.time()
        with self._lock:
            db = self._db
            with immediate(db):  # the write lock first: concurrent writers take turns
                latest = db.execute(
                    "SELECT name, number, hash, text, created_at, note FROM prompt_versions WHERE name = ? "
                    "ORDER BY number DESC LIMIT 1",
                    (name,),
                ).fetchone()
                if latest is not None and latest[2] == hash_:  # another writer registered it meanwhile
                    return PromptVersion(*latest), False
                number = (latest[1] if latest else 0) + 1
                db.execute(
                    "INSERT INTO prompt_versions VALUES (?, ?, ?, ?, ?, ?)",
                    (name, number, hash_, text, now, note),
                )
                if number == 1:
                    self._label(db, name, FIRST_LABEL, 1, now, "first version")
        return PromptVersion(name, number, hash_, text, now, note), True

    @staticmethod
    def _label(
        db: sqlite3.Connection, name: str, label: str, number: int, at: float, actor: str
    ) -> LabelEvent:
        row = db.execute(
            "SELECT number FROM prompt_labels WHERE name = ? AND label = ?", (name, label)
        ).fetchone()
        previous = row[0] if row else None
        db.execute("INSERT OR REPLACE INTO prompt_labels VALUES (?, ?, ?)", (name, label, number))
        db.execute(
            "INSERT INTO prompt_label_events (name, label, number, previous, at, actor) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name, label, number, previous, at, actor),
        )
        return LabelEvent(name, label, number, previous, at, actor)

    def _move_label(self, name: str, label: str, number: int, actor: str) -> LabelEvent:
        with self._lock:
            db = self._db
            with immediate(db):  # the write lock first: concurrent writers take turns
                event = self._label(db, name, label, number, time.time(), actor)
        return event

    def versions(self, name: str) -> list[PromptVersion]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, number, hash, text, created_at, note FROM prompt_versions WHERE name = ? "
                "ORDER BY number",
                (name,),
            ).fetchall()
        return [PromptVersion(*r) for r in rows]

    def names(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT name FROM prompt_versions ORDER BY name").fetchall()
        return [r[0] for r in rows]

    def labels(self, name: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT label, number FROM prompt_labels WHERE name = ?", (name,)
            ).fetchall()
        return dict(rows)

    def history(self, name: str) -> list[LabelEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, label, number, previous, at, actor FROM prompt_label_events WHERE name = ? "
                "ORDER BY id",
                (name,),
            ).fetchall()
        return [LabelEvent(*r) for r in rows]

    def revision(self) -> int:
        with self._lock:
            a = self._db.execute("SELECT coalesce(max(id), 0) FROM prompt_label_events").fetchone()[0]
            b = self._db.execute("SELECT count(*) FROM prompt_versions").fetchone()[0]
        return int(a) * 1_000_000 + int(b)

    def close(self) -> None:
        self._db.close()
