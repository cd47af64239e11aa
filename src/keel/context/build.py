"""The Context layer from configuration: which resources retrieval needs, and a feature's stages.

``features.py`` asks for a feature's stages here; ``runtime.py`` asks whether an index and an
embedder are needed at all, so a configuration without retrieval opens neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keel.context.chunk import Chunker
from keel.context.embed import Embedder
from keel.context.index import Index
from keel.context.stage import CitationStage, RetrievalStage
from keel.stage import Stage

if TYPE_CHECKING:
    from keel.settings import FeatureConfig, Settings


def needs_index(settings: Settings) -> bool:
    """True when some feature retrieves from a collection."""
    return any(f.retrieval is not None and f.retrieval.collection is not None for f in settings.features)


def needs_embedder(settings: Settings) -> bool:
    """True when some feature's retrieval ranks by vectors (hybrid or dense)."""
    return any(f.retrieval is not None and f.retrieval.mode != "keyword" for f in settings.features)


@dataclass(slots=True)
class ContextStages:
    """A feature's Context-layer stages and the Validation-layer checks that go with them."""

    context: list[Stage] = field(default_factory=list)
    validation: list[Stage] = field(default_factory=list)


def context_stages(
    fc: FeatureConfig, settings: Settings, index: Index | None, embedder: Embedder | None
) -> ContextStages:
    """Retrieval and packing (Context layer) and the citation check (Validation layer), if configured."""
    config = fc.retrieval
    if config is None:
        return ContextStages()
    stage = RetrievalStage(
        config,
        index=index,
        embedder=embedder if config.mode != "keyword" else None,
        chunker=Chunker(settings.index.chunking),
        model=settings.embeddings.model,
    )
    return ContextStages([stage], [CitationStage()])
