"""BEIR-format retrieval sets (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``) and their
metrics as BEIR computes them (pytrec_eval): nDCG@10 with linear gains and recall@100.

Used by ``bench/retrieval_beir.py`` and by the test suite's quality floor on ``data/pydoc_beir``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keel.context.chunk import Chunk, make_chunk
from keel.context.embed import Matrix
from keel.context.index import DocumentRecord, Index
from keel.context.retrieve import Mode, Retriever

Corpus = dict[str, dict[str, str]]
Qrels = dict[str, dict[str, int]]


def load(folder: Path) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """Corpus (id → title, text), queries (id → text) and qrels (query → doc → grade) of a folder."""
    corpus = {}
    with (folder / "corpus.jsonl").open() as f:
        for line in f:
            d = json.loads(line)
            corpus[str(d["_id"])] = {"title": d.get("title") or "", "text": d.get("text") or ""}
    queries = {}
    with (folder / "queries.jsonl").open() as f:
        for line in f:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / "test.tsv").open() as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # the header
            qid, did, grade = parts[0], parts[1], int(parts[2])
            if grade > 0:
                qrels.setdefault(qid, {})[did] = grade
    return corpus, {q: t for q, t in queries.items() if q in qrels}, qrels


def ndcg(ranked: Sequence[str], rels: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (as trec_eval)."""
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: Sequence[str], rels: dict[str, int], k: int = 100) -> float:
    """Share of the relevant documents found in the top ``k``."""
    return len(set(ranked[:k]) & set(rels)) / len(rels) if rels else 0.0


def chunks_of(corpus: Corpus) -> list[Chunk]:
    """One chunk per document (its title as the heading line), as BEIR evaluates whole documents."""
    return [make_chunk(d, 0, doc["text"], doc["title"]) for d, doc in corpus.items()]


def fill(index: Index, collection: str, chunks: Sequence[Chunk], vectors: Matrix, model: str) -> None:
    """Write every chunk into a new collection, one document each."""
    index.create(collection, model=model, dim=int(vectors.shape[1]))
    for i, c in enumerate(chunks):
        index.replace(collection, DocumentRecord(c.source, "", ""), [c], vectors[i : i + 1])


@dataclass(slots=True, frozen=True)
class Scores:
    """Mean nDCG@10 and recall@100 over the queries."""

    ndcg10: float
    recall100: float


def score(
    retriever: Retriever,
    collection: str,
    queries: dict[str, str],
    qrels: Qrels,
    mode: Mode,
    vectors: Matrix | None = None,
    mmr_lambda: float = 1.0,
) -> Scores:
    """Run every query (``vectors``: the queries' embeddings, row per query in order) and score it."""
    n, r = [], []
    for i, (qid, text) in enumerate(queries.items()):
        vec = vectors[i : i + 1] if vectors is not None and mode != "keyword" else None
        found = retriever.select(collection, text, vec, 100, {}, mode, mmr_lambda)
        ranked = [s.chunk.source for s in found if s.chunk.source != qid]
        n.append(ndcg(ranked, qrels[qid]))
        r.append(recall(ranked, qrels[qid]))
    return Scores(float(np.mean(n)), float(np.mean(r)))
