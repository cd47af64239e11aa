"""Managed API keys in the settings' SQLite file (the one the ledger uses), table ``api_keys``.

Migrations are small functions applied in order and recorded in the shared ``_migrations``
table under the ``keys.`` prefix (``keel.stores.sqlite_migrations``). A partial unique index
keeps names unique among active keys. Reading a file that does not exist yet finds no keys and
creates nothing; the first key created makes the file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from keel.errors import ConfigError, InvalidRequest
from keel.keystore.base import KeyStore, Revision, StoredKey, revoked
from keel.keystore.rows import COLUMNS, from_row, to_row
from keel.stores.sqlite_migrations import Migration, apply_migrations, use_wal

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


_INSERT = f"INSERT INTO api_keys ({COLUMNS}) VALUES ({', '.join('?' * 13)})"
_SELECT = f"SELECT {COLUMNS} FROM api_keys"


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
                db.execute(_INSERT, to_row(key))
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
        return [from_row(r) for r in rows]

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
        return revoked(from_row(row), when)

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
                    use_wal(db, self.busy_timeout)
                    apply_migrations(db, "keys", MIGRATIONS)
                    self._migrated = True
                yield db
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"key store {self.path}: {exc}") from None

    @property
    def location(self) -> str:
        """The SQLite file."""
        return str(self.path)

    def __repr__(self) -> str:
        return f"SQLiteKeyStore({str(self.path)!r})"
