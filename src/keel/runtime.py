"""What a pipeline runs on: settings, providers, shared state, the ledger writer and the built features.

The composition root: it builds each resource once and closes them in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from keel.config import load_config
from keel.context import build as context
from keel.context.build import build_embedder
from keel.context.embed import Embedder
from keel.context.index import Index, open_index
from keel.evals.review import ReviewQueue, open_review_queue
from keel.features import Feature, build_feature
from keel.keystore import KeyDirectory, key_directory
from keel.llm.cache import needs_embedder
from keel.llm.providers import Provider
from keel.llm.resilience import build_model, config_leaf, health
from keel.monitor.ledger import LedgerWriter
from keel.monitor.metrics import Metrics
from keel.monitor.monitoring import Monitoring
from keel.monitor.open import ledger_target, open_ledger
from keel.prompts.open import settings_registry
from keel.prompts.registry import PromptRegistry
from keel.settings import ModelConfig, Settings
from keel.stores import open_state
from keel.validate import build as validation


class Runtime:
    """Resources shared by every feature of one pipeline.

    ``providers`` replaces the leaf provider of a model by name (tests, custom backends); the
    resilience wrappers still go around it.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        providers: dict[str, Provider] | None = None,
        ledger: bool = True,
    ) -> None:
        self.settings = settings if settings is not None else load_config()
        s = self.settings
        used = {name for f in s.features for name in f.models_used()}
        given = providers or {}
        leaf = config_leaf(s)

        def make_leaf(model: ModelConfig, options: BaseModel) -> Provider:
            return given.get(model.name) or leaf(model, options)

        self.state = open_state(s.state)
        self.embedder: Embedder | None = (
            build_embedder(s)
            if needs_embedder(s) or context.needs_embedder(s) or validation.needs_embedder(s)
            else None
        )
        # The document index, opened only when a feature retrieves from a collection.
        self.index: Index | None = open_index(s.index, s.base_dir) if context.needs_index(s) else None
        # Each model: retries around a breaker per deployment, balanced when there are several.
        self.providers: dict[str, Provider] = {
            m.name: build_model(m, s, self.state, make_leaf) for m in s.models if m.name in used
        }
        self._kinds = {m.name: m.provider for m in s.models}
        self.metrics = Metrics()
        # Every API key (keel.yaml's and the key store's), reloaded while serving: the gateway
        # authenticates with it, and the limit stages read a key's limits from it.
        self.keys: KeyDirectory = key_directory(s)
        self.writer: LedgerWriter | None = None
        if ledger and s.ledger.enabled:
            self.writer = LedgerWriter.from_settings(open_ledger(ledger_target(s)), s.ledger)
        self.monitoring = Monitoring(s, self.metrics, self.writer, self.state)  # tracer, alerts
        self.review: ReviewQueue | None = open_review_queue(s)  # calls sampled for human review
        self.tracer = self.monitoring.tracer
        self._prompts: PromptRegistry | None = None  # opened by the first feature that names a label
        self.features: dict[str, Feature] = {
            fc.name: build_feature(fc, i, self) for i, fc in enumerate(s.features)
        }

    def prompt_registry(self) -> PromptRegistry:
        """The prompt registry (opened, and prompts_dir synced into it, on first use)."""
        if self._prompts is None:
            self._prompts = settings_registry(self.settings)
        return self._prompts

    def model_kind(self, name: str) -> str | None:
        """The provider kind of the configured model ``name``."""
        return self._kinds.get(name)

    async def start(self) -> None:
        """Open connections and load local models."""
        for provider in self.providers.values():
            await provider.start()
        if self.embedder is not None:
            await self.embedder.start()
        await self.keys.start()
        self.monitoring.start()

    async def aclose(self) -> None:
        """Release providers and shared state, then flush the ledger (disk I/O, off the event loop)."""
        await self.keys.aclose()
        for provider in self.providers.values():
            await provider.aclose()
        if self.embedder is not None:
            await self.embedder.aclose()
        await self.state.aclose()
        if self.index is not None:
            await asyncio.to_thread(self.index.close)
        if self._prompts is not None:
            self._prompts.close()
        await self.monitoring.aclose()
        if self.review is not None:
            await asyncio.to_thread(self.review.close)
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)

    async def health(self) -> dict[str, Any]:
        """Per model: its provider kind and each deployment's circuit state, in-flight calls and latency."""
        return {
            name: {"provider": self._kinds.get(name), **(await health(p))}
            for name, p in self.providers.items()
        }
