"""Format readers and structure-aware chunking: what a document becomes before it is indexed."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from tests.context.context_files import write_corpus

from keel.context.chunk import Block, Chunker, ParsedDocument
from keel.context.formats import read_document
from keel.context.settings import ChunkingConfig
from keel.errors import InvalidRequest
from keel.llm.tokens import count_tokens

pytestmark = pytest.mark.unit


def test_every_format_becomes_a_title_and_blocks_under_headings(tmp_path: Path) -> None:
    files = write_corpus(tmp_path)
    md = read_document(files["md"], files["md"].read_bytes())
    assert md.title == "Acme handbook"
    assert [b.headings for b in md.blocks][1:3] == [
        ("Acme handbook", "Refunds"),
        ("Acme handbook", "Refunds", "Exceptions"),
    ]
    html = read_document(files["html"], files["html"].read_bytes())
    assert html.title == "Warranty" and [b.headings for b in html.blocks] == [
        ("Warranty terms",),
        ("Warranty terms", "Claims"),
    ]
    text = " ".join(b.text for b in html.blocks)
    assert "tracking" not in text and "Home | Shop" not in text and "Copyright" not in text
    pdf = read_document(files["pdf"], files["pdf"].read_bytes())
    assert pdf.title == "Loyalty" and [b.page for b in pdf.blocks] == [1, 2]
    assert "one point per euro" in pdf.blocks[1].text
    txt = read_document(files["txt"], files["txt"].read_bytes())
    assert txt.title == "hours" and next(b.text for b in txt.blocks) == "Opening hours"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EO", "corrupt PDF"),
        ("fake.pdf", b"hello, I am not a PDF", "not a PDF"),
        ("latin1.txt", "caf\xe9".encode("latin-1"), "not UTF-8 text"),
        ("nul.md", b"abc\x00def", "binary data"),
        ("blank.md", b"   \n\n  \n", "empty"),
        ("plain.html", b"no markup at all", "not HTML"),
        ("scripts.html", b"<html><script>x()</script></html>", "empty"),
    ],
)
def test_unreadable_files_say_why_in_one_line(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        read_document(Path(name), data)
    assert err.value.code == "unreadable_document" and reason in err.value.message
    assert "\n" not in err.value.message


def test_markdown_keeps_fenced_code_whole_and_reads_front_matter_and_setext() -> None:
    doc = read_document(
        Path("a.md"),
        b"---\ntitle: 'The Guide'\n---\nIntro\n=====\n\n```py\nx = 1\n\ny = 2\n```\n\nTail\n",
    )
    assert doc.title == "The Guide"
    assert [b.text for b in doc.blocks] == ["```py\nx = 1\n\ny = 2\n```", "Tail"]
    assert doc.blocks[0].headings == ("Intro",)


def paragraphs(n: int, words: int = 12) -> list[Block]:
    return [Block(" ".join(f"p{i}w{j}" for j in range(words)) + ".", ("Guide", "Part")) for i in range(n)]


def test_chunks_fit_the_token_budget_with_their_heading_and_overlap() -> None:
    config = ChunkingConfig(max_tokens=120, overlap_tokens=20)
    made = Chunker(config).chunks("g.md", ParsedDocument("Guide", paragraphs(12)))
    assert len(made) > 3
    for c in made:
        assert count_tokens(c.indexed_text) <= 120 + 2
        assert c.heading == "Guide > Part" and c.source == "g.md"
    assert [c.ordinal for c in made] == list(range(len(made)))
    for a, b in itertools.pairwise(made):
        tail = a.text.split()[-1]
        assert tail in b.text  # the end of each chunk opens the next
    seen = " ".join(c.text for c in made)
    assert all(f"p{i}w0" in seen for i in range(12))  # nothing lost


def test_a_paragraph_larger_than_the_budget_is_cut_at_sentences_then_words() -> None:
    long = " ".join(f"Sentence {i} says something about refunds." for i in range(60))
    one_word_soup = "x" * 5 + " " + " ".join(["word"] * 400)
    made = Chunker(ChunkingConfig(max_tokens=64, overlap_tokens=0)).chunks(
        "a.txt", ParsedDocument("", [Block(long), Block(one_word_soup)])
    )
    assert all(count_tokens(c.indexed_text) <= 64 for c in made)
    assert any(c.text.startswith("Sentence") and c.text.endswith(".") for c in made)


def test_sections_never_share_a_chunk_and_repeats_are_kept_once() -> None:
    blocks = [Block("Refunds take 14 days.", ("A",)), Block("Shipping takes 2 days.", ("B",))]
    blocks += [Block("Refunds take 14 days.", ("A",))]  # the same section text again
    made = Chunker().chunks("x.md", ParsedDocument("X", blocks))
    assert [(c.headings, c.text) for c in made] == [
        (("A",), "Refunds take 14 days."),
        (("B",), "Shipping takes 2 days."),
    ]
    assert made[0].hash != made[1].hash and len(made[0].hash) == 32


def test_overlap_must_be_smaller_than_half_the_budget() -> None:
    with pytest.raises(ValueError, match="overlap_tokens must be less than half"):
        ChunkingConfig(max_tokens=100, overlap_tokens=50)
