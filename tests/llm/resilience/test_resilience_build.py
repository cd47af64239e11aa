"""Composing the wrappers from keel.yaml: one stack per model, one fallback chain per feature."""

from __future__ import annotations

import pytest
from resilience_helpers import names, req, run, status

from keel.config import parse_config
from keel.llm.providers.openai import OpenAIProvider
from keel.llm.resilience import (
    BalancedProvider,
    BreakerProvider,
    FallbackProvider,
    RetryingProvider,
    build_chain,
    build_model,
    health,
)
from keel.settings import ModelConfig, Settings
from keel.stores.memory import MemoryState
from keel.testing import ScriptedProvider

pytestmark = pytest.mark.unit

CONFIG = """
models:
  - name: upstream
    provider: openai
    base_url: http://127.0.0.1:9/v1
    balance: least_in_flight
    retry: {attempts: 2, backoff: 0.01}
    breaker: {failures: 2, cooldown: 30}
    deployments:
      - {weight: 3}
      - {base_url: http://127.0.0.2:9/v1}
  - name: local
    provider: openai
    base_url: http://127.0.0.3:9/v1
features:
  - {name: support, model: upstream, fallbacks: [local]}
  - {name: plain, model: local}
"""


@pytest.fixture
def settings() -> Settings:
    return parse_config(CONFIG)


def test_a_model_with_several_deployments_is_retried_balanced_and_guarded(settings: Settings) -> None:
    state = MemoryState()
    built = build_model(settings.model("upstream"), settings, state)
    assert names(built) == "Retrying>Balanced>[Breaker>OpenAI, Breaker>OpenAI]"
    assert isinstance(built, RetryingProvider) and built.config.attempts == 2
    balanced = built.inner
    assert isinstance(balanced, BalancedProvider) and balanced.policy == "least_in_flight"
    assert [s.weight for s in balanced.slots] == [3.0, 1.0]
    breakers = [s.provider for s in balanced.slots]
    assert all(isinstance(b, BreakerProvider) and b.store is state.breakers for b in breakers)
    assert [b.key for b in breakers if isinstance(b, BreakerProvider)] == ["upstream/0", "upstream/1"]
    leaves = [b.inner for b in breakers if isinstance(b, BreakerProvider)]
    assert [leaf.url for leaf in leaves if isinstance(leaf, OpenAIProvider)] == [
        "http://127.0.0.1:9/v1/chat/completions",
        "http://127.0.0.2:9/v1/chat/completions",
    ]
    assert all(leaf.name == "upstream" for leaf in leaves)
    assert built.name == "upstream"


def test_a_model_with_one_deployment_needs_no_balancer(settings: Settings) -> None:
    built = build_model(settings.model("local"), settings, MemoryState())
    assert names(built) == "Retrying>Breaker>OpenAI"
    assert isinstance(built, RetryingProvider) and isinstance(built.inner, BreakerProvider)
    assert built.inner.key == "local"


def test_a_model_built_in_code_without_deployments_gets_one() -> None:
    model = ModelConfig(name="m", provider="scripted", options=ScriptedProvider.Options())
    leaves: list[ScriptedProvider] = []

    def make(config: ModelConfig, options: object) -> ScriptedProvider:
        leaves.append(ScriptedProvider(config.name))
        return leaves[-1]

    settings = parse_config("models: [{name: x, provider: scripted}]\nfeatures: [{name: f, model: x}]")
    built = build_model(model, settings, MemoryState(), make)
    assert names(built) == "Retrying>Breaker>Scripted"
    assert run(built.complete(req())).text == "ok"


def test_a_feature_chain_falls_back_in_the_configured_order(settings: Settings) -> None:
    models = {m.name: build_model(m, settings, MemoryState()) for m in settings.models}
    support = build_chain(settings.feature("support"), models)
    assert isinstance(support, FallbackProvider)
    assert [p.name for p in support.inners] == ["upstream", "local"]
    assert build_chain(settings.feature("plain"), models) is models["local"]


def test_the_composed_chain_answers_from_the_fallback_and_reports_health(settings: Settings) -> None:
    scripts = {"upstream": [status(503)], "local": ["from local"]}

    def make(config: ModelConfig, options: object) -> ScriptedProvider:
        return ScriptedProvider(config.name, scripts[config.name])

    state = MemoryState()
    models = {m.name: build_model(m, settings, state, make) for m in settings.models}
    chain = build_chain(settings.feature("support"), models)

    async def go() -> tuple[str, dict[str, object], dict[str, object]]:
        request = req(timeout=10)
        answer = await chain.complete(request)
        assert request.trace.model == "local"
        # Both deployments failed on each of the two attempts: both breakers (failures: 2) are open.
        assert request.trace.failures == ["upstream: http_503"] * 4
        return answer.text, await health(models["upstream"]), await health(chain)

    text, upstream, whole = run(go())
    assert text == "from local"
    assert upstream["status"] == "down"
    deployments = upstream["deployments"]
    assert isinstance(deployments, list)
    assert [d["state"] for d in deployments] == ["open", "open"]
    assert whole["chain"] == ["upstream", "local"] and whole["status"] == "degraded"
