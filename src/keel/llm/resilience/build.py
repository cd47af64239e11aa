"""Reliability wrappers composed from keel.yaml, for one model and for one feature's chain.

model:   Retry( Balanced( [Breaker(leaf) for each deployment] ) )     (one deployment: no Balanced)
feature: Fallback( [model, *fallbacks] )                               (no fallbacks: the model)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from pydantic import BaseModel

from keel.llm.providers import Provider, provider_class
from keel.llm.resilience.balance import BalancedProvider
from keel.llm.resilience.breaker import BreakerProvider
from keel.llm.resilience.fallback import FallbackProvider
from keel.llm.resilience.retry import RetryingProvider
from keel.settings import Deployment, FeatureConfig, ModelConfig, Settings
from keel.stores.base import StateBackend

LeafFactory = Callable[[ModelConfig, BaseModel], Provider]
"""Builds the provider for one deployment of a model, given that deployment's options."""


def config_leaf(settings: Settings) -> LeafFactory:
    """The provider of the model's kind, configured with one deployment's options."""

    def make(model: ModelConfig, options: BaseModel) -> Provider:
        cls = provider_class(model.provider)
        return cls.from_config(model.model_copy(update={"options": options}), settings)

    return make


def deployment_key(model: ModelConfig, index: int) -> str:
    """The name a deployment's breaker is kept under: the model's name, ``name/index`` when it has several."""
    return model.name if len(model.deployments) <= 1 else f"{model.name}/{index}"


def build_model(
    model: ModelConfig,
    settings: Settings,
    state: StateBackend,
    make_leaf: LeafFactory | None = None,
    *,
    rng: random.Random | None = None,
) -> Provider:
    """One configured model with retries, a breaker per deployment, and balancing across deployments."""
    make = make_leaf or config_leaf(settings)
    deployments = model.deployments or [Deployment(weight=1.0, options=model.options)]
    guarded: list[tuple[Provider, float]] = [
        (
            BreakerProvider(make(model, d.options), deployment_key(model, i), state.breakers, model.breaker),
            d.weight,
        )
        for i, d in enumerate(deployments)
    ]
    inner = guarded[0][0] if len(guarded) == 1 else BalancedProvider(guarded, model.balance, rng=rng)
    return RetryingProvider(inner, model.retry, rng=rng)


def build_chain(feature: FeatureConfig, models: Mapping[str, Provider]) -> Provider:
    """The feature's primary model, falling back to each of ``fallbacks`` in order."""
    chain = [models[name] for name in dict.fromkeys([feature.model, *feature.fallbacks])]
    return chain[0] if len(chain) == 1 else FallbackProvider(chain)
