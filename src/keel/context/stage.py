"""The Context layer's retrieval stage: sources for the last user message, packed into the prompt.

Where sources come from:

- the feature's collection (``retrieval.collection``), searched with the last user message;
- documents the call brings itself: on the gateway the request's ``keel.documents``
  (``[{"text": ..., "id": ..., "source": ..., "title": ..., "metadata": {...}}]``), in the library
  ``Call(chunks=[ProvidedDocument(...)])`` (or the same dicts). They come first; when they do not
  all fit, they are ranked against the question like a collection.

The stage replaces ``call.chunks`` with the ``Source`` items it packed (numbered as the prompt
numbers them) and puts them into one system message after the leading system messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.call import Action, Call, Message, Verdict
from keel.context.chunk import Block, Chunk, Chunker, ParsedDocument
from keel.context.citations import unknown
from keel.context.embed import Embedder
from keel.context.index import DocumentRecord, Index
from keel.context.pack import Candidate, pack
from keel.context.retrieve import Retriever, Scored
from keel.context.settings import RetrievalConfig
from keel.context.sqlite_index import SQLiteIndex
from keel.errors import ConfigError, InvalidRequest
from keel.llm.tokens import message_text
from keel.stage import Layer, Stage

_REQUEST = "request"  # the collection name under which a call's own documents are ranked


@dataclass(slots=True, frozen=True)
class ProvidedDocument:
    """A document a call brings itself (not from an index)."""

    text: str
    id: str
    source: str = ""  # shown in citations; the id when empty
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_documents(raw: Any, *, limit: int = 50) -> list[ProvidedDocument]:
    """A request's ``keel.documents`` (or a library caller's list); InvalidRequest names a bad item."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest("keel.documents: expected a list of documents", param="keel.documents")
    if len(raw) > limit:
        raise InvalidRequest(f"keel.documents: at most {limit} documents per call", param="keel.documents")
    docs = []
    for i, item in enumerate(raw):
        where = f"keel.documents[{i}]"
        if isinstance(item, ProvidedDocument):
            docs.append(item)
            continue
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: expected an object with 'text'", param=where)
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest(f"{where}.text: expected a non-empty string", param=f"{where}.text")
        doc_id = item.get("id", f"doc-{i + 1}")
        source, title, meta = item.get("source", ""), item.get("title", ""), item.get("metadata", {})
        if not isinstance(doc_id, str | int) or isinstance(doc_id, bool) or not str(doc_id):
            raise InvalidRequest(f"{where}.id: expected a string or an integer", param=f"{where}.id")
        if not isinstance(source, str) or not isinstance(title, str) or not isinstance(meta, dict):
            raise InvalidRequest(f"{where}: source and title are strings, metadata an object", param=where)
        unknown = set(item) - {"id", "text", "source", "title", "metadata"}
        if unknown:
            raise InvalidRequest(f"{where}: unknown key {sorted(unknown)[0]!r}", param=where)
        docs.append(ProvidedDocument(text, str(doc_id), source, title, meta))
    ids = [d.source or d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("keel.documents: two documents have the same id", param="keel.documents")
    return docs


def last_user_text(messages: Sequence[Message]) -> str:
    """The text of the last user message ('' when there is none)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return message_text(m)
    return ""


def with_context(messages: list[Message], text: str) -> list[Message]:
    """``messages`` with a system message holding ``text`` after the leading system messages."""
    at = 0
    while at < len(messages) and messages[at].get("role") in ("system", "developer"):
        at += 1
    return [*messages[:at], {"role": "system", "content": text}, *messages[at:]]


class RetrievalStage(Stage):
    """Retrieves and packs sources for the call (see the module docstring)."""

    name = "context.retrieval"
    layer = Layer.CONTEXT

    def __init__(
        self,
        config: RetrievalConfig,
        *,
        index: Index | None,
        embedder: Embedder | None,
        chunker: Chunker | None = None,
        model: str | None = None,
    ) -> None:
        self.config = config
        self.chunker = chunker or Chunker()
        self.embedder = embedder
        self.retriever = Retriever(index, embedder, config) if index is not None else None
        if config.collection is not None:
            if index is None:
                raise ValueError("retrieval from a collection needs an index")
            info = index.collection(config.collection)  # may not exist yet: keel ingest makes it
            if info is not None and model is not None and info.model != model:
                raise ConfigError(
                    f"retrieval.collection: {config.collection!r} was embedded with {info.model!r}, "
                    f"but embeddings.model is {model!r}; re-ingest the collection or configure its model"
                )

    async def run(self, call: Call) -> None:
        """Put the packed sources into the messages and ``call.chunks``."""
        c = self.config
        docs = parse_documents(call.chunks, limit=c.max_documents) if call.chunks else []
        if docs and not c.documents:
            raise InvalidRequest(
                f"feature {call.feature!r} takes no documents with the call (retrieval.documents: false)",
                param="keel.documents",
            )
        query = last_user_text(call.messages)
        candidates = await self._provided(docs, query) if docs else []
        if c.collection is not None and query.strip():
            assert self.retriever is not None
            found = await self.retriever.search(c.collection, query, filters=call.filters or None)
            candidates += [Candidate(s.chunk, s.score, c.collection) for s in found]
        packed = pack(candidates, c.budget_tokens, c.k)
        for verdict in packed.verdicts:  # sources whose injected instructions were stripped or flagged
            call.add_verdict(verdict)
        call.chunks = list(packed.sources)
        call.count("context.sources", len(packed.sources))
        if packed.sources:
            call.messages = with_context(call.messages, packed.message)
        elif c.collection is not None:
            call.add_verdict(Verdict(self.name, Action.FLAG, "context.no_sources", 0.0, "nothing retrieved"))

    async def _provided(self, docs: list[ProvidedDocument], query: str) -> list[Candidate]:
        """The call's documents as chunks: in order when all fit, else ranked against the question."""
        chunks = [
            ch
            for d in docs
            for ch in self.chunker.chunks(
                d.source or d.id,
                ParsedDocument(d.title, [Block(p) for p in d.text.split("\n\n")]),
                d.metadata,
            )
        ]
        c = self.config
        whole = [Candidate(ch) for ch in chunks]
        if not query.strip() or len(pack(whole, c.budget_tokens, c.k, scan=False).sources) == len(whole):
            return whole
        ranked = await _rank(chunks, query, self.embedder, c)
        return [Candidate(s.chunk, s.score) for s in ranked]


async def _rank(
    chunks: list[Chunk], query: str, embedder: Embedder | None, config: RetrievalConfig
) -> list[Scored]:
    """Rank a call's own chunks with the same hybrid retrieval, in a throwaway in-memory index."""
    if embedder is not None:
        vectors = await embedder.embed([ch.indexed_text for ch in chunks])
    else:
        vectors = np.zeros((len(chunks), 1), dtype=np.float32)
    index = SQLiteIndex(":memory:")
    try:
        index.create(_REQUEST, model="request", dim=int(vectors.shape[1]))
        rows: dict[str, list[int]] = {}
        for i, ch in enumerate(chunks):
            rows.setdefault(ch.source, []).append(i)
        for source, at in rows.items():
            index.replace(_REQUEST, DocumentRecord(source, "", ""), [chunks[i] for i in at], vectors[at])
        retriever = Retriever(index, embedder, config)
        if embedder is None:
            return await retriever.search(_REQUEST, query, k=len(chunks), mode="keyword", mmr_lambda=1.0)
        return await retriever.search(_REQUEST, query, k=len(chunks))
    finally:
        index.close()


class CitationStage(Stage):
    """Validation layer: flags an answer citing a source number the prompt never had."""

    name = "context.citations"
    layer = Layer.VALIDATION

    async def run(self, call: Call) -> None:
        """Record a flag listing the numbers that point at nothing; never blocks."""
        bad = unknown(call.text, call.chunks)
        if bad:
            listed = ", ".join(f"[{n}]" for n in bad)
            call.add_verdict(
                Verdict(
                    self.name, Action.FLAG, "context.unknown_citation", float(len(bad)), f"cited {listed}"
                )
            )
