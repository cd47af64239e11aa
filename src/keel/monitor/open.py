"""Open the ledger a configuration names: a ``postgresql://`` URL, or a SQLite file path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from keel.errors import ConfigError
from keel.monitor.ledger import Ledger
from keel.monitor.settings import is_postgres_url

if TYPE_CHECKING:
    from keel.settings import Settings


def open_ledger(target: str | Path) -> Ledger:
    """The ledger at ``target``: PostgreSQL for a ``postgresql://`` URL, else a SQLite file.

    Raises ConfigError (one line, no password) when it cannot be opened.
    """
    if isinstance(target, str) and is_postgres_url(target):
        try:  # psycopg loads only when a PostgreSQL ledger is configured
            from keel.monitor.postgres_ledger import PostgresLedger
        except ImportError as exc:
            raise ConfigError(
                f"ledger {describe(target)}: PostgreSQL needs psycopg ({exc.name} is not installed);"
                " pip install 'keel[postgres]'"
            ) from None
        return PostgresLedger(target)
    from keel.monitor.sqlite_ledger import SQLiteLedger

    return SQLiteLedger(Path(target))


def ledger_target(settings: Settings) -> str | Path:
    """Where ``settings`` keep the ledger: a ``postgresql://`` URL, or a SQLite file (made absolute).

    ``ledger.url`` when set (a relative file path resolves against the config file's directory),
    else the SQLite file at ``storage.path``.
    """
    url = settings.ledger.url
    if not url:
        return settings.db_path
    return url if is_postgres_url(url) else settings.resolve(Path(url))


def is_missing(target: str | Path) -> bool:
    """True when ``target`` is a SQLite file that does not exist yet (nothing recorded; nothing to open)."""
    if isinstance(target, str) and is_postgres_url(target):
        return False
    return not Path(target).exists()


def describe(target: str | Path) -> str:
    """``target`` for messages: a URL without its password, or the file path."""
    if not isinstance(target, str):
        return str(target)
    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
