"""Retrieval quality on BEIR-format folders: nDCG@10 and recall@100 for BM25, dense and hybrid.

    .venv/bin/python bench/retrieval_beir.py [DIR ...] [--modes bm25 dense hybrid hybrid+mmr]
                                             [--backend sqlite|qdrant] [--embedder local|hash] [--json]

A folder holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv``. With no DIR: keel's
own ``data/pydoc_beir`` and every folder under ``../shared/data/beir/``; a folder missing one of
the three files is skipped, and the output says so. Every mode runs keel's real code on the
same index in the same run: BM25 is SQLite FTS5 ``bm25()`` (or Qdrant's sparse vectors),
dense is all-MiniLM-L6-v2 (``--embedder local``, the default), hybrid is reciprocal rank fusion
of the two top-100 lists (k=60, equal weights), hybrid+mmr adds MMR (lambda 0.7) on top.
Each document is one chunk (title as its heading line), as BEIR evaluates whole documents.
Metrics follow BEIR (pytrec_eval): nDCG@10 with linear gains, recall@100; a hit whose id
equals the query's id is ignored. Prints Markdown for docs/benchmarks.md (or JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keel.context.beir import chunks_of, fill, load, score
from keel.context.embed import Embedder, HashEmbedder, Matrix
from keel.context.index import Index
from keel.context.local_embed import LocalEmbedder
from keel.context.retrieve import Retriever
from keel.context.settings import RetrievalConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "beir"
MODES = ("bm25", "dense", "hybrid", "hybrid+mmr")
COLLECTION = "beir"
ANCHORS = {"scifact": {"bm25": 0.665, "dense": 0.645}}  # published nDCG@10: BEIR paper, SBERT/MTEB


async def embed_all(embedder: Embedder, texts: list[str], what: str, batch: int = 256) -> Matrix:
    """Embed in batches, printing progress to stderr."""
    parts = []
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        parts.append(await embedder.embed(texts[i : i + batch]))
        done = min(i + batch, len(texts))
        print(
            f"\r  embedding {what}: {done}/{len(texts)} ({time.perf_counter() - t0:.0f} s)",
            end="",
            file=sys.stderr,
        )
    print(file=sys.stderr)
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)


def open_backend(backend: str, where: Path) -> Index:
    """A fresh index of the named backend in ``where``."""
    if backend == "qdrant":
        from keel.context.qdrant_index import QdrantIndex

        return QdrantIndex(where / "qdrant")
    from keel.context.sqlite_index import SQLiteIndex

    return SQLiteIndex(where / "index.db")


async def evaluate(
    folder: Path, modes: Sequence[str], backend: str, embedder: Embedder, model: str
) -> dict[str, Any]:
    """Index the folder's corpus and score every mode on its queries."""
    corpus, queries, qrels = load(folder)
    chunks = chunks_of(corpus)
    dense = any(m != "bm25" for m in modes)
    out: dict[str, Any] = {
        "name": folder.name,
        "documents": len(chunks),
        "queries": len(queries),
        "modes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        index = open_backend(backend, Path(tmp))
        try:
            t0 = time.perf_counter()
            vectors = (
                await embed_all(embedder, [c.indexed_text for c in chunks], "corpus")
                if dense
                else np.zeros((len(chunks), 1), dtype=np.float32)
            )
            fill(index, COLLECTION, chunks, vectors, model if dense else "none")
            out["index_seconds"] = round(time.perf_counter() - t0, 1)
            qvecs = await embed_all(embedder, list(queries.values()), "queries") if dense else None
            retriever = Retriever(
                index, embedder, RetrievalConfig(collection=COLLECTION, k=100, candidates=100)
            )
            for mode in modes:
                kind = {"bm25": "keyword", "dense": "dense"}.get(mode, "hybrid")
                t1 = time.perf_counter()
                got = score(
                    retriever, COLLECTION, queries, qrels, kind, qvecs, 0.7 if mode == "hybrid+mmr" else 1.0
                )  # type: ignore[arg-type]
                out["modes"][mode] = {
                    "ndcg@10": round(got.ndcg10, 4),
                    "recall@100": round(got.recall100, 4),
                    "ms_per_query": round((time.perf_counter() - t1) * 1000 / max(len(queries), 1), 2),
                }
        finally:
            index.close()
    return out


def folders(given: list[Path]) -> tuple[list[Path], list[str]]:
    """The folders to run, and notes on those skipped."""
    candidates = given or [ROOT / "data" / "pydoc_beir", *sorted(p for p in SHARED.glob("*") if p.is_dir())]
    run, skipped = [], []
    for f in candidates:
        need = [f / "corpus.jsonl", f / "queries.jsonl", f / "qrels" / "test.tsv"]
        lacking = [str(p.relative_to(f)) for p in need if not p.is_file()]
        if lacking:
            skipped.append(f"{f}: skipped, no {', '.join(lacking)}")
        else:
            run.append(f)
    if not given and not any(SHARED.glob("*")):
        skipped.append(f"{SHARED}: no BEIR data sets there (SciFact, the reference, was not run)")
    return run, skipped


def markdown(results: list[dict[str, Any]], skipped: list[str], backend: str, embedder_name: str) -> str:
    """The results as the tables in docs/benchmarks.md."""
    lines = [
        f"Backend: {backend}; dense: {embedder_name}; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        "| data set | docs | queries | mode | nDCG@10 | recall@100 | ms/query | published nDCG@10 |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        anchors = ANCHORS.get(r["name"].lower(), {})
        for mode, m in r["modes"].items():
            anchor = anchors.get(mode)
            lines.append(
                f"| {r['name']} | {r['documents']} | {r['queries']} | {mode} | {m['ndcg@10']:.3f} | "
                f"{m['recall@100']:.3f} | {m['ms_per_query']:.1f} | {anchor if anchor is not None else '-'} |"
            )
    lines += [f"\n{s}" for s in skipped]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    """Run every folder; print Markdown or JSON."""
    run, skipped = folders([Path(d) for d in args.dirs])
    for s in skipped:
        print(s, file=sys.stderr)
    embedder: Embedder = HashEmbedder(384) if args.embedder == "hash" else LocalEmbedder(runtime=args.runtime)
    model = "hash-384" if args.embedder == "hash" else f"all-MiniLM-L6-v2 ({args.runtime})"
    results = []
    try:
        for f in run:
            print(f"{f}:", file=sys.stderr)
            results.append(await evaluate(f, args.modes, args.backend, embedder, model))
    finally:
        await embedder.aclose()
    if args.json:
        print(json.dumps({"results": results, "skipped": skipped}, indent=2))
    else:
        print(markdown(results, skipped, args.backend, model))
    return 0


def main() -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "dirs", nargs="*", help="BEIR-format folders (default: pydoc_beir and ../shared/data/beir/*)"
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "qdrant"))
    parser.add_argument("--embedder", default="local", choices=("local", "hash"))
    parser.add_argument(
        "--runtime", default="auto", choices=("auto", "onnx", "torch"), help="the local model's runtime"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
