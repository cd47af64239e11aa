"""A feature's caches composed from keel.yaml, around its model chain.

    Exact( Semantic( Coalescing( chain ) ) )      (each only when the feature configures it)

The exact cache is outermost because its hit is the cheapest (no embedding); coalescing sits
next to the chain, so answers that miss both caches are still asked for only once.
"""

from __future__ import annotations

from keel.context.embed import Embedder
from keel.errors import ConfigError
from keel.llm.cache.coalesce import CoalescingProvider
from keel.llm.cache.exact import ExactCacheProvider
from keel.llm.cache.semantic import SemanticCacheProvider
from keel.llm.providers.base import Provider
from keel.settings import FeatureConfig, Settings
from keel.stores.base import StateBackend


def needs_embedder(settings: Settings) -> bool:
    """True when some feature has a semantic cache (then build one embedder for all of them)."""
    return any(f.cache.semantic is not None for f in settings.features)


def build_cache(
    chain: Provider, feature: FeatureConfig, state: StateBackend, embedder: Embedder | None = None
) -> Provider:
    """``chain`` wrapped in the coalescing and caches that ``feature`` configures."""
    provider = chain
    if feature.coalesce:
        provider = CoalescingProvider(provider)
    semantic = feature.cache.semantic
    if semantic is not None:
        if embedder is None:
            raise ConfigError(f"feature {feature.name!r}: cache.semantic needs an embedder (embeddings:)")
        provider = SemanticCacheProvider(
            provider, state.cache, state.vectors, embedder, semantic, guard=semantic.guard
        )
    if feature.cache.exact is not None:
        provider = ExactCacheProvider(provider, state.cache, feature.cache.exact)
    return provider
