"""The typed shape of the Context layer's keys in keel.yaml: ``index:`` (where chunks live) and a
feature's ``retrieval:`` (what it retrieves and how much of it goes into the prompt).

Kept apart from ``keel.settings`` (which imports these classes) so the layer owns its own keys.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scalar = str | int | float | bool
FilterValue = Scalar | list[Scalar]
Filters = dict[str, FilterValue]
"""Chunk metadata filters: every key must match; a list matches any of its values."""

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FILTER_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_collection(name: str) -> str:
    """``name`` if it is a valid collection name, else ValueError saying what is allowed."""
    if not COLLECTION_NAME.match(name):
        raise ValueError("a collection name uses letters, digits and _ . - (at most 64 characters)")
    return name


def check_filters(filters: Filters) -> Filters:
    """``filters`` if every key is a plain name and every value a scalar or a non-empty list of them."""
    for key, value in filters.items():
        if not FILTER_KEY.match(key):
            raise ValueError(f"filter key {key!r}: use letters, digits, _ and - (at most 64 characters)")
        if isinstance(value, list) and not value:
            raise ValueError(f"filter {key!r}: an empty list matches nothing")
    return filters


class ChunkingConfig(_Strict):
    """How documents are cut: sections by heading, then paragraphs packed up to ``max_tokens``."""

    # all-MiniLM-L6-v2 reads at most 256 word pieces; ~200 o200k tokens (plus the heading line)
    # stays inside that, so no chunk is embedded truncated.
    max_tokens: int = Field(200, ge=32, le=8192)
    overlap_tokens: int = Field(30, ge=0)

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("overlap_tokens must be less than half of max_tokens")
        return self


class IndexConfig(_Strict):
    """Where chunks and their vectors live: one SQLite file (embedded) or Qdrant (scale-out)."""

    backend: Literal["sqlite", "qdrant"] = "sqlite"
    # sqlite: the index file (its own file, so ingesting never waits on the ledger's writer);
    # qdrant: a local-mode folder, unless ``url`` names a server. Relative to the config file.
    path: Path | None = None
    url: str | None = None  # qdrant server, e.g. http://127.0.0.1:6333
    api_key_env: str | None = None  # qdrant server key, read from this environment variable
    prefix: str = Field("keel_", pattern=r"^[A-Za-z0-9_-]{0,32}$")  # qdrant collection name prefix
    chunking: ChunkingConfig = ChunkingConfig()

    @model_validator(mode="after")
    def _where(self) -> IndexConfig:
        if self.backend == "sqlite" and self.url is not None:
            raise ValueError("url is for backend qdrant; the sqlite index is a file (path)")
        if self.url is not None and self.path is not None:
            raise ValueError("give either path (qdrant local mode) or url (a qdrant server), not both")
        return self

    def default_path(self) -> Path:
        """The path used when ``path`` is not given."""
        return self.path or Path(".keel/index.db" if self.backend == "sqlite" else ".keel/qdrant")


class RetrievalConfig(_Strict):
    """Turns retrieval on for a feature: the best chunks for the last user message go into the prompt."""

    collection: str | None = None  # None: only documents the call brings itself
    k: int = Field(5, ge=1, le=100)  # most chunks put into the prompt
    budget_tokens: int = Field(1500, ge=50)  # most tokens the sources may take
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    candidates: int = Field(50, ge=1, le=1000)  # fetched from each retriever before fusion
    keyword_weight: float = Field(1.0, ge=0)  # weights in reciprocal rank fusion
    dense_weight: float = Field(1.0, ge=0)
    fusion_k: int = Field(60, ge=1)  # the RRF constant: score = sum(weight / (fusion_k + rank))
    mmr_lambda: float | None = Field(0.7, ge=0, le=1)  # 1 or null: no diversity re-ranking
    filters: Filters = Field(default_factory=dict)
    documents: bool = True  # calls may bring their own documents (request ``keel.documents``)
    max_documents: int = Field(50, ge=1)  # most documents one call may bring

    @field_validator("collection")
    @classmethod
    def _collection_ok(cls, v: str | None) -> str | None:
        return None if v is None else check_collection(v)

    @field_validator("filters")
    @classmethod
    def _filters_ok(cls, v: Filters) -> Filters:
        return check_filters(v)

    @model_validator(mode="after")
    def _some_weight(self) -> RetrievalConfig:
        if self.mode == "hybrid" and self.keyword_weight == 0 and self.dense_weight == 0:
            raise ValueError("hybrid retrieval needs keyword_weight or dense_weight above 0")
        if self.collection is None and not self.documents:
            raise ValueError("retrieval needs a collection, or documents: true (calls bring their own)")
        return self


def index_config(settings: object) -> IndexConfig:
    """The ``index:`` section of loaded settings (its defaults when the file has none)."""
    found = getattr(settings, "index", None)
    return found if isinstance(found, IndexConfig) else IndexConfig()
