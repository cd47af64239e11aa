"""The embedded index: chunks, vectors and an FTS5 keyword index in one SQLite file (WAL mode).

Keywords: one FTS5 table per collection (Porter stemming, diacritics folded), ranked by ``bm25()``.
Vectors: float32 blobs beside the chunks, loaded once per collection into a numpy matrix that
is searched with one matrix-vector product, and reloaded when the collection's version (bumped
by every write) changes, whoever wrote it. Each document is replaced in one transaction.

The schema and the SQL built from questions and filters are in ``sqlite_schema``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from keel.context.chunk import Chunk
from keel.context.embed import Matrix
from keel.context.index import (
    CollectionInfo,
    DocumentRecord,
    Hit,
    Index,
    check_model,
    check_vectors,
    empty_matrix,
    matches,
    missing,
)
from keel.context.settings import Filters
from keel.context.sqlite_schema import filter_sql, fts_query, marks, migrate
from keel.errors import ConfigError, StateUnavailable
from keel.stores.sqlite_migrations import use_wal

_CHUNK_COLUMNS = "c.id, c.source, c.ordinal, c.title, c.headings, c.text, c.hash, c.metadata"


@dataclass(slots=True)
class _Loaded:
    """One collection's vectors in memory, as of ``version``."""

    version: int
    dim: int
    rowids: npt.NDArray[np.int64]
    matrix: Matrix
    sources: list[str]
    metadata: list[dict[str, Any]]
    by_chunk_id: dict[str, int] = field(default_factory=dict)
    masks: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def mask(self, filters: Filters) -> npt.NDArray[np.bool_]:
        """Rows that satisfy ``filters`` (computed once per distinct filter)."""
        key = json.dumps(filters, sort_keys=True)
        found = self.masks.get(key)
        if found is None:
            rows = [
                matches(Chunk(src, 0, "", metadata=meta), filters)
                for src, meta in zip(self.sources, self.metadata, strict=True)
            ]
            found = self.masks[key] = np.array(rows, dtype=bool)
        return found


class SQLiteIndex(Index):
    """The index in a SQLite file (made with its directory when missing), or ``":memory:"``."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.memory = str(path) == ":memory:"
        self.path = Path(path) if not self.memory else None
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.RLock()  # guards the connection list, the cache and a memory database
        self._cache: dict[str, _Loaded] = {}
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                if not self.memory:
                    use_wal(db, self.busy_timeout)
                migrate(db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"index {path}: cannot open: {exc}") from None

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            ":memory:" if self.path is None else self.path, isolation_level=None, check_same_thread=False
        )
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-65536")  # up to 64 MiB of pages: the full-text index stays hot
        with self._lock:
            self._all.append(db)
        return db

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (one shared, under the lock, for a memory database)."""
        if self.memory:
            with self._lock:
                if not self._all:
                    self._connect()
                yield self._all[0]
            return
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it or nothing."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close every connection this index opened."""
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
            self._cache.clear()
            self._local = threading.local()

    # -- collections ---------------------------------------------------------------------------

    def _row(self, db: sqlite3.Connection, name: str) -> tuple[int, str, int, int] | None:
        row = db.execute("SELECT id, model, dim, version FROM collections WHERE name = ?", (name,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2]), int(row[3]))

    def _id(self, db: sqlite3.Connection, name: str) -> int:
        row = self._row(db, name)
        if row is None:
            raise missing(name)
        return row[0]

    def collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""
        with self._db() as db:
            names = [r[0] for r in db.execute("SELECT name FROM collections ORDER BY name")]
        return [info for n in names if (info := self.collection(n)) is not None]

    def collection(self, name: str) -> CollectionInfo | None:
        """One collection with its document and chunk counts, or None."""
        with self._db() as db:
            row = db.execute(
                "SELECT id, model, dim, updated_at FROM collections WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                return None
            docs = db.execute("SELECT COUNT(*) FROM documents WHERE collection_id = ?", (row[0],)).fetchone()
            chunks = db.execute("SELECT COUNT(*) FROM chunks WHERE collection_id = ?", (row[0],)).fetchone()
        return CollectionInfo(name, row[1], row[2], docs[0], chunks[0], row[3])

    def create(self, name: str, *, model: str, dim: int) -> CollectionInfo:
        """Create ``name`` with its keyword table, or check the existing one's model and dimension."""
        with self._write() as db:
            if self._row(db, name) is None:
                now = time.time()
                cur = db.execute(
                    "INSERT INTO collections (name, model, dim, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (name, model, dim, now, now),
                )
                db.execute(
                    f"CREATE VIRTUAL TABLE fts_{cur.lastrowid} USING fts5("
                    "body, tokenize = 'porter unicode61 remove_diacritics 2')"
                )
        info = self.collection(name)
        assert info is not None
        check_model(info, model, dim)
        return info

    def drop(self, name: str) -> bool:
        """Delete the collection, its documents, chunks and keyword table in one transaction."""
        with self._write() as db:
            row = self._row(db, name)
            if row is None:
                return False
            cid = row[0]
            for table in ("chunks", "documents"):
                db.execute(f"DELETE FROM {table} WHERE collection_id = ?", (cid,))
            db.execute("DELETE FROM collections WHERE id = ?", (cid,))
            db.execute(f"DROP TABLE fts_{cid}")
        with self._lock:
            self._cache.pop(name, None)
        return True

    # -- documents -----------------------------------------------------------------------------

    _DOC = "SELECT source, hash, fingerprint, title, chunks, metadata, ingested_at FROM documents"

    def documents(self, collection: str) -> list[DocumentRecord]:
        """The collection's documents, by source."""
        with self._db() as db:
            cid = self._id(db, collection)
            rows = db.execute(f"{self._DOC} WHERE collection_id = ? ORDER BY source", (cid,)).fetchall()
        return [_record(r) for r in rows]

    def document(self, collection: str, source: str) -> DocumentRecord | None:
        """One document's record, or None (also when the collection does not exist yet)."""
        with self._db() as db:
            row = self._row(db, collection)
            if row is None:
                return None
            found = db.execute(
                f"{self._DOC} WHERE collection_id = ? AND source = ?", (row[0], source)
            ).fetchone()
        return None if found is None else _record(found)

    def known_vectors(self, collection: str, hashes: Sequence[str]) -> dict[str, Matrix]:
        """Stored vectors by chunk hash, for the hashes the collection holds."""
        out: dict[str, Matrix] = {}
        wanted = list(dict.fromkeys(hashes))
        with self._db() as db:
            row = self._row(db, collection)
            if row is None:
                return out
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                sql = f"SELECT hash, vector FROM chunks WHERE collection_id = ? AND hash IN ({marks(part)})"
                for h, blob in db.execute(sql, (row[0], *part)):
                    out[h] = np.frombuffer(blob, dtype=np.float32).reshape(1, -1)
        return out

    def replace(
        self, collection: str, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Matrix
    ) -> None:
        """Swap the document's chunks, keyword rows and record in one transaction."""
        with self._write() as db:
            row = self._row(db, collection)
            if row is None:
                raise missing(collection)
            cid, _, dim, _ = row
            check_vectors(chunks, vectors, dim)
            self._delete_chunks(db, cid, record.source)
            rows = np.ascontiguousarray(vectors, dtype=np.float32)
            for chunk, vector in zip(chunks, rows, strict=True):
                cur = db.execute(
                    "INSERT INTO chunks (collection_id, source, ordinal, title, headings, text, hash,"
                    " metadata, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cid,
                        record.source,
                        chunk.ordinal,
                        chunk.title,
                        json.dumps(list(chunk.headings)),
                        chunk.text,
                        chunk.hash,
                        json.dumps(chunk.metadata),
                        vector.tobytes(),
                    ),
                )
                db.execute(
                    f"INSERT INTO fts_{cid} (rowid, body) VALUES (?, ?)", (cur.lastrowid, chunk.indexed_text)
                )
            db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    record.source,
                    record.hash,
                    record.fingerprint,
                    record.title,
                    len(chunks),
                    json.dumps(record.metadata),
                    record.ingested_at or time.time(),
                ),
            )
            _touch(db, cid)

    def delete(self, collection: str, source: str) -> bool:
        """Remove a document, its chunks and keyword rows in one transaction."""
        with self._write() as db:
            cid = self._id(db, collection)
            gone = db.execute("DELETE FROM documents WHERE collection_id = ? AND source = ?", (cid, source))
            self._delete_chunks(db, cid, source)
            if gone.rowcount:
                _touch(db, cid)
            return gone.rowcount > 0

    @staticmethod
    def _delete_chunks(db: sqlite3.Connection, cid: int, source: str) -> None:
        db.execute(
            f"DELETE FROM fts_{cid} WHERE rowid IN"
            " (SELECT id FROM chunks WHERE collection_id = ? AND source = ?)",
            (cid, source),
        )
        db.execute("DELETE FROM chunks WHERE collection_id = ? AND source = ?", (cid, source))

    # -- search --------------------------------------------------------------------------------

    def keyword(self, collection: str, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """FTS5 ``bm25()`` over heading line and text, any query word matching; best first."""
        match = fts_query(query)
        with self._db() as db:
            cid = self._id(db, collection)
            if not match or k <= 0:
                return []
            where, params = filter_sql(filters)
            # Ranked on the full-text table alone (joined to the chunks only to filter), the k best
            # fetched afterwards: joining every match before the sort took 3x as long (7,000 chunks).
            source = f"fts_{cid} JOIN chunks AS c ON c.id = fts_{cid}.rowid" if where else f"fts_{cid}"
            sql = (
                f"SELECT fts_{cid}.rowid, -bm25(fts_{cid}) FROM {source}"
                f" WHERE fts_{cid} MATCH ?{where} ORDER BY bm25(fts_{cid}) LIMIT ?"
            )
            try:
                ranked = db.execute(sql, (match, *params, k)).fetchall()
            except sqlite3.OperationalError as exc:
                raise StateUnavailable(
                    f"index {self.path or ':memory:'}: keyword search failed: {exc}"
                ) from exc
        chunks = self._chunks_by_rowid([int(r[0]) for r in ranked])
        return [Hit(chunks[int(rowid)], float(score)) for rowid, score in ranked if int(rowid) in chunks]

    def dense(self, collection: str, vector: Matrix, k: int, filters: Filters | None = None) -> list[Hit]:
        """Dot products with every stored unit vector (in memory); best first."""
        loaded = self._loaded(collection)
        if k <= 0 or not len(loaded.rowids):
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != loaded.dim:
            raise ConfigError(
                f"query vector has dimension {q.shape[0]}; collection {collection!r} has {loaded.dim}"
            )
        # One query against every row: numpy's own loop, not BLAS, whose thread pool costs more
        # than the product here and fights the embedding model's threads (p50 on 7,000 chunks:
        # 3.9 → 1.1 ms alone, and dense with the query embedding 50 → 24 ms on 2 busy cores).
        scores = np.einsum("ij,j->i", loaded.matrix, q)
        if filters:
            scores = np.where(loaded.mask(filters), scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])]
        chunks = self._chunks_by_rowid([int(loaded.rowids[i]) for i in top])
        return [Hit(chunks[int(loaded.rowids[i])], float(scores[i])) for i in top]

    def vectors(self, collection: str, chunk_ids: Sequence[str]) -> Matrix:
        """Rows of the in-memory matrix for these chunk ids."""
        loaded = self._loaded(collection)
        try:
            rows = [loaded.by_chunk_id[c] for c in chunk_ids]
        except KeyError as exc:
            raise KeyError(f"no chunk {exc.args[0]!r} in collection {collection!r}") from None
        return loaded.matrix[rows] if rows else empty_matrix(loaded.dim)

    def _chunks_by_rowid(self, rowids: list[int]) -> dict[int, Chunk]:
        if not rowids:
            return {}
        with self._db() as db:
            sql = f"SELECT {_CHUNK_COLUMNS} FROM chunks AS c WHERE c.id IN ({marks(rowids)})"
            return {int(r[0]): _chunk(r) for r in db.execute(sql, rowids)}

    def _loaded(self, collection: str) -> _Loaded:
        """The collection's vectors in memory, reloaded when a write (from any process) changed them."""
        with self._db() as db:
            row = self._row(db, collection)
        if row is None:
            raise missing(collection)
        cached = self._cache.get(collection)
        if cached is not None and cached.version == row[3]:
            return cached
        with self._lock, self._db() as db:
            db.execute("BEGIN")  # one snapshot for the version and the rows
            try:
                row = self._row(db, collection)
                if row is None:
                    raise missing(collection)
                cached = self._cache.get(collection)
                if cached is not None and cached.version == row[3]:
                    return cached
                rows = db.execute(
                    "SELECT id, source, ordinal, metadata, vector FROM chunks WHERE collection_id = ?",
                    (row[0],),
                ).fetchall()
            finally:
                db.execute("COMMIT")
            dim = row[2]
            blob = b"".join(r[4] for r in rows)
            loaded = _Loaded(
                version=row[3],
                dim=dim,
                rowids=np.array([r[0] for r in rows], dtype=np.int64),
                matrix=np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dim).copy(),
                sources=[r[1] for r in rows],
                metadata=[json.loads(r[3]) for r in rows],
                by_chunk_id={f"{r[1]}#{r[2]}": i for i, r in enumerate(rows)},
            )
            self._cache[collection] = loaded
            return loaded

    def __repr__(self) -> str:
        return f"SQLiteIndex({str(self.path or ':memory:')!r})"


def _touch(db: sqlite3.Connection, cid: int) -> None:
    db.execute(
        "UPDATE collections SET version = version + 1, updated_at = ? WHERE id = ?", (time.time(), cid)
    )


def _record(r: Sequence[Any]) -> DocumentRecord:
    return DocumentRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6])


def _chunk(r: Sequence[Any]) -> Chunk:
    return Chunk(r[1], r[2], r[5], r[3], tuple(json.loads(r[4])), r[6], json.loads(r[7]))
