"""The scale-out index on Qdrant (a server, or qdrant-client's local mode on a folder or in memory).

One Qdrant collection per keel collection (name prefixed), with a dense vector (cosine) and a
sparse ``bm25`` vector per chunk. BM25: Qdrant's IDF modifier weighs the query terms; the
chunks carry BM25's saturated term frequencies, and terms come from the same analyser as the
SQLite index (SQLite's FTS5 ``porter unicode61`` tokenizer), so both backends stem alike.

Atomic replacement without transactions: every write of a document gets a new generation id.
Its chunk points are written first under that generation, then the document's manifest point
(one point, so one atomic write) names the generation, then the older generations' points are
deleted. Readers keep, per document, only the hits of the generation its manifest names (or, when the
document was rewritten while they searched, of the newest committed generation they found), so
after a crash at any step a reader sees the old chunks or the new ones, never both. The old
generation's points are deleted by id (the manifest says how many); leftovers of an interrupted
write are deleted by the next write of the document on a server (a filtered delete, indexed
there) and by ``tidy`` at the end of the next ingest run in local mode (which filters in Python,
so a filtered delete per document would read the whole collection each time).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from keel.context.bm25_sparse import Analyser
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
    missing,
)
from keel.context.settings import Filters, Scalar
from keel.errors import ConfigError, StateUnavailable

_NS = uuid.UUID("6f1c3c1e-0d7e-4a55-9a7e-6b3f0c1d2e4f")
_REGISTRY = str(uuid.uuid5(_NS, "collection"))
_PAGE = 256


def _doc_id(source: str) -> str:
    return str(uuid.uuid5(_NS, f"doc:{source}"))


def _chunk_id(source: str, ordinal: int, gen: str) -> str:
    return str(uuid.uuid5(_NS, f"chunk:{source}#{ordinal}@{gen}"))


def _is(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


_CHUNKS = _is("kind", "chunk")


def _filter(filters: Filters | None, *extra: models.Condition) -> models.Filter:
    must: list[models.Condition] = [_CHUNKS, *extra]
    for key, want in (filters or {}).items():
        field = "source" if key == "source" else f"meta.{key}"
        options: list[Scalar] = want if isinstance(want, list) else [want]
        conds = [_option(field, o) for o in options]
        must.append(conds[0] if len(conds) == 1 else models.Filter(should=conds))
    return models.Filter(must=must)


def _option(field: str, value: Scalar) -> models.Condition:
    if isinstance(value, float) and not isinstance(value, bool):
        return models.FieldCondition(key=field, range=models.Range(gte=value, lte=value))
    return _is(field, value)


class QdrantIndex(Index):
    """The index in Qdrant: ``path`` (local mode folder or ``":memory:"``) or ``url`` (a server)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        prefix: str = "keel_",
    ) -> None:
        self.prefix = prefix
        self.where = url or str(path)
        self.local = url is None  # local mode filters in Python: every filtered delete reads all points
        self.analyser = Analyser()
        self._lock = threading.RLock()  # the local mode is not thread-safe
        try:
            if url is not None:
                self.client = QdrantClient(url=url, api_key=api_key)
            elif path is None or str(path) == ":memory:":
                self.client = QdrantClient(location=":memory:")
            else:
                Path(path).mkdir(parents=True, exist_ok=True)
                self.client = QdrantClient(path=str(path))
        except (RuntimeError, OSError, ValueError) as exc:  # e.g. the folder is locked by another process
            raise ConfigError(f"index {self.where}: cannot open Qdrant: {exc}") from None

    def _name(self, collection: str) -> str:
        return f"{self.prefix}{collection}"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A client call under the lock, with Qdrant's errors translated."""
        with self._lock:
            try:
                return fn(*args, **kwargs)
            except (UnexpectedResponse, ResponseHandlingException, OSError) as exc:
                raise StateUnavailable(f"index {self.where}: {what} failed: {exc}") from exc

    def close(self) -> None:
        """Close the client (and release a local folder's lock)."""
        with self._lock:
            self.client.close()

    # -- collections ---------------------------------------------------------------------------

    def _registry(self, collection: str) -> dict[str, Any] | None:
        name = self._name(collection)
        if not self._call("collection_exists", self.client.collection_exists, name):
            return None
        found = self._call("retrieve", self.client.retrieve, name, ids=[_REGISTRY])
        return dict(found[0].payload or {}) if found else None

    def collections(self) -> list[CollectionInfo]:
        """Every keel collection in this Qdrant (those named with the prefix), by name."""
        listed = self._call("get_collections", self.client.get_collections).collections
        names = sorted(c.name[len(self.prefix) :] for c in listed if c.name.startswith(self.prefix))
        return [info for n in names if (info := self.collection(n)) is not None]

    def collection(self, name: str) -> CollectionInfo | None:
        """One collection with its document and chunk counts, or None."""
        reg = self._registry(name)
        if reg is None:
            return None
        docs = self._manifests(name)
        chunks = sum(int(d.get("chunks", 0)) for d in docs.values())
        return CollectionInfo(
            name, reg["model"], int(reg["dim"]), len(docs), chunks, float(reg["updated_at"])
        )

    def create(self, name: str, *, model: str, dim: int) -> CollectionInfo:
        """Create the Qdrant collection and its registry point, or check the existing one."""
        if self._registry(name) is None:
            qname = self._name(name)
            if not self._call("collection_exists", self.client.collection_exists, qname):
                self._call(
                    "create_collection",
                    self.client.create_collection,
                    qname,
                    vectors_config={"dense": models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                    sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
                )
            now = time.time()
            reg = {"kind": "collection", "model": model, "dim": dim, "created_at": now, "updated_at": now}
            self._upsert(name, [models.PointStruct(id=_REGISTRY, vector={}, payload=reg)])
        info = self.collection(name)
        assert info is not None
        check_model(info, model, dim)
        return info

    def drop(self, name: str) -> bool:
        """Delete the Qdrant collection."""
        if self._registry(name) is None:
            return False
        self._call("delete_collection", self.client.delete_collection, self._name(name))
        return True

    # -- documents -----------------------------------------------------------------------------

    def _scroll(self, collection: str, flt: models.Filter, *, vectors: bool = False) -> Iterable[Any]:
        offset = None
        while True:
            points, offset = self._call(
                "scroll",
                self.client.scroll,
                self._name(collection),
                scroll_filter=flt,
                limit=_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=["dense"] if vectors else False,
            )
            yield from points
            if offset is None:
                return

    def _manifests(self, collection: str) -> dict[str, dict[str, Any]]:
        flt = models.Filter(must=[_is("kind", "document")])
        return {p.payload["source"]: dict(p.payload) for p in self._scroll(collection, flt)}

    def _live(self, collection: str, sources: Iterable[str]) -> dict[str, str]:
        """The current generation of each of these documents (absent: not ingested, or not yet complete)."""
        ids = [_doc_id(s) for s in dict.fromkeys(sources)]
        if not ids:
            return {}
        found = self._call("retrieve", self.client.retrieve, self._name(collection), ids=ids)
        return {p.payload["source"]: p.payload["gen"] for p in found}

    def documents(self, collection: str) -> list[DocumentRecord]:
        """The collection's documents, by source."""
        if self._registry(collection) is None:
            raise missing(collection)
        return [_record(m) for _, m in sorted(self._manifests(collection).items())]

    def document(self, collection: str, source: str) -> DocumentRecord | None:
        """One document's record, or None."""
        if self._registry(collection) is None:
            return None
        manifest = self._manifest(collection, source)
        return _record(manifest) if manifest is not None else None

    def _manifest(self, collection: str, source: str) -> dict[str, Any] | None:
        found = self._call("retrieve", self.client.retrieve, self._name(collection), ids=[_doc_id(source)])
        return dict(found[0].payload or {}) if found else None

    def known_vectors(self, collection: str, hashes: Sequence[str]) -> dict[str, Matrix]:
        """Stored vectors by chunk hash, for the hashes the collection holds."""
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, Matrix] = {}
        if not wanted or self._registry(collection) is None:
            return out
        for i in range(0, len(wanted), _PAGE):
            flt = models.Filter(
                must=[
                    _CHUNKS,
                    models.FieldCondition(key="hash", match=models.MatchAny(any=wanted[i : i + _PAGE])),
                ]
            )
            for p in self._scroll(collection, flt, vectors=True):
                out[p.payload["hash"]] = np.asarray(p.vector["dense"], dtype=np.float32).reshape(1, -1)
        return out

    def _upsert(self, collection: str, points: list[models.PointStruct]) -> None:
        for i in range(0, len(points), _PAGE):
            self._call(
                "upsert", self.client.upsert, self._name(collection), points=points[i : i + _PAGE], wait=True
            )

    def replace(
        self, collection: str, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Matrix
    ) -> None:
        """New generation's chunks, then the manifest naming it (the commit), then the old ones deleted."""
        reg = self._registry(collection)
        if reg is None:
            raise missing(collection)
        check_vectors(chunks, vectors, int(reg["dim"]))
        gen = f"{time.time_ns():020d}{uuid.uuid4().hex[:12]}"  # ordered: later writes sort after
        source = record.source
        terms = self.analyser.terms([c.indexed_text for c in chunks])
        points = [
            models.PointStruct(
                id=_chunk_id(source, c.ordinal, gen),
                vector={"dense": vectors[i].tolist(), "bm25": self.analyser.document(terms[i])},
                payload={
                    "kind": "chunk",
                    "source": source,
                    "ordinal": c.ordinal,
                    "text": c.text,
                    "title": c.title,
                    "headings": list(c.headings),
                    "hash": c.hash,
                    "meta": c.metadata,
                    "gen": gen,
                },
            )
            for i, c in enumerate(chunks)
        ]
        old = self._manifest(collection, source)
        self._upsert(collection, points)
        manifest = {
            "kind": "document",
            "source": source,
            "hash": record.hash,
            "fingerprint": record.fingerprint,
            "title": record.title,
            "chunks": len(chunks),
            "metadata": record.metadata,
            "ingested_at": record.ingested_at or time.time(),
            "gen": gen,
        }
        self._upsert(collection, [models.PointStruct(id=_doc_id(source), vector={}, payload=manifest)])
        self._purge(collection, source, keep=gen, old=old)
        self._touch(collection, reg)

    def _purge(self, collection: str, source: str, keep: str | None, old: dict[str, Any] | None) -> None:
        """Delete the document's chunk points of every generation but ``keep``: those of the ``old``
        manifest's generation by id; on a server also any other by filter (indexed there; in local
        mode ``tidy`` finds the leftovers of interrupted writes, once per ingest run)."""
        if old is not None and old["gen"] != keep and int(old.get("chunks", 0)):
            ids: list[models.ExtendedPointId] = [
                _chunk_id(source, i, old["gen"]) for i in range(int(old["chunks"]))
            ]
            self._delete(collection, models.PointIdsList(points=ids))
        if not self.local:
            flt = models.Filter(
                must=[_CHUNKS, _is("source", source)], must_not=[_is("gen", keep)] if keep else None
            )
            self._delete(collection, models.FilterSelector(filter=flt))

    def _delete(self, collection: str, selector: Any) -> None:
        self._call("delete", self.client.delete, self._name(collection), points_selector=selector, wait=True)

    def tidy(self, collection: str) -> int:
        """Delete chunk points that no manifest names (left by writes interrupted before their
        commit or cleanup); the number deleted. Readers never see them either way."""
        if self._registry(collection) is None:
            return 0
        live = {source: m["gen"] for source, m in self._manifests(collection).items()}
        orphans = [
            p.id
            for p in self._scroll(collection, models.Filter(must=[_CHUNKS]))
            if live.get(p.payload["source"]) != p.payload["gen"]
        ]
        for i in range(0, len(orphans), _PAGE):
            self._delete(collection, models.PointIdsList(points=orphans[i : i + _PAGE]))
        return len(orphans)

    def _touch(self, collection: str, reg: dict[str, Any]) -> None:
        self._upsert(
            collection,
            [models.PointStruct(id=_REGISTRY, vector={}, payload={**reg, "updated_at": time.time()})],
        )

    def delete(self, collection: str, source: str) -> bool:
        """The manifest first (the document is gone for readers), then its chunk points."""
        reg = self._registry(collection)
        if reg is None:
            raise missing(collection)
        old = self._manifest(collection, source)
        if old is None:
            return False
        self._delete(collection, models.PointIdsList(points=[_doc_id(source)]))
        self._purge(collection, source, keep=None, old=old)
        self._touch(collection, reg)
        return True

    # -- search --------------------------------------------------------------------------------

    def _search(self, collection: str, query: Any, using: str, k: int, filters: Filters | None) -> list[Hit]:
        if self._registry(collection) is None:
            raise missing(collection)
        if k <= 0:
            return []
        found = self._call(
            "query_points",
            self.client.query_points,
            self._name(collection),
            query=query,
            using=using,
            query_filter=_filter(filters),
            limit=k + 16,  # room for leftovers of an interrupted write, dropped below
            with_payload=True,
        ).points
        live = self._live(collection, (p.payload["source"] for p in found))
        # Per document, the hits of one generation: the live one; else (the document was
        # rewritten between the query and the manifest read) the newest committed one found,
        # which was live when the query ran. Newer, uncommitted generations never show.
        shown: dict[str, str] = {}
        for p in found:
            src, gen = p.payload["source"], p.payload["gen"]
            if gen <= live.get(src, "") and gen > shown.get(src, ""):
                shown[src] = gen
        hits = [
            Hit(_chunk(p.payload), float(p.score))
            for p in found
            if shown.get(p.payload["source"]) == p.payload["gen"]
        ]
        return hits[:k]

    def keyword(self, collection: str, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """BM25 through the sparse vectors; best first."""
        sparse = self.analyser.query(query)
        if not sparse.indices:
            if self._registry(collection) is None:
                raise missing(collection)
            return []
        return self._search(collection, sparse, "bm25", k, filters)

    def dense(self, collection: str, vector: Matrix, k: int, filters: Filters | None = None) -> list[Hit]:
        """Cosine similarity; best first."""
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if not math.isfinite(float(q.sum())):
            raise ValueError("query vector has non-finite values")
        return self._search(collection, q.tolist(), "dense", k, filters)

    def vectors(self, collection: str, chunk_ids: Sequence[str]) -> Matrix:
        """The stored vectors of these chunks (of their documents' current generation)."""
        reg = self._registry(collection)
        if reg is None:
            raise missing(collection)
        if not chunk_ids:
            return empty_matrix(int(reg["dim"]))
        parts = [c.rpartition("#") for c in chunk_ids]
        live = self._live(collection, (p[0] for p in parts))
        try:
            ids = [_chunk_id(src, int(n), live[src]) for src, _, n in parts]
        except (KeyError, ValueError) as exc:
            raise KeyError(f"no chunk {exc.args[0]!r} in collection {collection!r}") from None
        found = self._call(
            "retrieve", self.client.retrieve, self._name(collection), ids=ids, with_vectors=["dense"]
        )
        by_id = {str(p.id): p.vector["dense"] for p in found}
        missing_ids = [c for c, i in zip(chunk_ids, ids, strict=True) if i not in by_id]
        if missing_ids:
            raise KeyError(f"no chunk {missing_ids[0]!r} in collection {collection!r}")
        return np.asarray([by_id[i] for i in ids], dtype=np.float32)

    def __repr__(self) -> str:
        return f"QdrantIndex({self.where!r})"


def _record(p: dict[str, Any] | None) -> DocumentRecord:
    p = p or {}
    return DocumentRecord(
        p["source"],
        p["hash"],
        p["fingerprint"],
        p.get("title", ""),
        int(p.get("chunks", 0)),
        dict(p.get("metadata") or {}),
        float(p.get("ingested_at", 0.0)),
    )


def _chunk(p: dict[str, Any] | None) -> Chunk:
    p = p or {}
    return Chunk(
        p["source"],
        int(p["ordinal"]),
        p["text"],
        p.get("title", ""),
        tuple(p.get("headings") or ()),
        p.get("hash", ""),
        dict(p.get("meta") or {}),
    )
