"""Ingestion throughput and query latency of keel's retrieval on a corpus of at least 5,000 documents.

    .venv/bin/python bench/retrieval_latency.py [--docs 5000] [--queries 200] [--backend sqlite|qdrant]
                                                [--embedder local|hash] [--corpus-embedder same|hash]

The corpus is real text available offline: the docstrings of the modules, classes and functions
of the Python standard library, then of the packages installed in keel's virtualenv (read from
the source files with ``ast``, nothing imported), one Markdown file per docstring of at least
200 characters, in a temporary folder. Ingestion runs
``keel ingest``'s own code (``Ingester``: read, chunk, embed in batches, write one transaction per
file) and reports files/s and chunks/s. Queries are the first sentences of other docstrings
(paraphrase-free, so every mode finds something); each is timed end to end through
``Retriever.search`` (query embedding included for dense and hybrid), after 20 warm-up queries.

``--corpus-embedder hash`` fills the index with the hashing embedder's vectors (the same 384
dimensions, so a search costs the same) while queries are still embedded with ``--embedder``:
on a slow machine that measures query latency without waiting for the model to embed the
whole corpus; ingestion throughput with the model is then measured on a smaller ``--docs``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import platform
import re
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from keel.context.embed import Embedder, HashEmbedder
from keel.context.index import Index
from keel.context.ingest import Ingester
from keel.context.local_embed import LocalEmbedder
from keel.context.retrieve import Mode, Retriever
from keel.context.settings import RetrievalConfig

MIN_CHARS = 200
COLLECTION = "stdlib"


def docstrings(limit: int) -> list[tuple[str, str]]:
    """(qualified name, docstring) from the source of the standard library, then of the packages
    installed beside keel, in a stable order."""
    out: dict[str, str] = {}
    for key in ("stdlib", "purelib"):
        root = Path(sysconfig.get_paths()[key])
        for path in sorted(root.rglob("*.py")):
            if key == "stdlib" and "site-packages" in path.parts:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
                continue
            module = path.relative_to(root).with_suffix("").as_posix().replace("/", ".")
            for node in ast.walk(tree):
                if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                doc = ast.get_docstring(node)
                if doc and len(doc) >= MIN_CHARS:
                    name = module if isinstance(node, ast.Module) else f"{module}.{node.name}"
                    out.setdefault(name, doc)
                    if len(out) >= limit:
                        return list(out.items())
    return list(out.items())


def write_corpus(folder: Path, corpus: list[tuple[str, str]]) -> None:
    """One Markdown file per docstring, titled with its qualified name."""
    folder.mkdir()
    for i, (name, doc) in enumerate(corpus):
        Path(folder, f"{i:05}.md").write_text(f"# {name}\n\n{doc}\n", encoding="utf-8")


def first_sentence(text: str) -> str:
    """A docstring's first sentence, as a question-sized query."""
    return re.split(r"(?<=[.!?])\s", " ".join(text.split()), maxsplit=1)[0][:200]


def open_backend(backend: str, where: Path) -> Index:
    """A fresh index of the named backend in ``where``."""
    if backend == "qdrant":
        from keel.context.qdrant_index import QdrantIndex

        return QdrantIndex(where / "qdrant")
    from keel.context.sqlite_index import SQLiteIndex

    return SQLiteIndex(where / "index.db")


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank)."""
    return float(np.percentile(np.asarray(values), p, method="nearest"))


async def run(args: argparse.Namespace) -> str:
    """Ingest, then time the queries in every mode; the result as Markdown."""
    docs = docstrings(args.docs + args.queries * 3)
    corpus, held_out = docs[: args.docs], docs[args.docs :]
    if len(corpus) < args.docs:
        print(f"only {len(corpus)} docstrings found", file=sys.stderr)
    queries = [first_sentence(d) for _, d in held_out[: args.queries]]
    embedder: Embedder = HashEmbedder(384) if args.embedder == "hash" else LocalEmbedder(runtime=args.runtime)
    model = "hash-384" if args.embedder == "hash" else f"all-MiniLM-L6-v2 ({args.runtime})"
    corpus_embedder = HashEmbedder(384) if args.corpus_embedder == "hash" else embedder
    corpus_model = "hash-384" if args.corpus_embedder == "hash" else model
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "docs")
        await asyncio.to_thread(write_corpus, folder, corpus)
        index = open_backend(args.backend, Path(tmp))
        try:
            await embedder.start()
            ingester = Ingester(index, corpus_embedder, model=corpus_model, base_dir=Path(tmp))
            t0 = time.perf_counter()
            report = await ingester.ingest([folder], COLLECTION)
            seconds = time.perf_counter() - t0
            print(report.summary(), file=sys.stderr)
            info = index.collection(COLLECTION)
            assert info is not None
            lines += [
                f"Corpus: {info.documents} docstrings, {info.chunks} chunks; backend {args.backend}; "
                f"corpus embedded with {corpus_model}, queries with {model}; "
                f"{platform.machine()}, {os.cpu_count()} cores, "
                f"load average {os.getloadavg()[0]:.1f} at the end",
                "",
                "| ingestion | files/s | chunks/s | seconds |",
                "|---|---:|---:|---:|",
                f"| {report.count('ingested')} files, {report.chunks} chunks | "
                f"{report.count('ingested') / seconds:.1f} | {report.chunks / seconds:.1f} | {seconds:.1f} |",
                "",
                f"| query ({len(queries)} queries, k=5) | p50 ms | p99 ms | mean ms |",
                "|---|---:|---:|---:|",
            ]
            config = RetrievalConfig(collection=COLLECTION, k=5)
            retriever = Retriever(index, embedder, config)
            timings: dict[str, list[float]] = {"query embedding alone": []}
            for q in queries[:20]:  # warm-up: the vectors load into memory, the model's first batches
                await retriever.search(COLLECTION, q)
            for q in queries:
                t = time.perf_counter()
                await embedder.embed([q])
                timings["query embedding alone"].append((time.perf_counter() - t) * 1000)
            modes: list[tuple[str, Mode, float | None]] = [
                ("bm25", "keyword", 1.0),
                ("dense (embedding included)", "dense", 1.0),
                ("hybrid (embedding included)", "hybrid", 1.0),
                ("hybrid + MMR (embedding included)", "hybrid", 0.7),
            ]
            for label, mode, lam in modes:
                timings[label] = []
                for q in queries:
                    t = time.perf_counter()
                    await retriever.search(COLLECTION, q, mode=mode, mmr_lambda=lam)
                    timings[label].append((time.perf_counter() - t) * 1000)
            for label, values in timings.items():
                lines.append(
                    f"| {label} | {percentile(values, 50):.2f} | {percentile(values, 99):.2f} | "
                    f"{sum(values) / len(values):.2f} |"
                )
        finally:
            await embedder.aclose()
            index.close()
    return "\n".join(lines)


def main() -> int:
    """Parse the arguments, run, print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "qdrant"))
    parser.add_argument("--embedder", default="local", choices=("local", "hash"))
    parser.add_argument(
        "--runtime", default="auto", choices=("auto", "onnx", "torch"), help="the local model's runtime"
    )
    parser.add_argument("--corpus-embedder", default="same", choices=("same", "hash"))
    print(asyncio.run(run(parser.parse_args())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
