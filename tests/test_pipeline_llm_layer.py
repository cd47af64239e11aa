"""The LLM layer as configured in keel.yaml: fallbacks, routing rules, cascades, and what they cost."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from keel import Call, Pipeline, Settings
from keel.errors import UpstreamStatusError
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

MakeSettings = Callable[..., Settings]
CONFIG = """\
models:
  - {name: small, provider: scripted, price: {input_per_mtok: 1, output_per_mtok: 1}, retry: {attempts: 1}}
  - {name: big, provider: scripted, price: {input_per_mtok: 100, output_per_mtok: 100}, retry: {attempts: 1}}
  - {name: backup, provider: scripted, price: {input_per_mtok: 10, output_per_mtok: 10}}
features:
  - name: resilient
    model: small
    fallbacks: [backup]
  - name: routed
    model: small
    routing:
      rules: [{when: {pattern: "(?i)contract"}, model: big}]
  - name: cascading
    model: small
    schema: {type: object, properties: {answer: {type: string}}, required: [answer]}
    routing:
      cascade: {models: [small, big]}
storage: {path: keel.db}
"""


def _ask(settings: Settings, providers: dict[str, ScriptedProvider], feature: str, text: str) -> Any:
    async def go() -> Any:
        async with Pipeline(settings, providers=providers) as p:  # type: ignore[arg-type]
            return await p.run(Call(feature=feature, messages=[{"role": "user", "content": text}]))

    return asyncio.run(go())


def _rows(settings: Settings) -> list[dict[str, Any]]:
    db = sqlite3.connect(settings.db_path)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("select * from calls order by ts")]
    db.close()
    return rows


def test_a_failing_model_falls_back_and_is_priced_as_the_model_that_answered(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    down = UpstreamStatusError("overloaded", upstream_status=503)
    providers = {
        "small": ScriptedProvider("small", [down]),
        "backup": ScriptedProvider("backup", ["from backup"]),
    }
    result = _ask(s, providers, "resilient", "hello")
    assert result.text == "from backup"
    assert result.model == "backup"
    u = result.usage
    assert u.cost_usd == pytest.approx((u.input_tokens + u.output_tokens) * 10 / 1e6)
    [row] = _rows(s)
    assert row["model"] == "backup" and row["status"] == "ok"
    assert "llm.failover" in row["verdicts"] and "small: http_503" in row["verdicts"]


def test_rules_route_by_pattern_and_record_the_saving_against_the_dearest_route(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    providers = {"small": ScriptedProvider("small", ["cheap"]), "big": ScriptedProvider("big", ["careful"])}
    assert _ask(s, providers, "routed", "Review this contract please").text == "careful"
    assert _ask(s, providers, "routed", "What time is it?").text == "cheap"
    big_row, small_row = _rows(s)
    assert (big_row["model"], big_row["route"]) == ("big", "rule:0")
    assert big_row["saved_usd"] == pytest.approx(0.0)
    assert (small_row["model"], small_row["route"]) == ("small", "default")
    tokens = small_row["input_tokens"] + small_row["output_tokens"]
    assert small_row["saved_usd"] == pytest.approx(tokens * (100 - 1) / 1e6)


def test_a_cascade_escalates_when_validation_fails_and_pays_for_both(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    providers = {
        "small": ScriptedProvider("small", ["not json at all"]),
        "big": ScriptedProvider("big", ['{"answer": "42"}']),
    }
    result = _ask(s, providers, "cascading", "What is the answer?")
    assert result.output == {"answer": "42"}
    assert result.model == "big"
    reasons = [v.reason for v in result.verdicts]
    assert "output.not_json" in reasons and "llm.cascade_escalated" in reasons
    [row] = _rows(s)
    assert row["status"] == "ok" and row["route"] == "cascade:1"
    assert row["cost_usd"] > 0 and row["saved_usd"] < 0  # escalating cost more than asking the big model


def test_a_cascade_stops_at_the_first_valid_answer(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    big = ScriptedProvider("big", ['{"answer": "unused"}'])
    providers = {"small": ScriptedProvider("small", ['{"answer": "cheap"}']), "big": big}
    result = _ask(s, providers, "cascading", "Easy one")
    assert result.output == {"answer": "cheap"}
    assert big.requests == []
    [row] = _rows(s)
    assert row["route"] == "cascade:0" and row["saved_usd"] > 0
