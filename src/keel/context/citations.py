"""Citations: the answer's ``[n]`` markers mapped to the sources that were in the prompt.

``cite(answer, sources)`` reads ``[1]``, ``[2, 3]`` and ``[1][4]``; a number that names no source
is dropped (and reported by ``unknown``). This module imports nothing of the pipeline, so
``Result`` can derive its citations from a finished call. ``Source`` (a chunk as the prompt
numbered it) lives here for the same reason; ``pack.py`` makes them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from keel.context.chunk import Chunk


@dataclass(slots=True, frozen=True)
class Source:
    """A chunk as it was put into the prompt: its number there, where it came from, its score."""

    n: int  # what the answer cites: [n]
    chunk: Chunk
    score: float = 0.0
    collection: str | None = None  # None: a document the call brought itself

    @property
    def id(self) -> str:
        """The chunk's id, ``source#ordinal``."""
        return self.chunk.id


# Not after a word or a closing parenthesis: ``items[1]`` in code is an index, not a citation.
_MARKER = re.compile(r"(?<![\w)])\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")


@dataclass(slots=True, frozen=True)
class Citation:
    """One source the answer cites: its number in the answer, the chunk and where it came from."""

    n: int
    chunk_id: str
    source: str
    title: str = ""
    heading: str = ""
    collection: str | None = None
    page: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The citation as JSON (the gateway's ``keel.citations``)."""
        d: dict[str, Any] = {"n": self.n, "id": self.chunk_id, "source": self.source}
        if self.title:
            d["title"] = self.title
        if self.heading:
            d["heading"] = self.heading
        if self.collection is not None:
            d["collection"] = self.collection
        if self.page is not None:
            d["page"] = self.page
        return d


def markers(answer: str) -> list[int]:
    """Every number cited in ``answer``, in order of first appearance."""
    seen: dict[int, None] = {}
    for m in _MARKER.finditer(answer):
        for part in m.group(1).split(","):
            seen.setdefault(int(part), None)
    return list(seen)


def sources_of(chunks: Sequence[Any]) -> list[Source]:
    """The ``Source`` items among a call's chunks (the Context layer puts them there)."""
    return [c for c in chunks if isinstance(c, Source)]


def cite(answer: str, chunks: Sequence[Any]) -> list[Citation]:
    """The citations in ``answer`` that name a source in ``chunks``, in order of first appearance."""
    by_n = {s.n: s for s in sources_of(chunks)}
    out = []
    for n in markers(answer):
        s = by_n.get(n)
        if s is None:
            continue
        page = s.chunk.metadata.get("page")
        out.append(
            Citation(
                n=n,
                chunk_id=s.id,
                source=s.chunk.source,
                title=s.chunk.title,
                heading=s.chunk.heading,
                collection=s.collection,
                page=page if isinstance(page, int) else None,
            )
        )
    return out


def unknown(answer: str, chunks: Sequence[Any]) -> list[int]:
    """Numbers cited in ``answer`` that name no source."""
    known = {s.n for s in sources_of(chunks)}
    return [n for n in markers(answer) if n not in known]


_SAFE = "/#:@._~-+!$&'()*"


def citations_header(citations: Sequence[Citation]) -> str:
    """``X-Keel-Citations``: ``1=docs/a.md#0; 2=docs/b.md#3`` (ids percent-encoded where needed)."""
    return "; ".join(f"{c.n}={quote(c.chunk_id, safe=_SAFE)}" for c in citations)
