"""The structured-output ladder through a real Pipeline: each rung on purpose, recorded in the ledger."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from keel import Call, Pipeline, Settings
from keel.errors import ConfigError, OutputRejected
from keel.llm.providers import ModelRequest
from keel.testing.scripted import Reply, ScriptedProvider

pytestmark = pytest.mark.unit

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1}, "vip": {"type": "boolean"}},
            "required": ["name"],
        },
        "status": {"enum": ["new", "paid", "shipped"]},
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                },
                "required": ["sku", "qty", "price"],
            },
        },
    },
    "required": ["customer", "status", "items"],
}
GOOD = {"customer": {"name": "Ada"}, "status": "paid", "items": [{"sku": "A1", "qty": 2, "price": 9.5}]}

CONFIG = f"""\
models:
  - name: m
    provider: scripted
features:
  - name: orders
    model: m
    schema: {json.dumps(ORDER_SCHEMA)}
  - name: orders-fallback
    model: m
    schema: {json.dumps(ORDER_SCHEMA)}
    validation:
      structured: {{reasks: 1}}
      fallback: {{customer: {{name: unknown}}, status: new, items: [{{sku: none, qty: 1, price: 0.01}}]}}
  - name: orders-strict
    model: m
    schema: {json.dumps(ORDER_SCHEMA)}
    validation: {{structured: {{repair: false, reasks: 0}}}}
  - name: orders-no-time
    model: m
    deadline: 0.5
    schema: {json.dumps(ORDER_SCHEMA)}
    validation: {{structured: {{reask_min_seconds: 5}}}}
storage: {{path: keel.db}}
"""

MakeSettings = Callable[..., Settings]


def _run(settings: Settings, replies: list[Reply], feature: str = "orders", stream: bool = False) -> Any:
    provider = ScriptedProvider("m", replies)

    async def go() -> Any:
        async with Pipeline(settings, providers={"m": provider}) as p:
            call = Call(feature=feature, messages=[{"role": "user", "content": "Ada paid for 2 x A1"}])
            if not stream:
                return await p.run(call), provider
            chunks = [c async for c in await p.open_stream(call)]
            return chunks, provider

    return asyncio.run(go())


def _row(settings: Settings) -> sqlite3.Row:
    with sqlite3.connect(settings.db_path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("select * from calls order by ts").fetchall()
    db.close()
    assert len(rows) == 1
    return rows[0]


def _counters(settings: Settings) -> dict[str, int]:
    counters: dict[str, int] = json.loads(_row(settings)["counters"])
    return counters


def test_a_valid_answer_passes_as_it_is_and_records_the_validate_rung(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    result, provider = _run(s, [json.dumps(GOOD)])
    assert result.output == GOOD and len(provider.requests) == 1
    assert _counters(s)["validation.schema.validated"] == 1


def test_a_model_that_cannot_constrain_is_told_the_schema(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    _, provider = _run(s, [json.dumps(GOOD)])
    system = provider.requests[0].messages[0]
    assert system["role"] == "system" and '"minItems":1' in system["content"]
    assert provider.requests[0].schema == ORDER_SCHEMA  # also sent for constrained decoding


@pytest.mark.parametrize(
    ("broken", "repair"),
    [
        (f"```json\n{json.dumps(GOOD)}\n```", "code fence"),
        (json.dumps(GOOD)[:-1] + ",}", "syntax"),
        ("Here is the order: " + json.dumps(GOOD) + " Anything else?", "truncated or surrounded by text"),
        (json.dumps(GOOD)[:-3], "truncated or surrounded by text"),
    ],
    ids=["fenced", "trailing-comma", "prose-around", "truncated"],
)
def test_broken_json_is_repaired_without_asking_again(
    make_settings: MakeSettings, broken: str, repair: str
) -> None:
    s = make_settings(CONFIG)
    result, provider = _run(s, [broken])
    assert result.output == GOOD and json.loads(result.text) == GOOD
    assert len(provider.requests) == 1
    [verdict] = [v for v in result.verdicts if v.reason == "output.repaired"]
    assert verdict.detail == repair
    assert _counters(s)["validation.schema.repaired"] == 1


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({**GOOD, "status": "lost"}, "at /status: 'lost' is not one of ['new', 'paid', 'shipped']"),
        ({**GOOD, "items": [{"sku": "A1", "qty": 100, "price": 1}]}, "at /items/0/qty: 100 is greater than"),
        (
            {**GOOD, "items": [{"sku": "A1", "qty": 1, "price": 0}]},
            "at /items/0/price: 0 is less than or equal",
        ),
        ({**GOOD, "items": []}, "at /items: [] should be non-empty"),
        ({**GOOD, "customer": {"vip": True}}, "at /customer: 'name' is a required property"),
    ],
    ids=["enum", "maximum", "exclusive-minimum", "min-items", "nested-required"],
)
def test_an_invalid_answer_is_reasked_with_its_error_path(
    make_settings: MakeSettings, bad: dict[str, Any], where: str
) -> None:
    s = make_settings(CONFIG)
    result, provider = _run(s, [json.dumps(bad), json.dumps(GOOD)])
    assert result.output == GOOD
    assert len(provider.requests) == 2
    reask = provider.requests[1].messages
    assert reask[-2] == {"role": "assistant", "content": json.dumps(bad)}
    assert where in reask[-1]["content"]
    row = _row(s)
    assert row["status"] == "ok"
    counters = json.loads(row["counters"])
    assert counters["validation.schema.reasked"] == 1 and counters["validation.schema.reasks"] == 1
    flagged = json.loads(row["verdicts"])
    assert any(v["reason"] == "output.schema_invalid" and v["action"] == "flag" for v in flagged)


def test_reasks_are_bounded_then_the_call_is_refused_with_the_errors(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    bad = json.dumps({**GOOD, "status": "lost"})
    with pytest.raises(OutputRejected, match="at /status"):
        _run(s, [bad])
    row = _row(s)
    assert row["status"] == "blocked" and row["http_status"] == 502
    assert json.loads(row["counters"])["validation.schema.reasks"] == 3  # the default bound


def test_the_fallback_answer_is_sent_when_every_reask_failed(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    result, provider = _run(s, ["I cannot do that."], feature="orders-fallback")
    assert len(provider.requests) == 2  # one re-ask, then the fallback
    assert result.output["customer"] == {"name": "unknown"}
    assert json.loads(result.text) == result.output
    row = _row(s)
    assert row["status"] == "ok"
    assert json.loads(row["counters"])["validation.schema.fallback"] == 1
    reasons = {v["reason"]: v["action"] for v in json.loads(row["verdicts"])}
    assert reasons["output.fallback"] == "modify" and reasons["output.not_json"] == "flag"


def test_without_repair_or_reasks_a_fenced_answer_is_refused(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    with pytest.raises(OutputRejected, match="not valid JSON"):
        _run(s, [f"```json\n{json.dumps(GOOD)}\n```"], feature="orders-strict")


def test_no_reask_is_made_when_the_deadline_is_too_close(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    with pytest.raises(OutputRejected):
        _run(s, ["nope"], feature="orders-no-time")
    counters = _counters(s)
    assert counters["validation.schema.reask_skipped"] == 1 and "validation.schema.reasks" not in counters


def test_a_held_stream_sends_the_repaired_json(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    chunks, _ = _run(s, [f"```json\n{json.dumps(GOOD)}\n```"], stream=True)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert json.loads(text) == GOOD


def test_a_constrained_provider_gets_no_instruction_and_records_the_first_rung(
    make_settings: MakeSettings,
) -> None:
    class Constrained(ScriptedProvider):
        @classmethod
        def constrains_schema(cls, options: Any) -> bool:
            return True

        async def complete(self, request: ModelRequest) -> Any:
            request.trace.constrained = True
            return await super().complete(request)

    from keel.llm.providers import register_provider

    register_provider("constrained", Constrained)
    s = make_settings(CONFIG.replace("provider: scripted", "provider: constrained"))
    provider = Constrained("m", [json.dumps(GOOD)])

    async def go() -> Any:
        async with Pipeline(s, providers={"m": provider}) as p:
            return await p.ask("Ada", feature="orders")

    result = asyncio.run(go())
    assert result.output == GOOD
    assert all(m["role"] != "system" for m in provider.requests[0].messages)
    assert _counters(s)["validation.schema.constrained"] == 1


def test_a_pydantic_model_by_import_path_is_the_schema_and_its_validators_run(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(
        CONFIG.split("features:")[0]
        + "features:\n  - name: p\n    model: m\n    schema: tests.validate.models:Booking\n"
        + "storage: {path: keel.db}\n"
    )
    bad = {"city": "Oslo", "nights": 3, "guests": ["Ada", "Ada"]}
    good = {"city": "Oslo", "nights": 3, "guests": ["Ada", "Bob"]}
    result, provider = _run(s, [json.dumps(bad), json.dumps(good)], feature="p")
    assert result.output == good
    assert "at /guests: Value error, guests must be distinct" in provider.requests[1].messages[-1]["content"]
    assert provider.requests[0].schema["properties"]["nights"]["minimum"] == 1


@pytest.mark.parametrize(
    ("feature_yaml", "message"),
    [
        ("schema: tests.validate.models:Nope", "is not a Pydantic model"),
        ("schema: no_such_module_xyz:Model", "cannot import 'no_such_module_xyz'"),
        ("schema: {type: object, properties: {a: {type: wrong}}}", "invalid JSON schema"),
        (
            "schema: {type: object, required: [a]}\n    validation: {fallback: {b: 1}}",
            "the fallback answer does not match the schema: at (root): 'a' is a required property",
        ),
    ],
    ids=["not-a-model", "no-module", "bad-schema", "invalid-fallback"],
)
def test_a_bad_schema_declaration_fails_at_load_naming_the_feature(
    make_settings: MakeSettings, feature_yaml: str, message: str
) -> None:
    s = make_settings(
        "models: [{name: m, provider: scripted}]\n"
        f"features:\n  - name: f\n    model: m\n    {feature_yaml}\n"
    )
    with pytest.raises(ConfigError, match=r"features\[0\]") as info:
        Pipeline(s, providers={"m": ScriptedProvider("m")}, ledger=False)
    assert message in str(info.value)
