"""Built-in prices: found for common hosted models (snapshots and provider prefixes too), never guessed."""

from __future__ import annotations

import pytest

from keel.config import parse_config
from keel.monitor.prices import builtin_prices, default_price

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("GPT-4.1", "gpt-4.1"),
    ],
)
def test_a_snapshot_or_prefixed_id_gets_its_models_price(model_id: str, expected: str) -> None:
    assert default_price(model_id) == builtin_prices()[expected]


@pytest.mark.parametrize("model_id", ["gpt-4o-audio-preview", "my-finetune", "llama-3-8b", ""])
def test_a_model_the_table_does_not_know_has_no_price(model_id: str) -> None:
    assert default_price(model_id) is None


def test_config_takes_the_built_in_price_unless_it_names_one() -> None:
    s = parse_config(
        """
models:
  - {name: a, provider: openai, base_url: "http://x/v1", model: gpt-4o-mini}
  - {name: gpt-4.1-nano, provider: openai, base_url: "http://x/v1"}
  - {name: c, provider: openai, base_url: "http://x/v1", model: gpt-4o, price: {input_per_mtok: 9}}
  - {name: d, provider: openai, base_url: "http://x/v1", model: unknown-model}
features: [{name: f, model: a}]
"""
    )
    a, nano, c, d = s.models
    assert (a.price.input_per_mtok, a.price.output_per_mtok, a.price.cached_input_per_mtok) == (
        0.15,
        0.6,
        0.075,
    )
    assert nano.price == builtin_prices()["gpt-4.1-nano"]
    assert (c.price.input_per_mtok, c.price.output_per_mtok) == (9.0, 0.0)  # the config's, whole
    assert d.price.cost(1_000_000, 1_000_000) == 0.0


def test_cached_input_tokens_cost_the_cached_rate() -> None:
    price = builtin_prices()["gpt-4o"]
    assert price.cost(1_000_000, 0, cached_input_tokens=400_000) == pytest.approx(0.6 * 2.50 + 0.4 * 1.25)
