"""Ingestion through the library: formats, skips with reasons, nothing re-done for unchanged files,
changed files replaced whole, a failure halfway leaving every file old or new."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from tests.context.context_files import MARKDOWN, killed_before_commit, write_corpus

from keel.context.embed import HashEmbedder, Matrix
from keel.context.index import Index
from keel.context.ingest import Ingester, IngestReport, parse_metadata
from keel.context.qdrant_index import QdrantIndex
from keel.context.settings import ChunkingConfig
from keel.context.sqlite_index import SQLiteIndex
from keel.errors import ConfigError, InvalidRequest, UpstreamConnectionError

pytestmark = pytest.mark.unit


def ingest(ingester: Ingester, paths: list[Path], **kw: object) -> IngestReport:
    return asyncio.run(ingester.ingest(paths, "docs", **kw))


@pytest.fixture
def index() -> SQLiteIndex:
    return SQLiteIndex(":memory:")


def make(index: Index, base: Path, embedder: HashEmbedder | None = None) -> Ingester:
    return Ingester(index, embedder or HashEmbedder(64), model="hash-64", base_dir=base)


def test_a_mixed_corpus_is_ingested_and_bad_files_are_skipped_with_a_reason(
    tmp_path: Path, index: SQLiteIndex
) -> None:
    write_corpus(tmp_path / "docs")
    report = ingest(make(index, tmp_path), [tmp_path / "docs"])
    status = {o.source: (o.status, o.reason) for o in report.outcomes}
    assert {s for s, (st, _) in status.items() if st == "ingested"} == {
        "docs/handbook.md",
        "docs/warranty.html",
        "docs/hours.txt",
        "docs/loyalty.pdf",
    }
    assert status["docs/broken.pdf"][0] == "skipped" and "corrupt PDF" in status["docs/broken.pdf"][1]
    assert status["docs/empty.md"] == ("skipped", "empty file")
    assert "not UTF-8" in status["docs/latin1.txt"][1]
    assert {d.source for d in index.documents("docs")} == {
        s for s, (st, _) in status.items() if st == "ingested"
    }
    [hit] = index.keyword("docs", "loyalty points expire", 1)
    assert hit.chunk.source == "docs/loyalty.pdf" and hit.chunk.metadata["type"] == "pdf"
    assert "4 ingested" in report.summary() and "3 skipped" in report.summary()


def test_unchanged_files_cost_nothing_and_a_changed_file_replaces_its_chunks(
    tmp_path: Path, index: SQLiteIndex
) -> None:
    files = write_corpus(tmp_path / "docs")
    embedder = HashEmbedder(64)
    ingester = make(index, tmp_path, embedder)
    ingest(ingester, [tmp_path / "docs"])
    calls = embedder.calls
    again = ingest(ingester, [tmp_path / "docs"])
    assert again.count("unchanged") == 4 and again.count("ingested") == 0 and embedder.calls == calls

    files["md"].write_text(MARKDOWN.replace("within 14 days", "within 30 days"))
    third = ingest(ingester, [tmp_path / "docs"])
    [changed] = [o for o in third.outcomes if o.status == "ingested"]
    assert changed.source == "docs/handbook.md"
    assert changed.embedded == 1 < changed.chunks  # only the edited section is embedded again
    texts = [h.chunk.text for h in index.keyword("docs", "refunds paid days", 10)]
    assert any("30 days" in t for t in texts) and not any("14 days" in t for t in texts)


def test_the_same_text_in_two_files_is_embedded_once(tmp_path: Path, index: SQLiteIndex) -> None:
    (tmp_path / "a.md").write_text("# A\n\nShared paragraph about refunds.\n")
    (tmp_path / "b.md").write_text("# A\n\nShared paragraph about refunds.\n")
    report = ingest(make(index, tmp_path), [tmp_path])
    assert report.chunks == 2 and report.embedded == 1


def test_prune_removes_documents_whose_files_are_gone(tmp_path: Path, index: SQLiteIndex) -> None:
    files = write_corpus(tmp_path / "docs")
    ingester = make(index, tmp_path)
    ingest(ingester, [tmp_path / "docs"])
    files["txt"].unlink()
    kept = ingest(ingester, [tmp_path / "docs"])
    assert "docs/hours.txt" in {d.source for d in index.documents("docs")} and kept.count("removed") == 0
    pruned = ingest(ingester, [tmp_path / "docs"], prune=True)
    assert [o.source for o in pruned.outcomes if o.status == "removed"] == ["docs/hours.txt"]
    assert "docs/hours.txt" not in {d.source for d in index.documents("docs")}


class FailingEmbedder(HashEmbedder):
    """Embeds ``good`` batches, then fails like an unreachable endpoint."""

    def __init__(self, good: int) -> None:
        super().__init__(64)
        self.good = good

    async def embed(self, texts: list[str]) -> Matrix:
        if self.calls >= self.good:
            raise UpstreamConnectionError("embedding endpoint went away")
        return await super().embed(texts)


def test_a_failure_halfway_leaves_every_file_whole_and_a_rerun_finishes(tmp_path: Path) -> None:
    for i in range(12):
        parts = "".join(f"Paragraph {i}.{j} about topic {i}, part {j}.\n\n" for j in range(3))
        (tmp_path / f"doc{i:02}.md").write_text(f"# Doc {i}\n\n{parts}")
    index = SQLiteIndex(tmp_path / "index.db")
    config = ChunkingConfig(max_tokens=32, overlap_tokens=0)
    broken = Ingester(
        index, FailingEmbedder(good=2), model="hash-64", base_dir=tmp_path, chunking=config, batch_chunks=6
    )
    with pytest.raises(UpstreamConnectionError):
        asyncio.run(broken.ingest([tmp_path], "docs"))
    done = index.documents("docs")
    assert 0 < len(done) < 12
    for doc in done:  # every written document has exactly its chunks
        found = index.keyword("docs", "paragraph topic part", 50, {"source": doc.source})
        assert len(found) == doc.chunks >= 2
    again = Ingester(index, HashEmbedder(64), model="hash-64", base_dir=tmp_path, chunking=config)
    report = asyncio.run(again.ingest([tmp_path], "docs"))
    assert report.count("unchanged") == len(done) and report.count("ingested") == 12 - len(done)


def test_a_collection_embedded_with_another_model_is_refused(tmp_path: Path, index: SQLiteIndex) -> None:
    write_corpus(tmp_path / "docs")
    ingest(make(index, tmp_path), [tmp_path / "docs" / "hours.txt"])
    other = Ingester(index, HashEmbedder(64), model="another-model", base_dir=tmp_path)
    with pytest.raises(ConfigError, match="keel collections drop docs"):
        ingest(other, [tmp_path / "docs"])


def test_metadata_pairs_are_typed_and_bad_ones_refused() -> None:
    assert parse_metadata(["team=billing", "year=2025", "score=0.5", "public=true"]) == {
        "team": "billing",
        "year": 2025,
        "score": 0.5,
        "public": True,
    }
    with pytest.raises(InvalidRequest, match="expected key=value"):
        parse_metadata(["no-equals-sign"])


def test_vectors_stored_are_the_embedders(tmp_path: Path, index: SQLiteIndex) -> None:
    write_corpus(tmp_path / "docs")
    embedder = HashEmbedder(64)
    ingest(make(index, tmp_path, embedder), [tmp_path / "docs" / "hours.txt"])
    [hit] = index.keyword("docs", "opens nine", 1)
    assert np.allclose(index.vectors("docs", [hit.chunk.id]), embedder.vector(hit.chunk.indexed_text))


def test_an_ingest_run_tidies_what_an_interrupted_qdrant_write_left(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nThe first version of a.\n")
    with QdrantIndex(tmp_path / "q") as index:
        ingest(make(index, tmp_path), [tmp_path / "a.md"])
        (tmp_path / "a.md").write_text("# A\n\nThe second version of a.\n")
        with killed_before_commit(index):
            ingest(make(index, tmp_path), [tmp_path / "a.md"])
        (tmp_path / "b.md").write_text("# B\n\nAnother file.\n")
        report = ingest(make(index, tmp_path), [tmp_path / "b.md"])
        assert report.count("ingested") == 1
        kinds = [(p.payload or {})["kind"] for p in index.client.scroll("keel_docs", limit=100)[0]]
        assert sorted(kinds) == ["chunk", "chunk", "collection", "document", "document"]
