"""RoutingProvider: which model answers, what the trace says, streaming, and bad configuration."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from routing_helpers import request, rule

from keel.call import Message
from keel.config import Settings
from keel.errors import ConfigError, UpstreamTimeout
from keel.llm.providers.base import Chunk, ModelRequest, Provider
from keel.llm.routing import RoutingProvider
from keel.llm.tokens import count_messages
from keel.settings import ComplexityRouting, Price, RoutingConfig
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

PRICES = {
    "mini": Price(input_per_mtok=0.15, output_per_mtok=0.6),
    "mid": Price(input_per_mtok=1.0, output_per_mtok=4.0),
    "big": Price(input_per_mtok=5.0, output_per_mtok=15.0),
}
HARD = "Prove that the square root of 2 is irrational, step by step."
EASY = "What is the capital of Japan?"


def _providers(*names: str) -> dict[str, ScriptedProvider]:
    return {n: ScriptedProvider(n, [f"answer from {n}"]) for n in names}


def _complete(router: Provider, req: ModelRequest) -> str:
    return asyncio.run(router.complete(req)).text


def test_a_matching_rule_picks_the_model_and_the_trace_says_which_rule() -> None:
    routes = _providers("mini", "mid", "big")
    config = RoutingConfig(rules=[rule("big", input_tokens_over=2000), rule("mid", pattern="(?i)refund")])
    router = RoutingProvider(routes, config, "mini", count_messages, price=PRICES.get)
    req = request("I want a REFUND now")
    assert _complete(router, req) == "answer from mid"
    assert (req.trace.route, req.trace.model, req.trace.baseline) == ("rule:1", "mid", "big")
    assert routes["mid"].requests == [req] and not routes["mini"].requests and not routes["big"].requests


def test_without_a_match_the_features_own_model_answers() -> None:
    routes = _providers("mini", "big")
    router = RoutingProvider(
        routes,
        RoutingConfig(rules=[rule("big", pattern="contract")]),
        "mini",
        count_messages,
        price=PRICES.get,
    )
    req = request("hello")
    assert _complete(router, req) == "answer from mini"
    assert (req.trace.route, req.trace.model) == ("default", "mini")
    assert req.trace.baseline == "big"  # the saving is measured against the most expensive route


def test_rules_only_routing_without_prices_has_no_baseline() -> None:
    router = RoutingProvider(
        _providers("mini", "big"), RoutingConfig(rules=[rule("big", pattern="x")]), "mini", count_messages
    )
    req = request("x")
    _complete(router, req)
    assert req.trace.route == "rule:0" and req.trace.baseline is None


def test_the_scorer_sends_hard_prompts_to_the_large_model_and_easy_ones_to_the_small() -> None:
    routes = _providers("mini", "big")
    config = RoutingConfig(complexity=ComplexityRouting(small="mini", large="big"))
    router = RoutingProvider(routes, config, "mini", count_messages)
    hard, easy = request(HARD), request(EASY)
    assert _complete(router, hard) == "answer from big"
    assert _complete(router, easy) == "answer from mini"
    assert re.fullmatch(r"complexity:large:(0\.9\d|1\.00)", hard.trace.route or "")
    assert re.fullmatch(r"complexity:small:0\.\d\d", easy.trace.route or "")
    assert hard.trace.baseline == easy.trace.baseline == "big"


def test_rules_are_tried_before_the_scorer() -> None:
    routes = _providers("mini", "mid", "big")
    config = RoutingConfig(
        rules=[rule("mid", pattern="(?i)irrational")], complexity=ComplexityRouting(small="mini", large="big")
    )
    router = RoutingProvider(routes, config, "mini", count_messages)
    req = request(HARD)
    assert _complete(router, req) == "answer from mid"
    assert req.trace.route == "rule:0" and req.trace.baseline == "big"


def test_the_scorer_reads_the_last_user_message_not_the_system_prompt() -> None:
    routes = _providers("mini", "big")
    config = RoutingConfig(complexity=ComplexityRouting(small="mini", large="big", threshold=0.5))
    router = RoutingProvider(routes, config, "mini", count_messages)
    messages: list[Message] = [
        {"role": "system", "content": "You are a mathematician. Prove every claim rigorously, step by step."},
        {"role": "user", "content": "hi!"},
    ]
    req = ModelRequest(messages=messages)
    assert _complete(router, req) == "answer from mini"


def test_a_stream_passes_through_from_the_routed_model_untouched() -> None:
    routes = _providers("mini", "big")
    config = RoutingConfig(complexity=ComplexityRouting(small="mini", large="big"))
    router = RoutingProvider(routes, config, "mini", count_messages)
    reference = ScriptedProvider("big", ["answer from big"])

    async def collect(p: Provider, req: ModelRequest) -> list[Chunk]:
        return [c async for c in p.stream(req)]

    req = request(HARD, params={"stream_options": {"include_usage": True}})
    got = asyncio.run(collect(router, req))
    want = asyncio.run(collect(reference, request(HARD)))
    for c in (*got, *want):
        c.pop("created", None)
    assert got == want and got[-1]["usage"]["completion_tokens"] > 0
    assert req.trace.model == "big" and (req.trace.route or "").startswith("complexity:large:")
    assert not routes["mini"].requests


def test_the_routed_models_errors_pass_through_unchanged() -> None:
    routes: dict[str, Provider] = {"mini": ScriptedProvider("mini", [UpstreamTimeout("slow")])}
    router = RoutingProvider(routes, RoutingConfig(), "mini", count_messages)
    req = request("hi")
    with pytest.raises(UpstreamTimeout, match="slow"):
        _complete(router, req)
    assert req.trace.route == "default"


class _Counting(ScriptedProvider):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.started = self.closed = 0

    def count_messages(self, messages: list[Message]) -> int:
        return 4242 if self.name == "mini" else 1

    async def start(self) -> None:
        self.started += 1

    async def aclose(self) -> None:
        self.closed += 1


def test_token_counts_are_the_default_models_and_start_and_close_reach_each_route_once() -> None:
    mini, big = _Counting("mini"), _Counting("big")
    routes = {"mini": mini, "big": big, "big-alias": big}
    router = RoutingProvider(routes, RoutingConfig(), "mini", count_messages)
    assert router.count_messages([{"role": "user", "content": "x"}]) == 4242

    async def lifecycle() -> None:
        await router.start()
        await router.aclose()

    asyncio.run(lifecycle())
    assert (mini.started, mini.closed, big.started, big.closed) == (1, 1, 1, 1)


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        (RoutingConfig(rules=[rule("ghost", pattern="x")]), "ghost"),
        (RoutingConfig(complexity=ComplexityRouting(small="mini", large="huge")), "huge"),
    ],
)
def test_a_route_to_a_model_without_a_provider_is_a_config_error(config: RoutingConfig, missing: str) -> None:
    with pytest.raises(ConfigError, match=rf"no provider: {missing} \(known: mini\)"):
        RoutingProvider(_providers("mini"), config, "mini", count_messages)


ROUTED = """\
models:
  - {{name: mini, provider: scripted}}
  - {{name: big, provider: scripted}}
features:
  - name: f
    model: mini
    routing:
{routing}
"""


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ("      rules: [{when: {pattern: '(unclosed'}, model: big}]", r"pattern: invalid regular expression"),
        (
            "      complexity: {small: mini, large: big}\n      cascade: {models: [mini, big]}",
            r"either complexity or cascade",
        ),
        ("      complexity: {small: mini, large: giant}", r"unknown model 'giant'"),
        ("      complexity: {small: mini, large: big, target_large_share: 1.5}", r"target_large_share"),
        ("      rules: [{when: {input_tokens_under: 0}, model: big}]", r"input_tokens_under"),
    ],
)
def test_invalid_routing_configuration_is_refused_at_load(
    make_settings: Callable[..., Settings], routing: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_settings(ROUTED.format(routing=routing))


def test_a_loaded_configuration_builds_a_router(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        ROUTED.format(routing="      rules: [{when: {input_tokens_over: 5}, model: big}]")
    )
    fc = settings.feature("f")
    assert fc.routing is not None
    routes: dict[str, Any] = _providers(*fc.models_used())
    router = RoutingProvider(
        routes, fc.routing, fc.model, count_messages, price=lambda m: settings.model(m).price
    )
    req = request("one two three four five six seven")
    assert _complete(router, req) == "answer from big" and req.trace.route == "rule:0"
