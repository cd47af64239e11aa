"""The SQLite index's schema (migrations recorded in ``_migrations``, names prefixed ``index.``)
and the SQL it builds from a question and from metadata filters.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from keel.context.settings import Filters
from keel.stores.sqlite_migrations import Migration, apply_migrations

MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_create_index(db: sqlite3.Connection) -> None:
    """Collections, documents and chunks (with their vectors); keyword tables are made per collection."""
    db.execute(
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, model TEXT NOT NULL, dim INTEGER NOT NULL,
            version INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE documents (
            collection_id INTEGER NOT NULL, source TEXT NOT NULL, hash TEXT NOT NULL,
            fingerprint TEXT NOT NULL, title TEXT NOT NULL, chunks INTEGER NOT NULL,
            metadata TEXT NOT NULL, ingested_at REAL NOT NULL,
            PRIMARY KEY (collection_id, source)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY, collection_id INTEGER NOT NULL, source TEXT NOT NULL,
            ordinal INTEGER NOT NULL, title TEXT NOT NULL, headings TEXT NOT NULL, text TEXT NOT NULL,
            hash TEXT NOT NULL, metadata TEXT NOT NULL, vector BLOB NOT NULL)"""
    )
    db.execute("CREATE INDEX chunks_source ON chunks (collection_id, source)")
    db.execute("CREATE INDEX chunks_hash ON chunks (collection_id, hash)")


_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 64


# Words that match almost every chunk: BM25 gives them next to no weight, but FTS5 still visits
# and scores every row that holds one (on 7,000 chunks, a question's BM25 p50 fell from 62 to 24 ms
# without them, and nDCG@10 on data/pydoc_beir rose from 0.690 to 0.760).
_STOPWORDS = (
    "a an and are as at be but by can do does did for from has have how i if in into is it its "
    "me my of on or our so than that the their them then there these they this those to was we "
    "were what when where which who whom why will with would you your"
)
STOPWORDS = frozenset(_STOPWORDS.split())


def query_words(text: str) -> list[str]:
    """A question's distinct words, lower-cased, stop words left out (all of them if that is all)."""
    words = list(dict.fromkeys(t.lower() for t in _TOKEN.findall(text)))
    kept = [w for w in words if w not in STOPWORDS]
    return (kept or words)[:_MAX_TERMS]


def fts_query(text: str) -> str:
    """A free-text question as an FTS5 query: each distinct word quoted, any of them matching."""
    return " OR ".join(f'"{t}"' for t in query_words(text))


def marks(items: Sequence[Any]) -> str:
    return ", ".join("?" * len(items))


def filter_sql(filters: Filters | None) -> tuple[str, list[Any]]:
    """SQL conditions on chunk ``c`` equal to ``index.matches`` (booleans match only booleans)."""
    if not filters:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    for key, want in filters.items():
        options = want if isinstance(want, list) else [want]
        if key == "source":
            clauses.append(f"c.source IN ({marks(options)})")
            params += options
            continue
        path = f'$."{key}"'
        parts = []
        for o in options:
            if isinstance(o, bool):
                parts.append("json_type(c.metadata, ?) = ?")
                params += [path, "true" if o else "false"]
            else:
                parts.append(
                    "(json_type(c.metadata, ?) NOT IN ('true', 'false') AND json_extract(c.metadata, ?) = ?)"
                )
                params += [path, path, o]
        clauses.append(f"({' OR '.join(parts)})")
    return "".join(f" AND {c}" for c in clauses), params


def migrate(db: sqlite3.Connection) -> None:
    """Apply the index's migrations not yet recorded (names prefixed ``index.``)."""
    apply_migrations(db, "index", MIGRATIONS)
