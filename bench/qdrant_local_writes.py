"""Time per document written to Qdrant's local mode (``QdrantIndex.replace``), as the collection grows.

    .venv/bin/python bench/qdrant_local_writes.py [--docs 200 1000] [--rewrite]

Each document has two chunks of about 200 words and random unit vectors (384 dimensions), written
into a fresh local-mode folder; ``--rewrite`` then writes every document a second time (a
changed file: the old generation's points are deleted). Prints Markdown.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from keel.context.chunk import Chunk
from keel.context.index import DocumentRecord
from keel.context.qdrant_index import QdrantIndex

Written = tuple[DocumentRecord, list[Chunk], np.ndarray]


def document(i: int, version: int, rng: np.random.Generator) -> Written:
    """Document ``i`` (version ``version``): its record, two chunks and their vectors."""
    source = f"doc{i}.md"
    chunks = [
        Chunk(source, j, f"version {version} of document {i}, part {j}, about things " * 20, hash=f"{i}.{j}")
        for j in range(2)
    ]
    vectors = rng.normal(size=(2, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return DocumentRecord(source, f"h{i}-{version}", f"f{i}-{version}", chunks=2), chunks, vectors


def write_all(index: QdrantIndex, docs: int, version: int, rng: np.random.Generator) -> float:
    """Write ``docs`` documents; the mean ms per document."""
    made = [document(i, version, rng) for i in range(docs)]
    t = time.perf_counter()
    for record, chunks, vectors in made:
        index.replace("bench", record, chunks, vectors)
    return (time.perf_counter() - t) / docs * 1000


def main() -> int:
    """Parse the arguments, run, print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--rewrite", action="store_true", help="then write every document again")
    args = parser.parse_args()
    print("| documents | first write, ms/doc | rewrite, ms/doc |\n|---:|---:|---:|")
    for n in args.docs:
        rng = np.random.default_rng(0)
        with tempfile.TemporaryDirectory() as tmp, QdrantIndex(Path(tmp) / "q") as index:
            index.create("bench", model="random", dim=384)
            first = write_all(index, n, 0, rng)
            again = f"{write_all(index, n, 1, rng):.1f}" if args.rewrite else "-"
        print(f"| {n} | {first:.1f} | {again} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
