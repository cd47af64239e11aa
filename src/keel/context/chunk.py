"""Structure-aware chunking: a document's sections (by heading), cut into paragraph-aligned chunks.

A chunk never spans two sections. Inside a section, paragraphs are packed up to a token budget
(counted with ``keel.llm.tokens.count_tokens``, the heading line included); a paragraph larger
than the budget is cut at sentence ends, and a sentence larger than it at word boundaries. Each
chunk after the first of its section starts with the end of the one before (``overlap_tokens``),
so a fact cut in two is still whole in one of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from keel.context.settings import ChunkingConfig
from keel.llm.tokens import count_tokens


@dataclass(slots=True, frozen=True)
class Block:
    """One paragraph-level piece of a parsed document, under its heading path."""

    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None  # PDFs: the page it came from (1-based)


@dataclass(slots=True, frozen=True)
class ParsedDocument:
    """What a format reader found in a file: a title and blocks in reading order."""

    title: str
    blocks: list[Block]


@dataclass(slots=True, frozen=True, eq=False)
class Chunk:
    """A piece of a document small enough to embed, retrieve and cite."""

    source: str  # the document: a path relative to the config file, or an id a caller gave
    ordinal: int  # position in the document, from 0
    text: str
    title: str = ""
    headings: tuple[str, ...] = ()
    hash: str = ""  # of what is indexed (heading line and text): equal hashes, equal vectors
    metadata: dict[str, Any] = field(default_factory=dict)  # type, mtime, page, user-given keys

    @property
    def id(self) -> str:
        """``source#ordinal``: unique in a collection, stable while the document is unchanged."""
        return f"{self.source}#{self.ordinal}"

    @property
    def heading(self) -> str:
        """Title and heading path as one line, e.g. ``Handbook > Refunds > Deadlines``."""
        return heading_line(self.title, self.headings)

    @property
    def indexed_text(self) -> str:
        """What the keyword index and the embedder see: the heading line, then the text."""
        head = self.heading
        return f"{head}\n{self.text}" if head else self.text


def heading_line(title: str, headings: Sequence[str]) -> str:
    """``title > h1 > h2``, leaving out a first heading that repeats the title."""
    parts = [title] if title else []
    for h in headings:
        if h and (not parts or h.casefold() != parts[-1].casefold()):
            parts.append(h)
    return " > ".join(parts)


def content_hash(text: str) -> str:
    """A short hex digest identifying ``text``."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def make_chunk(
    source: str,
    ordinal: int,
    text: str,
    title: str = "",
    headings: tuple[str, ...] = (),
    metadata: dict[str, Any] | None = None,
) -> Chunk:
    """A chunk with its content hash filled in."""
    chunk = Chunk(source, ordinal, text, title, headings, "", dict(metadata or {}))
    return Chunk(source, ordinal, text, title, headings, content_hash(chunk.indexed_text), chunk.metadata)


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)|\n+")
_WORDS = re.compile(r"\S+\s*")


class Chunker:
    """Cuts parsed documents into chunks of at most ``max_tokens`` tokens with ``overlap_tokens`` overlap."""

    def __init__(self, config: ChunkingConfig | None = None, *, encoding: str = "o200k_base") -> None:
        self.config = config or ChunkingConfig()
        self.encoding = encoding

    def _count(self, text: str) -> int:
        return count_tokens(text, self.encoding)

    def chunks(self, source: str, doc: ParsedDocument, metadata: dict[str, Any] | None = None) -> list[Chunk]:
        """The document's chunks in order; identical chunks of one document are kept once."""
        out: list[Chunk] = []
        seen: set[str] = set()
        for headings, blocks in _sections(doc.blocks):
            budget = max(self.config.max_tokens - self._count(heading_line(doc.title, headings)), 32)
            for text, page in self._pack(blocks, budget):
                meta = dict(metadata or {})
                if page is not None:
                    meta["page"] = page
                chunk = make_chunk(source, len(out), text, doc.title, headings, meta)
                if chunk.hash not in seen:
                    seen.add(chunk.hash)
                    out.append(chunk)
        return out

    def _pack(self, blocks: list[Block], budget: int) -> Iterator[tuple[str, int | None]]:
        """Chunk texts of one section (with the page of their first piece)."""
        units = [(u, b.page, self._count(u)) for b in blocks for u in self._units(b.text, budget)]
        current: list[tuple[str, int | None, int]] = []
        size = 0
        fresh = 0  # units in ``current`` that no earlier chunk holds
        for unit in units:
            if current and size + unit[2] + 1 > budget:
                yield "\n\n".join(u[0] for u in current), current[0][1]
                current = self._overlap(current, budget - unit[2] - 1)
                size = sum(u[2] + 1 for u in current)
                fresh = 0
            current.append(unit)
            size += unit[2] + 1
            fresh += 1
        if current and fresh:
            yield "\n\n".join(u[0] for u in current), current[0][1]

    def _overlap(
        self, previous: list[tuple[str, int | None, int]], room: int
    ) -> list[tuple[str, int | None, int]]:
        """The end of the previous chunk to repeat at the start of the next (at most overlap_tokens)."""
        want = min(self.config.overlap_tokens, room)
        if want <= 0:
            return []
        kept: list[tuple[str, int | None, int]] = []
        size = 0
        for unit in reversed(previous):
            if size + unit[2] > want:
                if not kept:  # the last unit alone is too long: repeat its last words
                    tail = self._tail(unit[0], want)
                    if tail:
                        kept.append((tail, unit[1], self._count(tail)))
                break
            kept.append(unit)
            size += unit[2]
        return kept[::-1]

    def _tail(self, text: str, tokens: int) -> str:
        words = _WORDS.findall(text)
        tail: list[str] = []
        for w in reversed(words):
            if self._count("".join([w, *tail])) > tokens:
                break
            tail.insert(0, w)
        return "".join(tail).strip()

    def _units(self, text: str, budget: int) -> Iterator[str]:
        """A paragraph as it is, or cut at sentence ends, or at words, so every piece fits ``budget``."""
        text = text.strip()
        if not text:
            return
        if self._count(text) <= budget:
            yield text
            return
        piece: list[str] = []
        for sentence in (s for s in _SENTENCE_END.split(text) if s.strip()):
            joined = " ".join([*piece, sentence])
            if piece and self._count(joined) > budget:
                yield " ".join(piece)
                piece = []
            if self._count(sentence) > budget:
                yield from self._words(sentence, budget)
            else:
                piece.append(sentence)
        if piece:
            yield " ".join(piece)

    def _words(self, text: str, budget: int) -> Iterator[str]:
        words = _WORDS.findall(text)
        # Pieces of even size: a greedy cut would leave a last piece of a word or two.
        pieces = -(-self._count(text) // budget)
        budget = min(budget, -(-self._count(text) // pieces) + 2)
        start = 0
        while start < len(words):
            end = start + 1
            # Grow by words; count the joined text since tokens need not split at spaces.
            lo, hi = end, len(words)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._count("".join(words[start:mid])) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            end = max(lo, start + 1)
            yield "".join(words[start:end]).strip()
            start = end


def _sections(blocks: list[Block]) -> Iterator[tuple[tuple[str, ...], list[Block]]]:
    """Consecutive blocks grouped by heading path."""
    current: list[Block] = []
    for block in blocks:
        if current and block.headings != current[0].headings:
            yield current[0].headings, current
            current = []
        current.append(block)
    if current:
        yield current[0].headings, current
