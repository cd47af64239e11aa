"""Retrieval quality floor on data/pydoc_beir (506 passages of Python's documentation, 64
hand-checked questions): BM25 and hybrid with the hashing embedder, on the SQLite index (the
contract suite shows Qdrant ranks alike). The figures with all-MiniLM-L6-v2, and on Qdrant, are
in docs/benchmarks.md (bench/retrieval_beir.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from keel.context.beir import Scores, chunks_of, fill, load, score
from keel.context.embed import HashEmbedder
from keel.context.retrieve import Mode, Retriever
from keel.context.settings import RetrievalConfig
from keel.context.sqlite_index import SQLiteIndex

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "data" / "pydoc_beir"
EMBED = HashEmbedder(256)


@pytest.fixture(scope="module")
def scored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Mode, Scores]]:
    corpus, queries, qrels = load(DATA)
    chunks = chunks_of(corpus)
    vectors = np.concatenate([EMBED.vector(c.indexed_text) for c in chunks])
    qvecs = np.concatenate([EMBED.vector(q) for q in queries.values()])
    tmp = tmp_path_factory.mktemp("beir")
    with SQLiteIndex(tmp / "index.db") as index:
        fill(index, "pydoc", chunks, vectors, "hash-256")
        retriever = Retriever(index, EMBED, RetrievalConfig(collection="pydoc", k=100, candidates=100))
        yield {m: score(retriever, "pydoc", queries, qrels, m, qvecs) for m in ("keyword", "hybrid")}


def test_the_set_is_what_its_readme_says() -> None:
    corpus, queries, qrels = load(DATA)
    assert len(corpus) == 506 and len(queries) == 64 >= 50
    assert sum(len(r) for r in qrels.values()) == 85 and set(qrels) == set(queries)


def test_bm25_stays_above_its_floor(scored: dict[Mode, Scores]) -> None:
    bm25 = scored["keyword"]
    assert bm25.ndcg10 >= 0.70 and bm25.recall100 >= 0.95  # measured 0.760 / 1.000


def test_hybrid_with_a_weak_embedder_stays_close_to_bm25(scored: dict[Mode, Scores]) -> None:
    assert scored["hybrid"].ndcg10 >= 0.60 and scored["hybrid"].recall100 >= 0.95  # measured 0.670 / 1.000
