"""Ingestion: files → chunks → vectors → the index, one atomic write per file.

- A file whose fingerprint (its bytes' hash, the chunking settings, the embedding model and the
  metadata given) matches what the index holds is ``unchanged``: not parsed, not embedded.
- A changed file replaces all of its chunks in one write; chunks whose content hash the
  collection already holds reuse the stored vector instead of being embedded again.
- A file that cannot be read or holds no text is ``skipped`` with the reason; nothing of it is
  written. A crash leaves every file fully old or fully new, and a re-run finishes the job.

Files are embedded in batches across files (small files would waste the model's batches), and
the next batch is parsed while the previous one is being embedded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from keel.context.chunk import Chunk, Chunker
from keel.context.embed import Embedder, Matrix
from keel.context.formats import SUPPORTED, file_type, read_document
from keel.context.index import DocumentRecord, Index
from keel.context.settings import FILTER_KEY, ChunkingConfig, check_collection
from keel.errors import ConfigError, InvalidRequest

Status = Literal["ingested", "unchanged", "skipped", "removed"]
CHUNKER_VERSION = 1  # bump when chunking changes, so every file is chunked again


@dataclass(slots=True, frozen=True)
class FileOutcome:
    """What happened to one file."""

    path: str
    source: str
    status: Status
    chunks: int = 0
    embedded: int = 0  # chunks that needed the embedder (the rest reused stored vectors)
    reason: str = ""

    def line(self) -> str:
        """One line for the CLI, e.g. ``skipped: docs/bad.pdf: corrupt PDF (...)``."""
        if self.status == "skipped":
            return f"skipped: {self.path}: {self.reason}"
        if self.status == "ingested":
            return f"ingested: {self.path} ({self.chunks} chunks, {self.embedded} embedded)"
        return f"{self.status}: {self.path}"


@dataclass(slots=True)
class IngestReport:
    """The outcome of one ingest run."""

    collection: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        """Files with this outcome."""
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def chunks(self) -> int:
        """Chunks written in this run."""
        return sum(o.chunks for o in self.outcomes if o.status == "ingested")

    @property
    def embedded(self) -> int:
        """Chunks embedded in this run."""
        return sum(o.embedded for o in self.outcomes)

    def summary(self) -> str:
        """One line: files per outcome, chunks and throughput."""
        rate = self.chunks / self.seconds if self.seconds > 0 else 0.0
        parts = [f"{self.count('ingested')} ingested ({self.chunks} chunks, {self.embedded} embedded)"]
        parts += [f"{self.count(s)} {s}" for s in ("unchanged", "skipped", "removed") if self.count(s)]
        return (
            f"{self.collection}: {len(self.outcomes)} files: {', '.join(parts)} "
            f"in {self.seconds:.1f} s ({rate:.0f} chunks/s)"
        )


@dataclass(slots=True)
class _Prepared:
    path: Path
    record: DocumentRecord
    chunks: list[Chunk]


def parse_metadata(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` pairs as metadata (numbers and true/false typed); InvalidRequest on a bad pair."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not FILTER_KEY.match(key):
            raise InvalidRequest(f"--meta {pair!r}: expected key=value, the key in letters, digits, _ and -")
        value: Any = raw
        if raw in ("true", "false"):
            value = raw == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(raw)
                    break
                except ValueError:
                    continue
        out[key] = value
    return out


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[FileOutcome]]:
    """Files to ingest (directories walked for supported suffixes, hidden ones left out), and
    the named paths that do not exist."""
    files: list[Path] = []
    missing: list[FileOutcome] = []
    for p in paths:
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [
                    Path(root, n)
                    for n in sorted(names)
                    if not n.startswith(".") and Path(n).suffix.lower() in SUPPORTED
                ]
        elif p.is_file():
            files.append(p)
        else:
            missing.append(FileOutcome(str(p), str(p), "skipped", reason="no such file or directory"))
    return list(dict.fromkeys(files)), missing


class Ingester:
    """Writes files into a collection of ``index`` with ``embedder`` (see the module docstring)."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        *,
        model: str,
        chunking: ChunkingConfig | None = None,
        base_dir: Path | None = None,
        batch_chunks: int = 128,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.model = model
        self.chunking = chunking or ChunkingConfig()
        self.chunker = Chunker(self.chunking)
        self.base_dir = (base_dir or Path.cwd()).resolve()
        self.batch_chunks = batch_chunks

    def source_of(self, path: Path) -> str:
        """How a file is named in the index: relative to the base directory when under it."""
        full = path.resolve()
        try:
            return full.relative_to(self.base_dir).as_posix()
        except ValueError:
            return full.as_posix()

    def fingerprint(self, content_hash: str, metadata: dict[str, Any]) -> str:
        """What decides whether a file must be ingested again."""
        how = json.dumps(
            [content_hash, self.chunking.model_dump(), self.model, CHUNKER_VERSION, metadata],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(how.encode()).hexdigest()[:32]

    async def ingest(
        self,
        paths: Sequence[Path],
        collection: str,
        *,
        metadata: dict[str, Any] | None = None,
        prune: bool = False,
        progress: Callable[[FileOutcome], None] | None = None,
        files: list[Path] | None = None,
    ) -> IngestReport:
        """Ingest ``paths`` (or the already ``discover``-ed ``files``) into ``collection``."""
        try:
            check_collection(collection)
        except ValueError as exc:
            raise InvalidRequest(f"--collection {collection!r}: {exc}") from None
        info = self.index.collection(collection)
        if info is not None and info.model != self.model:
            raise ConfigError(
                f"collection {collection!r} was embedded with {info.model!r}; the configured embedder is "
                f"{self.model!r}: drop the collection (keel collections drop {collection}) and ingest again"
            )
        report = IngestReport(collection)
        t0 = time.perf_counter()

        def done(outcome: FileOutcome) -> None:
            report.outcomes.append(outcome)
            if progress is not None:
                progress(outcome)

        if files is None:
            files, missing = discover(paths)
            for m in missing:
                done(m)
        meta = dict(metadata or {})
        batch: list[_Prepared] = []
        embedding: asyncio.Task[list[FileOutcome]] | None = None
        for path in files:
            # In a thread, so the batch before it is embedded meanwhile.
            prepared = await asyncio.to_thread(self._prepare, path, collection, meta)
            if isinstance(prepared, FileOutcome):
                done(prepared)
                continue
            batch.append(prepared)
            if sum(len(p.chunks) for p in batch) >= self.batch_chunks:
                if embedding is not None:
                    for o in await embedding:
                        done(o)
                embedding = asyncio.create_task(self._write(collection, batch))
                batch = []
        if embedding is not None:
            for o in await embedding:
                done(o)
        if batch:
            for o in await self._write(collection, batch):
                done(o)
        if prune:
            for o in self._prune(collection, paths, {o.source for o in report.outcomes}):
                done(o)
        await asyncio.to_thread(self.index.tidy, collection)  # what an interrupted run left, if any
        report.seconds = time.perf_counter() - t0
        return report

    def _prepare(self, path: Path, collection: str, meta: dict[str, Any]) -> _Prepared | FileOutcome:
        """Read, hash, and (when changed) parse and chunk one file."""
        source = self.source_of(path)
        try:
            data = path.read_bytes()
            mtime = path.stat().st_mtime
        except OSError as exc:
            return FileOutcome(str(path), source, "skipped", reason=exc.strerror or str(exc))
        content = hashlib.sha256(data).hexdigest()
        fingerprint = self.fingerprint(content, meta)
        known = self.index.document(collection, source)
        if known is not None and known.fingerprint == fingerprint:
            return FileOutcome(str(path), source, "unchanged", chunks=known.chunks)
        if not data.strip():
            return FileOutcome(str(path), source, "skipped", reason="empty file")
        try:
            doc = read_document(path, data)
        except InvalidRequest as exc:
            return FileOutcome(str(path), source, "skipped", reason=exc.message)
        chunk_meta = {"type": file_type(path), "mtime": round(mtime, 3), **meta}
        chunks = self.chunker.chunks(source, doc, chunk_meta)
        if not chunks:
            return FileOutcome(str(path), source, "skipped", reason="empty: no text")
        record = DocumentRecord(source, content, fingerprint, doc.title, len(chunks), meta, time.time())
        return _Prepared(path, record, chunks)

    async def _write(self, collection: str, batch: list[_Prepared]) -> list[FileOutcome]:
        """Embed what the collection does not hold yet, then write each file in its own transaction."""
        hashes = [c.hash for p in batch for c in p.chunks]
        known = await asyncio.to_thread(self.index.known_vectors, collection, hashes)
        todo = [c for p in batch for c in p.chunks if c.hash not in known]
        texts = {c.hash: c.indexed_text for c in todo}  # a text repeated across files is embedded once
        fresh: dict[str, Matrix] = {}
        if texts:
            rows = await self.embedder.embed(list(texts.values()))
            fresh = {h: rows[i : i + 1] for i, h in enumerate(texts)}
        vectors = {**known, **fresh}
        dim = int(next(iter(vectors.values())).shape[1])
        if self.index.collection(collection) is None:
            await asyncio.to_thread(self.index.create, collection, model=self.model, dim=dim)
        out = []
        counted: set[str] = set()  # a text shared by several files is counted where it came first
        for p in batch:
            matrix = np.concatenate([vectors[c.hash] for c in p.chunks]).astype(np.float32, copy=False)
            await asyncio.to_thread(self.index.replace, collection, p.record, p.chunks, matrix)
            mine = {c.hash for c in p.chunks if c.hash in fresh} - counted
            counted |= mine
            embedded = len(mine)
            out.append(FileOutcome(str(p.path), p.record.source, "ingested", len(p.chunks), embedded))
        return out

    def _prune(self, collection: str, paths: Sequence[Path], seen: set[str]) -> list[FileOutcome]:
        """Remove documents under the given directories whose files are gone."""
        if self.index.collection(collection) is None:
            return []
        roots = [self.source_of(p) for p in paths if p.is_dir()]
        out = []
        for doc in self.index.documents(collection):
            under = any(
                doc.source == r or doc.source.startswith(r.rstrip("/") + "/") or r == "." for r in roots
            )
            if under and doc.source not in seen:
                self.index.delete(collection, doc.source)
                out.append(FileOutcome(doc.source, doc.source, "removed"))
        return out
