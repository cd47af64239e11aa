"""Answers reused and requests shared: each one a ``Provider`` around the feature's model chain.

- ``ExactCacheProvider``: the same normalised request gets the stored answer (``cache.exact``);
- ``SemanticCacheProvider``: a paraphrase of the last question, with the same history, gets the
  stored answer (``cache.semantic``), guarded against near-misses (numbers, dates, negation);
- ``CoalescingProvider``: identical requests in flight at the same time share one upstream call.

Answers live in the ``Cache`` and ``Vectors`` stores of ``keel.stores`` (in-process or Redis);
``build_cache`` composes the three from a feature's configuration.
"""

from __future__ import annotations

from keel.llm.cache.build import build_cache, needs_embedder
from keel.llm.cache.coalesce import CoalescingProvider
from keel.llm.cache.exact import ExactCacheProvider
from keel.llm.cache.guard import conflict
from keel.llm.cache.keys import exact_key, is_deterministic, semantic_scope
from keel.llm.cache.semantic import SemanticCacheProvider

__all__ = [
    "CoalescingProvider",
    "ExactCacheProvider",
    "SemanticCacheProvider",
    "build_cache",
    "conflict",
    "exact_key",
    "is_deterministic",
    "needs_embedder",
    "semantic_scope",
]
