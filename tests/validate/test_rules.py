"""Hybrid pipelines: intents answered by rules without the model (cost saved), and post-processing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from tests.validate.ledger_rows import last_row

from keel import Call, Pipeline, Settings
from keel.context.embed import HashEmbedder
from keel.errors import ConfigError
from keel.testing.scripted import ScriptedProvider
from keel.validate.rules import IntentMatcher
from keel.validate.settings import Intent

pytestmark = pytest.mark.unit

CONFIG = """\
models: [{name: m, provider: scripted, price: {input_per_mtok: 10, output_per_mtok: 30}}]
features:
  - name: shop
    model: m
    validation:
      intents:
        - name: hours
          patterns: ['\\bopening hours\\b', '\\bwhen (are|do) you open\\b']
          answer: "We are open 9:00-17:00, Monday to Friday."
        - name: policy
          patterns: ['\\b(?P<key>refund|shipping|returns?) policy\\b']
          table: {refund: "Refunds within 30 days.", shipping: "Free shipping over 50 EUR."}
        - name: order
          patterns: ['order\\s*#?(?P<order>\\d{5})']
          function: tests.validate.rule_functions:order_status
        - name: stores
          patterns: ['how many stores']
          function: tests.validate.rule_functions.store_count
        - name: greet
          patterns: ['^hello, i am (?P<who>\\w+)']
          answer: "Hello {who}!"
  - name: tidy
    model: m
    validation:
      postprocess:
        - {replace: '(?i)\\bcolour\\b', with: color}
        - {strip: true}
        - {function: 'tests.validate.rule_functions:shout'}
storage: {path: keel.db}
"""

MakeSettings = Callable[..., Settings]


def _ask(
    settings: Settings,
    text: str,
    feature: str = "shop",
    *,
    reply: str = "from the model",
    stream: bool = False,
) -> Any:
    provider = ScriptedProvider("m", [reply])

    async def go() -> Any:
        async with Pipeline(settings, providers={"m": provider}) as p:
            call = Call(feature=feature, messages=[{"role": "user", "content": text}])
            if stream:
                chunks = [c async for c in await p.open_stream(call)]
                return "".join(
                    (c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices")
                )
            return (await p.run(call)).text

    return asyncio.run(go()), provider


def test_a_matching_intent_is_answered_without_the_model_and_the_saving_is_recorded(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    text, provider = _ask(s, "What are your opening hours?")
    assert text == "We are open 9:00-17:00, Monday to Friday."
    assert provider.requests == []
    row = last_row(s)
    assert row["status"] == "ok" and row["cost_usd"] == 0 and row["saved_usd"] > 0
    assert row["route"] == "intent:hours"
    assert json.loads(row["counters"])["rules.intent.hours"] == 1


def test_a_table_row_is_chosen_by_the_pattern_group(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    assert _ask(s, "What is your Shipping policy?")[0] == "Free shipping over 50 EUR."
    text, provider = _ask(s, "and your returns policy?")  # no row: the model answers
    assert text == "from the model" and len(provider.requests) == 1


def test_a_python_function_answers_or_lets_the_model_answer(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    assert _ask(s, "Where is order #12345?")[0] == "Order 12345 is shipped on Monday."
    text, provider = _ask(s, "Where is order 55555?")
    assert text == "from the model" and len(provider.requests) == 1
    assert _ask(s, "How many stores do you have?")[0] == "We have 12 stores."


def test_answer_templates_use_the_named_groups(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    assert _ask(s, "Hello, I am Ada")[0] == "Hello Ada!"


def test_a_stream_gets_the_rule_answer_without_the_model(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    text, provider = _ask(s, "When do you open tomorrow?", stream=True)
    assert text == "We are open 9:00-17:00, Monday to Friday." and provider.requests == []


def test_other_questions_go_to_the_model(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    text, provider = _ask(s, "Tell me a joke")
    assert text == "from the model" and len(provider.requests) == 1
    assert last_row(s)["route"] is None


def test_postprocessing_edits_the_answer_in_order_also_in_a_held_stream(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    assert _ask(s, "x", "tidy", reply="  The colour is red.  ")[0] == "THE COLOR IS RED."
    assert _ask(s, "x", "tidy", reply="  Colour me blue ", stream=True)[0] == "COLOR ME BLUE"


def test_intents_match_paraphrases_by_their_examples() -> None:
    intents = [
        Intent(
            name="hours",
            examples=["what time do you open", "are you open on sunday"],
            threshold=0.6,
            answer="9-17",
        ),
        Intent(name="refund", examples=["can i get my money back"], threshold=0.6, answer="30 days"),
    ]
    matcher = IntentMatcher(intents, HashEmbedder())

    async def go() -> list[Any]:
        return [
            await matcher.match(q)
            for q in ("What time do you open today?", "can I get my money back please", "tell me a joke")
        ]

    hours, refund, none = asyncio.run(go())
    assert hours is not None and hours.intent.name == "hours" and hours.how == "example"
    assert refund is not None and refund.intent.name == "refund" and refund.score >= 0.6
    assert none is None


@pytest.mark.parametrize(
    ("intent", "message"),
    [
        ("{name: a, patterns: [x], answer: hi, function: 'm:f'}", "exactly one of answer, table or function"),
        ("{name: a, patterns: ['(?P<k>x)'], table: {x: y}}", "a table needs a pattern with a named group"),
        ("{name: a, answer: hi}", "an intent needs patterns or examples"),
        (
            "{name: a, patterns: [x], function: 'tests.validate.rule_functions:NOT_CALLABLE'}",
            "is not callable",
        ),
        ("{name: a, patterns: [x], function: 'tests.validate.rule_functions:missing'}", "has no 'missing'"),
    ],
)
def test_bad_intents_fail_at_load(make_settings: MakeSettings, intent: str, message: str) -> None:
    def load() -> None:
        s = make_settings(
            "models: [{name: m, provider: scripted}]\nfeatures:\n  - name: f\n    model: m\n"
            f"    validation: {{intents: [{intent}]}}\n"
        )
        Pipeline(s, providers={"m": ScriptedProvider("m")}, ledger=False)

    with pytest.raises(ConfigError, match=message):
        load()


@pytest.mark.slow
def test_a_paraphrase_is_answered_by_its_intent_with_the_local_embedder(make_settings: MakeSettings) -> None:
    s = make_settings(
        "models: [{name: m, provider: scripted}]\nfeatures:\n  - name: f\n    model: m\n"
        "    validation:\n      intents:\n"
        "        - {name: hours, examples: ['What are your opening hours?', 'Are you open on Sunday?'], "
        "answer: 'Open 9-17, Monday to Saturday.'}\n"
        "storage: {path: keel.db}\n"
    )
    provider = ScriptedProvider("m", ["from the model"])

    async def go() -> list[str]:
        async with Pipeline(s, providers={"m": provider}) as p:  # one embedder load for both questions
            return [
                (await p.ask(q, feature="f")).text for q in ("is the store open at weekends", "what is 2+2")
            ]

    assert asyncio.run(go()) == ["Open 9-17, Monday to Saturday.", "from the model"]
    assert len(provider.requests) == 1


def test_a_schema_features_rule_answers_must_satisfy_the_schema(make_settings: MakeSettings) -> None:
    head = "models: [{name: m, provider: scripted}]\nfeatures:\n  - name: f\n    model: m\n"
    schema = "    schema: {type: object, properties: {hours: {type: string}}, required: [hours]}\n"
    bad = head + schema + "    validation: {intents: [{name: h, patterns: [open], answer: 'Open 9-17'}]}\n"
    with pytest.raises(ConfigError, match=r"intents\[0\]: the answer 'Open 9-17' is not JSON valid"):
        Pipeline(make_settings(bad), providers={"m": ScriptedProvider("m")}, ledger=False)
    good = (
        head
        + schema
        + '    validation: {intents: [{name: h, patterns: [open], answer: \'{"hours": "9-17"}\'}]}\n'
        "storage: {path: keel.db}\n"
    )
    s = make_settings(good)
    text, provider = _ask(s, "when are you open", "f")
    assert json.loads(text) == {"hours": "9-17"} and provider.requests == []
