"""The index seam: collections of chunks with their vectors, searched by keywords (BM25) and by vector.

Two implementations pass one contract suite (tests/context/test_index_contract.py):
``SQLiteIndex`` (embedded: FTS5 BM25 and float32 vectors in one file, searched in memory with numpy)
and ``QdrantIndex`` (scale-out, or its local mode). ``SQLiteIndex(":memory:")`` is the fake.

The contract:

- a collection is created once with its embedder's model name and dimension; creating it again
  with another model or dimension is a ConfigError (its vectors would not compare);
- ``replace(collection, record, chunks, vectors)`` makes the document ``record.source`` exactly
  these chunks, atomically: a reader (even after a crash) sees all of the old chunks or all of
  the new ones, never a mix, and never both;
- ``documents``/``document`` tell what is stored (content hash and fingerprint per source), so an
  unchanged file is skipped before anything is parsed or embedded;
- ``known_vectors`` returns stored vectors by chunk hash, so unchanged chunks of a changed file
  are not embedded again;
- ``keyword`` and ``dense`` return at most ``k`` hits, best first, each matching every filter;
  an unknown collection is ``StateUnavailable`` (code ``collection_not_found``);
- the index is safe to use from several threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keel.context.chunk import Chunk
from keel.context.embed import Matrix
from keel.context.settings import Filters, IndexConfig, Scalar
from keel.errors import ConfigError, StateUnavailable


@dataclass(slots=True, frozen=True)
class Hit:
    """One chunk a search found, with its score in that search (higher is better)."""

    chunk: Chunk
    score: float


@dataclass(slots=True, frozen=True)
class DocumentRecord:
    """What the index remembers of one ingested file."""

    source: str
    hash: str  # of the file's bytes
    fingerprint: str  # of the bytes and of how they were chunked and embedded: same → skip
    title: str = ""
    chunks: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    ingested_at: float = 0.0


@dataclass(slots=True, frozen=True)
class CollectionInfo:
    """A collection's vital statistics."""

    name: str
    model: str  # the embedder its vectors came from
    dim: int
    documents: int = 0
    chunks: int = 0
    updated_at: float = 0.0


class Index(ABC):
    """Collections of chunks, their vectors and a keyword index over them (see the module's contract)."""

    @abstractmethod
    def collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""

    @abstractmethod
    def collection(self, name: str) -> CollectionInfo | None:
        """One collection, or None when there is none by that name."""

    @abstractmethod
    def create(self, name: str, *, model: str, dim: int) -> CollectionInfo:
        """Create ``name`` (or check that it exists with this model and dimension)."""

    @abstractmethod
    def drop(self, name: str) -> bool:
        """Delete a collection and everything in it; False when there was none."""

    @abstractmethod
    def documents(self, collection: str) -> list[DocumentRecord]:
        """The documents of a collection, by source."""

    @abstractmethod
    def document(self, collection: str, source: str) -> DocumentRecord | None:
        """One document's record, or None."""

    @abstractmethod
    def known_vectors(self, collection: str, hashes: Sequence[str]) -> dict[str, Matrix]:
        """Stored vectors (one row each) for the chunk hashes the collection already holds."""

    @abstractmethod
    def replace(
        self, collection: str, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Matrix
    ) -> None:
        """Make ``record.source`` exactly ``chunks`` (row i of ``vectors`` is chunk i), atomically."""

    @abstractmethod
    def delete(self, collection: str, source: str) -> bool:
        """Remove a document and its chunks; False when there was none."""

    @abstractmethod
    def keyword(self, collection: str, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """BM25 over the chunks' heading line and text; at most ``k`` hits, best first."""

    @abstractmethod
    def dense(self, collection: str, vector: Matrix, k: int, filters: Filters | None = None) -> list[Hit]:
        """Cosine similarity to ``vector`` (one unit row); at most ``k`` hits, best first."""

    @abstractmethod
    def vectors(self, collection: str, chunk_ids: Sequence[str]) -> Matrix:
        """The stored vectors of these chunks, one row each, in order (for diversity re-ranking)."""

    def tidy(self, collection: str) -> int:
        """Remove what interrupted writes left behind (readers never see it); the number of pieces
        removed. ``keel ingest`` calls it once per run; an index whose writes are transactions has
        nothing to do."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def missing(collection: str) -> StateUnavailable:
    """The error for a collection that does not exist."""
    return StateUnavailable(
        f"no collection {collection!r} in the index; "
        f"create it with: keel ingest PATH --collection {collection}",
        code="collection_not_found",
    )


def check_vectors(chunks: Sequence[Chunk], vectors: Matrix, dim: int) -> None:
    """ValueError unless there is one row of ``dim`` floats per chunk."""
    if vectors.shape != (len(chunks), dim):
        raise ValueError(f"expected {len(chunks)} vectors of dimension {dim}, got shape {vectors.shape}")


def check_model(info: CollectionInfo, model: str, dim: int) -> None:
    """ConfigError when a collection was embedded with another model or dimension."""
    if info.model != model or info.dim != dim:
        raise ConfigError(
            f"collection {info.name!r} was embedded with {info.model!r} (dimension {info.dim}); "
            f"the configured embedder is {model!r} (dimension {dim}): drop and re-ingest the collection, "
            "or configure the embedder it was built with"
        )


def matches(chunk: Chunk, filters: Filters | None) -> bool:
    """True when ``chunk`` satisfies every filter (``source`` and metadata keys)."""
    if not filters:
        return True
    for key, want in filters.items():
        value = chunk.source if key == "source" else chunk.metadata.get(key)
        if not _equal_any(value, want):
            return False
    return True


def _equal_any(value: Any, want: Scalar | list[Scalar]) -> bool:
    options = want if isinstance(want, list) else [want]
    # bool is an int in Python; True must not match 1 here, as it does not in JSON.
    return any(value == o and isinstance(value, bool) == isinstance(o, bool) for o in options)


def empty_matrix(dim: int) -> Matrix:
    """A matrix with no rows."""
    return np.zeros((0, dim), dtype=np.float32)


def open_index(
    config: IndexConfig, base_dir: Path | None = None, *, env: Mapping[str, str] | None = None
) -> Index:
    """The index ``index:`` configures; relative paths resolve against ``base_dir``."""
    base = base_dir or Path(".")
    path = config.default_path()
    if not path.is_absolute():
        path = base / path
    if config.backend == "qdrant":
        from keel.context.qdrant_index import QdrantIndex  # imported here: qdrant-client is optional

        if config.url is not None:
            key = None
            if config.api_key_env is not None:
                key = (env or {}).get(config.api_key_env)
                if not key:
                    raise ConfigError(
                        f"index.api_key_env: the variable {config.api_key_env} is not set or empty"
                    )
            return QdrantIndex(url=config.url, api_key=key, prefix=config.prefix)
        return QdrantIndex(path=path, prefix=config.prefix)
    from keel.context.sqlite_index import SQLiteIndex

    return SQLiteIndex(path)
