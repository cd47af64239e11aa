"""Hybrid retrieval: BM25 and dense candidates, fused by reciprocal rank, then MMR for diversity.

    candidates = keyword(query, n) and dense(embed(query), n)       (each best first, filtered)
    fused      = sum over lists of weight / (fusion_k + rank)        (rank from 1; RRF)
    selected   = MMR over the fused top: lambda * relevance - (1 - lambda) * max similarity to
                 the chunks already selected (relevance: fused score scaled min-max to 0..1 over the pool)

Chunks with equal content hashes (the same text in two files) count once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from keel.context.chunk import Chunk
from keel.context.embed import Embedder, Matrix
from keel.context.index import Hit, Index
from keel.context.settings import Filters, RetrievalConfig

Mode = Literal["hybrid", "dense", "keyword"]


@dataclass(slots=True, frozen=True)
class Scored:
    """A retrieved chunk with its fused score and its rank in each retriever (None: not found by it)."""

    chunk: Chunk
    score: float
    keyword_rank: int | None = None
    dense_rank: int | None = None


def rrf(
    lists: Sequence[Sequence[Hit]], weights: Sequence[float], fusion_k: int = 60
) -> list[tuple[Chunk, float, list[int | None]]]:
    """Reciprocal rank fusion of ranked lists: each chunk with its fused score and its rank per list."""
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    ranks: dict[str, list[int | None]] = {}
    for i, (hits, weight) in enumerate(zip(lists, weights, strict=True)):
        for rank, hit in enumerate(hits, start=1):
            cid = hit.chunk.id
            chunks.setdefault(cid, hit.chunk)
            scores[cid] = scores.get(cid, 0.0) + weight / (fusion_k + rank)
            ranks.setdefault(cid, [None] * len(lists))[i] = rank
    order = sorted(scores, key=lambda c: (-scores[c], c))
    return [(chunks[c], scores[c], ranks[c]) for c in order]


def mmr(relevance: Sequence[float], vectors: Matrix, k: int, lam: float) -> list[int]:
    """Indices of ``k`` items chosen by maximal marginal relevance (``lam`` 1: relevance alone)."""
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(relevance, dtype=np.float32)
    spread = float(rel.max() - rel.min())
    rel = (rel - rel.min()) / spread if spread > 0 else np.ones_like(rel)
    sims = vectors @ vectors.T if len(vectors) else np.zeros((n, n), dtype=np.float32)
    chosen: list[int] = []
    closest = np.full(n, -np.inf, dtype=np.float32)  # each item's highest similarity to a chosen one
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = lam * rel - (1 - lam) * penalty
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        closest = np.maximum(closest, sims[best])
    return chosen


class Retriever:
    """Searches one index with one embedder the way a feature's ``retrieval:`` says."""

    def __init__(
        self, index: Index, embedder: Embedder | None, config: RetrievalConfig | None = None
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.config = config or RetrievalConfig(documents=True)

    async def embed(self, query: str) -> Matrix:
        """The query's unit vector (one row)."""
        if self.embedder is None:
            raise ValueError("dense retrieval needs an embedder")
        return await self.embedder.embed([query])

    async def search(
        self,
        collection: str,
        query: str,
        *,
        k: int | None = None,
        filters: Filters | None = None,
        mode: Mode | None = None,
        mmr_lambda: float | None = None,
    ) -> list[Scored]:
        """The best ``k`` chunks for ``query``, most relevant first; what is not given comes from the
        config (``mmr_lambda`` 1.0 turns diversity off for this search; ``filters`` are added to
        the configured ones, which win on a shared key)."""
        c = self.config
        k = c.k if k is None else k
        mode = mode or c.mode
        lam = c.mmr_lambda if mmr_lambda is None else mmr_lambda
        flt = {**(filters or {}), **c.filters}  # the configured filters always hold: a caller narrows
        n = max(c.candidates, k)
        # SQLite and numpy release the GIL: the index work runs beside the event loop, and the
        # keyword search runs while the query is being embedded.
        embedding = asyncio.ensure_future(self.embed(query)) if mode != "keyword" else None
        try:
            keyword = (
                await asyncio.to_thread(self.index.keyword, collection, query, n, flt)
                if mode != "dense"
                else []
            )
            vector = await embedding if embedding is not None else None
        finally:
            if embedding is not None and not embedding.done():
                embedding.cancel()
        return await asyncio.to_thread(self.select, collection, query, vector, k, flt, mode, lam, keyword)

    def select(
        self,
        collection: str,
        query: str,
        vector: Matrix | None,
        k: int,
        flt: Filters,
        mode: Mode,
        lam: float | None,
        keyword: list[Hit] | None = None,
    ) -> list[Scored]:
        """The blocking part of ``search``: candidates from the index (``keyword``: the keyword
        hits, when already found), fusion, diversity."""
        c = self.config
        n = max(c.candidates, k)
        if keyword is None:
            keyword = self.index.keyword(collection, query, n, flt) if mode != "dense" else []
        dense = self.index.dense(collection, vector, n, flt) if vector is not None else []
        weights = (c.keyword_weight if mode != "dense" else 0.0, c.dense_weight if mode != "keyword" else 0.0)
        fused = _distinct(rrf([keyword, dense], weights, c.fusion_k))
        if lam is None or lam >= 1.0 or len(fused) <= 1:
            picked = list(range(min(k, len(fused))))
        else:
            pool = fused[: max(4 * k, 20)]
            try:
                vectors = self.index.vectors(collection, [f[0].id for f in pool])
            except KeyError:  # a document was rewritten since the search: rank without diversity
                vectors = None
            picked = (
                mmr([f[1] for f in pool], vectors, k, lam)
                if vectors is not None
                else list(range(min(k, len(fused))))
            )
        return [Scored(fused[i][0], fused[i][1], fused[i][2][0], fused[i][2][1]) for i in picked]


def _distinct(
    fused: list[tuple[Chunk, float, list[int | None]]],
) -> list[tuple[Chunk, float, list[int | None]]]:
    """The first of each content hash (copies of a text in several files would crowd the prompt)."""
    seen: set[str] = set()
    out = []
    for item in fused:
        h = item[0].hash or item[0].id
        if h not in seen:
            seen.add(h)
            out.append(item)
    return out
