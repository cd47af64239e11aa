"""Managed API keys in the settings' SQLite file (the one the ledger uses), table ``api_keys``.

Migrations are small functions applied in order and recorded in the shared ``_migrations``
table under the ``keys.`` namespace. The SQL is plain enough for PostgreSQL (a partial unique
index keeps names unique among active keys). Reading a file that does not exist yet finds no
keys and creates nothing; the first key created makes the file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from keel.errors import ConfigError, InvalidRequest
from keel.keystore.base import KeySpec, KeyStore, Revision, StoredKey, revoked
from keel.settings import Budget, RateLimit

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_create_api_keys(db: sqlite3.Connection) -> None:
    """The ``api_keys`` table: hash, display prefix, scopes and lifetime of each key; never the key."""
    db.execute(
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            features TEXT,
            models TEXT,
            admin INTEGER NOT NULL,
            rpm INTEGER,
            tpm INTEGER,
            usd_per_day REAL,
            usd_per_month REAL,
            created_at REAL NOT NULL,
            revoked_at REAL
        )
        """
    )
    db.execute("CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL")


_COLUMNS = (
    "id, name, hash, prefix, features, models, admin, rpm, tpm, usd_per_day, usd_per_month, "
    "created_at, revoked_at"
)
_INSERT = f"INSERT INTO api_keys ({_COLUMNS}) VALUES ({', '.join('?' * 13)})"
_SELECT = f"SELECT {_COLUMNS} FROM api_keys"


class SQLiteKeyStore(KeyStore):
    """Managed keys in a SQLite file (WAL mode, shared with the ledger)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._migrated = False

    def add(self, key: StoredKey) -> None:
        """Insert ``key``; InvalidRequest when an active key has the same name."""
        with self._db(create=True) as db:
            assert db is not None  # create=True always opens
            try:
                db.execute(_INSERT, _to_row(key))
            except sqlite3.IntegrityError:
                raise InvalidRequest(
                    f"an active key named {key.name!r} already exists; revoke it or choose another name"
                ) from None

    def list_keys(self, *, include_revoked: bool = False) -> list[StoredKey]:
        """Active keys (or all of them), oldest first."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self._db() as db:
            if db is None:
                return []
            rows = db.execute(f"{_SELECT}{where} ORDER BY created_at, id").fetchall()
        return [_from_row(r) for r in rows]

    def revoke(self, name: str, *, now: float | None = None) -> StoredKey:
        """Set the revocation time of the active key called ``name``."""
        when = time.time() if now is None else now
        with self._db() as db:
            row = None
            if db is not None:
                db.execute("BEGIN IMMEDIATE")
                try:
                    row = db.execute(f"{_SELECT} WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
                    if row is not None:
                        db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (when, row[0]))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        if row is None:
            raise InvalidRequest(f"no active key named {name!r} (see: keel keys list)")
        return revoked(_from_row(row), when)

    def revision(self) -> Revision:
        """Keys ever created and keys revoked: both only grow, so any change shows."""
        with self._db() as db:
            if db is None:
                return Revision(0, 0)
            total, gone = db.execute("SELECT COUNT(*), COUNT(revoked_at) FROM api_keys").fetchone()
        return Revision(int(total), int(gone))

    def close(self) -> None:
        """Nothing stays open between operations."""

    @contextmanager
    def _db(self, *, create: bool = False) -> Iterator[sqlite3.Connection | None]:
        """A connection for one operation; None when the file does not exist and ``create`` is False."""
        if not create and not self.path.exists():
            yield None
            return
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, isolation_level=None)) as db:
                db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
                if not self._migrated:
                    db.execute("PRAGMA journal_mode=WAL")
                    _migrate(db)
                    self._migrated = True
                yield db
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"key store {self.path}: {exc}") from None

    def __repr__(self) -> str:
        return f"SQLiteKeyStore({str(self.path)!r})"


def _migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations not yet recorded, each in its own transaction with its record."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for fn in MIGRATIONS:
        name = f"keys.{fn.__name__}"
        db.execute("BEGIN IMMEDIATE")  # re-checked under the lock: the ledger or another process may race
        try:
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone() is None:
                fn(db)
                db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _json_list(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def _to_row(key: StoredKey) -> tuple[Any, ...]:
    s = key.spec
    rl, b = s.rate_limit, s.budget
    return (
        key.id, s.name, key.hash, key.prefix, _json_list(s.features), _json_list(s.models), int(s.admin),
        rl.rpm if rl else None, rl.tpm if rl else None,
        b.usd_per_day if b else None, b.usd_per_month if b else None,
        key.created_at, key.revoked_at,
    )  # fmt: skip


def _from_row(r: tuple[Any, ...]) -> StoredKey:
    (id_, name, hash_, prefix, features, models, admin, rpm, tpm, day, month, created, revoked_at) = r
    spec = KeySpec(
        name=name,
        features=tuple(json.loads(features)) if features is not None else None,
        models=tuple(json.loads(models)) if models is not None else None,
        admin=bool(admin),
        rate_limit=RateLimit(rpm=rpm, tpm=tpm) if rpm is not None or tpm is not None else None,
        budget=Budget(usd_per_day=day, usd_per_month=month) if day is not None or month is not None else None,
    )
    return StoredKey(id_, spec, hash_, prefix, created, revoked_at)
