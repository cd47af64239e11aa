"""The index contract (keel.context.index), one suite run on every backend: SQLite in a file and
in memory, Qdrant's local mode in a folder and in memory."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.context.context_files import killed_before_commit

from keel.context.chunk import Chunk, make_chunk
from keel.context.embed import HashEmbedder, Matrix
from keel.context.index import DocumentRecord, Index
from keel.context.qdrant_index import QdrantIndex
from keel.context.sqlite_index import SQLiteIndex
from keel.errors import ConfigError, StateUnavailable

pytestmark = pytest.mark.unit

EMBED = HashEmbedder(64)
MODEL = "hash-64"


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "qdrant-local", "qdrant-memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    kind = request.param
    made: Index
    if kind == "sqlite-file":
        made = SQLiteIndex(tmp_path / "index.db")
    elif kind == "sqlite-memory":
        made = SQLiteIndex(":memory:")
    elif kind == "qdrant-local":
        made = QdrantIndex(tmp_path / "qdrant")
    else:
        made = QdrantIndex(":memory:")
    with made:
        yield made


def chunks(source: str, texts: Sequence[str], **meta: Any) -> list[Chunk]:
    return [
        make_chunk(source, i, t, title=source.split(".")[0], metadata=dict(meta)) for i, t in enumerate(texts)
    ]


def vectors(items: Sequence[Chunk]) -> Matrix:
    if not items:
        return np.zeros((0, EMBED.size), dtype=np.float32)
    return np.concatenate([EMBED.vector(c.indexed_text) for c in items])


def put(index: Index, collection: str, source: str, texts: Sequence[str], **meta: Any) -> list[Chunk]:
    made = chunks(source, texts, **meta)
    index.create(collection, model=MODEL, dim=EMBED.size)
    index.replace(
        collection, DocumentRecord(source, f"h-{source}", f"f-{source}", source), made, vectors(made)
    )
    return made


def texts_of(hits: Sequence[Any]) -> list[str]:
    return [h.chunk.text for h in hits]


# -- collections --------------------------------------------------------------------------------


def test_a_collection_is_created_once_with_its_model_and_listed_by_name(index: Index) -> None:
    assert index.collections() == [] and index.collection("docs") is None
    index.create("docs", model=MODEL, dim=64)
    again = index.create("docs", model=MODEL, dim=64)  # the same model: fine
    index.create("alpha", model=MODEL, dim=64)
    assert (again.name, again.model, again.dim, again.documents, again.chunks) == ("docs", MODEL, 64, 0, 0)
    assert [c.name for c in index.collections()] == ["alpha", "docs"]


def test_a_collection_refuses_vectors_from_another_model(index: Index) -> None:
    index.create("docs", model=MODEL, dim=64)
    with pytest.raises(ConfigError, match="drop and re-ingest"):
        index.create("docs", model="other-model", dim=64)
    with pytest.raises(ConfigError):
        index.create("docs", model=MODEL, dim=32)


def test_drop_deletes_everything_and_says_whether_there_was_anything(index: Index) -> None:
    put(index, "docs", "a.md", ["refunds are paid within 14 days"])
    assert index.drop("docs") is True
    assert index.collection("docs") is None and index.drop("docs") is False
    put(index, "docs", "b.md", ["a fresh start"])  # the name can be used again
    assert [h.chunk.source for h in index.keyword("docs", "refunds fresh", 5)] == ["b.md"]


def test_an_unknown_collection_is_reported_as_such(index: Index) -> None:
    for search in (
        lambda: index.keyword("nope", "refunds", 3),
        lambda: index.dense("nope", EMBED.vector("refunds"), 3),
        lambda: index.documents("nope"),
        lambda: index.replace("nope", DocumentRecord("a", "h", "f"), [], np.zeros((0, 64), np.float32)),
    ):
        with pytest.raises(StateUnavailable) as err:
            search()
        assert err.value.code == "collection_not_found"
    assert index.document("nope", "a.md") is None


# -- documents ----------------------------------------------------------------------------------


def test_documents_are_recorded_with_their_hash_fingerprint_and_chunk_count(index: Index) -> None:
    put(index, "docs", "b.md", ["one", "two", "three"])
    put(index, "docs", "a.md", ["alpha"])
    docs = index.documents("docs")
    assert [(d.source, d.hash, d.fingerprint, d.chunks) for d in docs] == [
        ("a.md", "h-a.md", "f-a.md", 1),
        ("b.md", "h-b.md", "f-b.md", 3),
    ]
    one = index.document("docs", "b.md")
    assert one is not None and one.title == "b.md" and one.ingested_at > 0
    info = index.collection("docs")
    assert info is not None and (info.documents, info.chunks) == (2, 4)


def test_replacing_a_document_leaves_none_of_its_old_chunks(index: Index) -> None:
    put(index, "docs", "a.md", ["kettles boil water", "the warranty lasts three years", "old shipping rules"])
    put(index, "docs", "b.md", ["shipping takes two days"])
    put(index, "docs", "a.md", ["the warranty lasts five years"])
    found = texts_of(index.keyword("docs", "warranty years shipping kettles old rules", 10))
    assert sorted(found) == ["shipping takes two days", "the warranty lasts five years"]
    dense = texts_of(index.dense("docs", EMBED.vector("kettles boil water"), 10))
    assert sorted(dense) == ["shipping takes two days", "the warranty lasts five years"]
    doc = index.document("docs", "a.md")
    assert doc is not None and doc.chunks == 1


def test_delete_removes_a_document_and_its_chunks(index: Index) -> None:
    put(index, "docs", "a.md", ["refunds within 14 days"])
    put(index, "docs", "b.md", ["refunds for gift cards are not possible"])
    assert index.delete("docs", "a.md") is True and index.delete("docs", "a.md") is False
    assert [h.chunk.source for h in index.keyword("docs", "refunds", 5)] == ["b.md"]
    assert [d.source for d in index.documents("docs")] == ["b.md"]


def test_known_vectors_are_found_by_chunk_hash(index: Index) -> None:
    made = put(index, "docs", "a.md", ["first text", "second text"])
    found = index.known_vectors("docs", [made[1].hash, "not-a-hash", made[1].hash])
    assert list(found) == [made[1].hash]
    assert np.allclose(found[made[1].hash], EMBED.vector(made[1].indexed_text), atol=1e-6)
    assert index.known_vectors("missing", [made[0].hash]) == {}


def test_stored_vectors_come_back_by_chunk_id_in_order(index: Index) -> None:
    made = put(index, "docs", "a.md", ["first text", "second text", "third text"])
    rows = index.vectors("docs", [made[2].id, made[0].id])
    assert rows.shape == (2, 64)
    assert np.allclose(rows, vectors([made[2], made[0]]), atol=1e-6)
    assert index.vectors("docs", []).shape == (0, 64)


def test_chunks_come_back_whole(index: Index) -> None:
    made = chunks("guide.md", ["Refunds are paid within 14 days."], lang="en", page=3)
    made = [make_chunk("guide.md", 0, made[0].text, "Guide", ("Money", "Refunds"), {"lang": "en", "page": 3})]
    index.create("docs", model=MODEL, dim=64)
    index.replace("docs", DocumentRecord("guide.md", "h", "f"), made, vectors(made))
    [hit] = index.keyword("docs", "refunds", 3)
    got, want = hit.chunk, made[0]
    assert (got.id, got.text, got.title, got.headings, got.hash, got.metadata) == (
        want.id,
        want.text,
        want.title,
        want.headings,
        want.hash,
        want.metadata,
    )


def test_vectors_must_match_the_chunks_and_dimension(index: Index) -> None:
    index.create("docs", model=MODEL, dim=64)
    made = chunks("a.md", ["one", "two"])
    with pytest.raises(ValueError, match="expected 2 vectors of dimension 64"):
        index.replace("docs", DocumentRecord("a.md", "h", "f"), made, np.zeros((1, 64), np.float32))
    assert index.document("docs", "a.md") is None


# -- search -------------------------------------------------------------------------------------

CORPUS = {
    "refunds.md": [
        "Refunds are paid within 14 days to the card that paid.",
        "Gift cards cannot be refunded.",
    ],
    "shipping.md": ["Parcels leave the warehouse on weekdays before noon.", "Shipping abroad takes a week."],
    "warranty.md": ["Every kettle carries a warranty of three years."],
}


def load_corpus(index: Index) -> None:
    for source, texts in CORPUS.items():
        put(index, "docs", source, texts, team=source.split(".")[0], public=source != "warranty.md")


def test_keyword_search_ranks_by_bm25_with_stemming(index: Index) -> None:
    load_corpus(index)
    hits = index.keyword("docs", "When are refunds paid?", 3)
    assert hits[0].chunk.text.startswith("Refunds are paid")
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert index.keyword("docs", "refunded", 1)[0].chunk.source == "refunds.md"  # stemmed
    assert index.keyword("docs", "KETTLE", 5)[0].chunk.source == "warranty.md"  # case folded


def test_keyword_search_returns_at_most_k_and_nothing_for_no_words(index: Index) -> None:
    load_corpus(index)
    assert len(index.keyword("docs", "refunds parcels kettle shipping cards", 2)) == 2
    assert index.keyword("docs", "?!", 5) == [] and index.keyword("docs", "zeppelin", 5) == []
    assert index.keyword("docs", 'refunds" OR NEAR(', 5)[0].chunk.source == "refunds.md"  # no query syntax


def test_dense_search_ranks_by_cosine(index: Index) -> None:
    load_corpus(index)
    query = EMBED.vector("Every kettle carries a warranty")
    hits = index.dense("docs", query, 2)
    assert len(hits) == 2 and hits[0].chunk.source == "warranty.md"
    assert hits[0].score > hits[1].score and hits[0].score <= 1.0 + 1e-5


def test_filters_match_source_and_metadata_exactly(index: Index) -> None:
    load_corpus(index)
    q = "refunds parcels kettle warranty shipping cards"
    qv = EMBED.vector(q)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"source": "shipping.md"}, {"shipping.md"}),
        ({"team": "refunds"}, {"refunds.md"}),
        ({"team": ["refunds", "warranty"]}, {"refunds.md", "warranty.md"}),
        ({"public": False}, {"warranty.md"}),
        ({"public": True, "team": "shipping"}, {"shipping.md"}),
        ({"team": "nobody"}, set()),
        ({"public": 1}, set()),  # a boolean is not the number 1
    ]
    for flt, want in cases:
        assert {h.chunk.source for h in index.keyword("docs", q, 10, flt)} == want, flt
        assert {h.chunk.source for h in index.dense("docs", qv, 10, flt)} == want, flt


def test_numbers_in_metadata_filter_by_value(index: Index) -> None:
    put(index, "docs", "a.md", ["report for the year"], year=2024, score=0.5)
    put(index, "docs", "b.md", ["report for the year"], year=2025, score=1.5)
    assert [h.chunk.source for h in index.keyword("docs", "report", 5, {"year": 2025})] == ["b.md"]
    assert [h.chunk.source for h in index.dense("docs", EMBED.vector("report"), 5, {"score": 0.5})] == [
        "a.md"
    ]


# -- atomicity ----------------------------------------------------------------------------------


class Exploding(Sequence[Chunk]):
    """Chunks that fail when the third is read: a write that breaks halfway."""

    def __init__(self, items: list[Chunk]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, int) and i >= 2:
            raise RuntimeError("the disk caught fire")
        return self.items[i]


def test_a_write_that_fails_halfway_leaves_the_old_document_whole(index: Index) -> None:
    put(index, "docs", "a.md", ["the old text about refunds"])
    new = chunks("a.md", ["new text about refunds", "more new text", "and the last new text"])
    with pytest.raises(RuntimeError, match="disk caught fire"):
        index.replace("docs", DocumentRecord("a.md", "h2", "f2"), Exploding(new), vectors(new))
    assert texts_of(index.keyword("docs", "text refunds new", 10)) == ["the old text about refunds"]
    assert texts_of(index.dense("docs", EMBED.vector("new text"), 10)) == ["the old text about refunds"]
    doc = index.document("docs", "a.md")
    assert doc is not None and (doc.fingerprint, doc.chunks) == ("f-a.md", 1)


def test_readers_see_a_document_all_old_or_all_new_while_it_is_rewritten(index: Index) -> None:
    versions = [[f"version {v} part {p} refunds" for p in range(4)] for v in range(2)]
    put(index, "docs", "a.md", versions[0])
    mixed: list[list[str]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            got = texts_of(index.keyword("docs", "refunds part version", 20))
            if {t.split()[1] for t in got} not in ({"0"}, {"1"}) or len(got) != 4:
                mixed.append(got)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for r in readers:
        r.start()
    try:
        for i in range(12):
            put(index, "docs", "a.md", versions[(i + 1) % 2])
    finally:
        stop.set()
        for r in readers:
            r.join()
    assert mixed == []


def test_qdrant_a_crash_between_chunks_and_manifest_shows_the_old_document(tmp_path: Path) -> None:
    with QdrantIndex(tmp_path / "q") as index:
        put(index, "docs", "a.md", ["the old text about refunds"])
        with killed_before_commit(index):
            put(index, "docs", "a.md", ["new text about refunds", "more new text about refunds"])
        assert texts_of(index.keyword("docs", "text refunds new", 10)) == ["the old text about refunds"]
        put(index, "docs", "a.md", ["the third text about refunds"])
        assert texts_of(index.keyword("docs", "text refunds new third", 10)) == [
            "the third text about refunds"
        ]
        # Local mode leaves the interrupted write's two points to the ingest run's tidy-up.
        assert index.tidy("docs") == 2 and index.tidy("docs") == 0
        points, _ = index.client.scroll("keel_docs", limit=100)
        assert sorted(p.payload["kind"] for p in points) == ["chunk", "collection", "document"]
        assert texts_of(index.keyword("docs", "text refunds new third", 10)) == [
            "the third text about refunds"
        ]


def test_qdrant_rewrites_and_deletes_leave_no_points_behind(tmp_path: Path) -> None:
    with QdrantIndex(tmp_path / "q") as index:
        put(index, "docs", "a.md", ["one about refunds", "two about refunds", "three"])
        put(index, "docs", "b.md", ["kept about refunds"])
        put(index, "docs", "a.md", ["only one now about refunds"])
        assert index.delete("docs", "b.md") and not index.delete("docs", "b.md")
        points, _ = index.client.scroll("keel_docs", limit=100)
        assert sorted((p.payload["kind"], p.payload.get("text")) for p in points) == [
            ("chunk", "only one now about refunds"),
            ("collection", None),
            ("document", None),
        ]
        assert index.tidy("docs") == 0
