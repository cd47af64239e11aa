"""The semantic cache: a paraphrase of a question answered before gets the stored answer.

Opt-in per feature (``cache.semantic``). Only the last user message is compared, by the cosine
similarity of its embedding; everything else must match exactly, so it is part of the scope a
neighbour is searched in (see ``keys.semantic_scope``): feature, prompt version, model, the
answer-changing parameters and the whole conversation before the last user message. A
neighbour at or above ``threshold`` is a hit when its answer is still stored and the two
questions pass the near-miss guard (numbers, dates, negation, word order; see ``guard``).
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.call import Completion
from keel.context.embed import Embedder
from keel.llm.cache.base import AnswerCache
from keel.llm.cache.entry import Entry, decode, encode
from keel.llm.cache.guard import conflict
from keel.llm.cache.keys import is_deterministic, last_user_text, semantic_scope, text_key
from keel.llm.providers.base import ModelRequest, Provider
from keel.settings import SemanticCacheConfig
from keel.stores.base import Cache, Vectors


@dataclass(slots=True, frozen=True)
class Question:
    """A question looked up: its scope, its answer's key, its text and its embedding (float32 bytes)."""

    scope: str
    key: str
    text: str
    vector: bytes


class SemanticCacheProvider(AnswerCache[Question]):
    """Answers a paraphrase, within the same scope, with the answer stored for the original."""

    how = "semantic"

    def __init__(
        self,
        inner: Provider,
        store: Cache,
        vectors: Vectors,
        embedder: Embedder,
        config: SemanticCacheConfig | None = None,
        *,
        guard: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(inner, name=name)
        self.store = store
        self.vectors = vectors
        self.embedder = embedder
        self.config = config or SemanticCacheConfig()
        self.guard = guard
        self.guarded = 0  # neighbours above the threshold that the guard refused

    async def question(self, request: ModelRequest) -> Question | None:
        """The request's question, embedded; None when it bypasses the cache."""
        if self.config.deterministic_only and not is_deterministic(request.params):
            return None
        text = last_user_text(request.messages)
        scope = semantic_scope(request, self.name) if text is not None else None
        if text is None or scope is None:
            return None
        rows = await self.ask(self.embedder.embed([text]))
        if rows is None:  # the embedder is unavailable: answer without the cache
            return None
        return Question(scope, text_key(scope, text), text, rows[0].tobytes())

    async def lookup(self, request: ModelRequest) -> tuple[Entry | None, Question | None]:
        """The answer stored for the nearest paraphrase in scope, if near enough."""
        q = await self.question(request)
        if q is None:
            return None, None
        match = await self.ask(self.vectors.nearest(q.scope, q.vector))
        if match is None or match.score < self.config.threshold:
            return None, q
        raw = await self.ask(self.store.get(match.key))
        entry = decode(raw) if raw is not None else None
        if entry is None:
            return None, q
        if self.guard and entry.question is not None and conflict(entry.question, q.text) is not None:
            self.guarded += 1
            return None, q
        return entry, q

    async def keep(self, slot: Question, completion: Completion, request: ModelRequest) -> None:
        """Store the answer, then its question's vector (so a vector never precedes its answer)."""
        ttl = self.config.ttl
        answered_by = request.trace.model or self.inner.name
        await self.store.set(slot.key, encode(completion, answered_by, slot.text), ttl)
        await self.vectors.add(slot.scope, slot.key, slot.vector, ttl, self.config.max_entries)
