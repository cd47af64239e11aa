"""The exact cache: the same normalised request gets the stored answer, until its time to live ends.

Opt-in per feature (``cache.exact``). By default only deterministic requests (temperature 0 or a
seed) are cached: for the others a fresh sample is what the caller asked for. The key is the
request as it goes upstream (see ``keys.exact_key``), so answers never cross features, prompt
versions, models, or parameters that change the answer.
"""

from __future__ import annotations

from keel.call import Completion
from keel.llm.cache.base import AnswerCache
from keel.llm.cache.entry import Entry, decode, encode
from keel.llm.cache.keys import exact_key, is_deterministic
from keel.llm.providers.base import ModelRequest, Provider
from keel.settings import ExactCacheConfig
from keel.stores.base import Cache


class ExactCacheProvider(AnswerCache[str]):
    """Answers a request seen before (byte for byte, once normalised) from ``store``."""

    how = "exact"

    def __init__(
        self,
        inner: Provider,
        store: Cache,
        config: ExactCacheConfig | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(inner, name=name)
        self.store = store
        self.config = config or ExactCacheConfig()

    def key(self, request: ModelRequest) -> str | None:
        """The request's cache key; None when it bypasses the cache."""
        if self.config.deterministic_only and not is_deterministic(request.params):
            return None
        return exact_key(request, self.name)

    async def lookup(self, request: ModelRequest) -> tuple[Entry | None, str | None]:
        """The stored answer for the request's key, if any."""
        key = self.key(request)
        if key is None:
            return None, None
        raw = await self.ask(self.store.get(key))
        return (decode(raw) if raw is not None else None), key

    async def keep(self, slot: str, completion: Completion, request: ModelRequest) -> None:
        """Store the answer under the request's key for the configured time to live."""
        answered_by = request.trace.model or self.inner.name
        await self.store.set(slot, encode(completion, answered_by), self.config.ttl)
