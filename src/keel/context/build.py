"""The Context layer from configuration: the embedder, which resources retrieval needs, and a
feature's stages.

``features.py`` asks for a feature's stages here; ``runtime.py`` asks whether an index and an
embedder are needed at all, so a configuration without retrieval opens neither.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keel.context.chunk import Chunker
from keel.context.embed import Embedder, HTTPEmbedder
from keel.context.index import Index
from keel.context.local_embed import LocalEmbedder
from keel.context.stage import CitationStage, RetrievalStage
from keel.errors import ConfigError
from keel.stage import Stage

if TYPE_CHECKING:
    from keel.settings import FeatureConfig, Settings


PACKAGED_MODEL = "all-MiniLM-L6-v2"


def build_embedder(settings: Settings) -> Embedder:
    """The embedder ``embeddings:`` configures; ConfigError names the key when it cannot be built."""
    config, source = settings.embeddings, settings.source
    if config.provider == "openai":
        key = None
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ConfigError(
                    f"{source}: embeddings.api_key_env: the variable {config.api_key_env} is not set or empty"
                )
        assert config.base_url is not None  # checked when the settings were loaded
        return HTTPEmbedder(
            config.base_url,
            config.model,
            api_key=key,
            batch_size=config.batch_size,
            batch_wait_ms=config.batch_wait_ms,
        )
    path: Path | None = None
    if config.model not in (PACKAGED_MODEL, f"sentence-transformers/{PACKAGED_MODEL}"):
        path = settings.resolve(Path(config.model))
        if not path.is_dir():
            raise ConfigError(
                f"{source}: embeddings.model: {config.model!r} is neither {PACKAGED_MODEL!r} (packaged) "
                "nor a directory holding a sentence-transformers model (nothing is downloaded)"
            )
    return LocalEmbedder(
        path,
        runtime=config.runtime,
        threads=config.threads,
        batch_size=config.batch_size,
        batch_wait_ms=config.batch_wait_ms,
    )


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
