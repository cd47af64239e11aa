"""Each assertion type on known outputs: verdict, score, ``not-``, weights, custom Python functions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from keel.context.embed import HashEmbedder
from keel.errors import ConfigError
from keel.evals.assertions import Observed, Outcome, Services, check, combine, parse_judgement
from keel.evals.suite import AssertionSpec, Case

pytestmark = pytest.mark.unit

CASE = Case(id="c1", input="Where is my parcel?", expected="parcel", vars={"city": "Lyon"})


def _check(spec: dict[str, Any], output: str, services: Services | None = None, **seen: Any) -> Outcome:
    observed = Observed(CASE, output, seen.get("latency_ms", 10.0), seen.get("cost_usd", 0.001))
    return asyncio.run(check(AssertionSpec(**spec), observed, services or Services(Path("."))))


@pytest.mark.parametrize(
    ("spec", "output", "passed"),
    [
        ({"type": "equals", "value": "parcel"}, " parcel\n", True),
        ({"type": "equals", "value": {"a": 1}}, '```json\n{"a": 1}\n```', True),
        ({"type": "equals", "value": "{{ expected }}"}, "parcels", False),
        ({"type": "contains", "value": "{{ expected }} in {{ city }}"}, "Your parcel in Lyon", True),
        ({"type": "contains", "value": ["parcel", "Lyon"]}, "parcel only", False),
        ({"type": "icontains", "value": "PARCEL"}, "your parcel", True),
        ({"type": "not-contains", "value": "sorry"}, "Sorry, no", True),
        ({"type": "not-icontains", "value": "sorry"}, "Sorry, no", False),
        ({"type": "regex", "value": r"\b\d{5}\b"}, "tracking 12345 ok", True),
        ({"type": "not-regex", "value": r"(?i)as an ai"}, "As an AI, I", False),
        ({"type": "is-json"}, '{"x": [1, 2]}', True),
        ({"type": "is-json"}, "{x: 1}", False),
        (
            {"type": "json-schema", "value": {"type": "object", "required": ["city"]}},
            '{"city": "Lyon"}',
            True,
        ),
        (
            {"type": "json-schema", "value": {"type": "object", "required": ["city"]}},
            '{"town": "Lyon"}',
            False,
        ),
        ({"type": "latency", "value": 50}, "x", True),
        ({"type": "cost", "value": 0.0001}, "x", False),
    ],
)
def test_assertion_verdicts(spec: dict[str, Any], output: str, passed: bool) -> None:
    got = _check(spec, output)
    assert got.passed is passed, got.reason
    assert got.score == (1.0 if passed else 0.0)


def test_failures_say_why() -> None:
    assert _check({"type": "contains", "value": "refund"}, "no").reason == "missing 'refund'"
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert _check({"type": "json-schema", "value": schema}, '{"n": "x"}').reason.startswith("n: 'x' is not")
    assert _check({"type": "latency", "value": 5}, "x", latency_ms=12).reason == "12 ms (limit 5)"


def test_similar_scores_by_cosine_against_a_threshold() -> None:
    services = Services(Path("."), embedder=HashEmbedder())
    close = _check(
        {"type": "similar", "value": "where is my parcel", "threshold": 0.5},
        "where is my parcel now",
        services,
    )
    far = _check(
        {"type": "similar", "value": "where is my parcel", "threshold": 0.5}, "bake bread at home", services
    )
    assert close.passed and not far.passed and close.score > far.score
    negated = _check(
        {"type": "not-similar", "value": "where is my parcel", "threshold": 0.5}, "bake bread", services
    )
    assert negated.passed and negated.score == pytest.approx(1 - far.score, abs=1e-3)


def test_similar_without_an_embedder_fails_clearly() -> None:
    got = _check({"type": "similar", "value": "x"}, "x")
    assert not got.passed and "no embedder" in got.reason


def test_llm_rubric_asks_the_judge_and_applies_the_threshold() -> None:
    asked: list[tuple[str, str, str]] = []

    async def judge(rubric: str, question: str, answer: str) -> tuple[bool, float, str]:
        asked.append((rubric, question, answer))
        return True, 0.6, "mostly polite"

    services = Services(Path("."), judge=judge)
    assert _check({"type": "llm-rubric", "value": "is polite"}, "Hello!", services).passed
    strict = _check({"type": "llm-rubric", "rubric": "is polite", "threshold": 0.8}, "Hello!", services)
    assert not strict.passed and strict.score == 0.6 and strict.reason == "judge: mostly polite"
    assert asked[0] == ("is polite", "Where is my parcel?", "Hello!")


def test_judge_answers_are_parsed_leniently() -> None:
    assert parse_judgement('Sure: {"pass": true, "score": 0.9, "reason": "ok"}') == (True, 0.9, "ok")
    assert parse_judgement('{"score": 0.2}') == (False, 0.2, "")
    assert parse_judgement("I think it is fine")[0] is False


def test_python_assertions_from_a_file_beside_the_suite(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text(
        "def short(output, context):\n    return len(output) < 20\n"
        "def ratio(output, context):\n    return output.count('a') / max(1, len(output))\n"
        "def full(output, context):\n"
        "    return {'pass': context['case']['expected'] in output, 'score': 0.7, 'reason': 'custom'}\n"
    )
    services = Services(tmp_path)
    assert _check({"type": "python", "value": "checks.py:short"}, "tiny", services).passed
    assert not _check(
        {"type": "python", "value": "checks.py:ratio", "threshold": 0.9}, "abc", services
    ).passed
    full = _check({"type": "python", "value": "checks.py:full"}, "your parcel", services)
    assert (full.passed, full.score, full.reason) == (True, 0.7, "custom")
    with pytest.raises(ConfigError, match="has no function 'nope'"):
        _check({"type": "python", "value": "checks.py:nope"}, "x", services)


def test_a_case_passes_only_when_every_weighted_assertion_passes() -> None:
    outcomes = [
        Outcome("contains", True, 1.0, "", weight=3),
        Outcome("regex", False, 0.0, "", weight=1),
        Outcome("latency", False, 0.0, "", weight=0),  # weight 0: reported, never decisive
    ]
    assert combine(outcomes) == (False, 0.75)
    assert combine(outcomes[:1] + outcomes[2:]) == (True, 1.0)


def test_unknown_and_unnegatable_assertions_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown assertion 'smells'"):
        AssertionSpec(type="smells")
    with pytest.raises(ValueError, match="'latency' cannot be negated"):
        AssertionSpec(type="not-latency", value=5)


SOURCE = "Refunds are paid within 14 days of the return reaching our warehouse in Lyon."


@pytest.mark.parametrize("embedder", [None, HashEmbedder()], ids=["lexical", "with-embedder"])
def test_grounded_scores_the_weakest_sentence_against_the_sources(embedder: HashEmbedder | None) -> None:
    services = Services(Path("."), embedder=embedder)
    spec = {"type": "grounded", "value": [SOURCE], "threshold": 0.6}
    supported = _check(
        spec, "Refunds are paid within 14 days of the return reaching the warehouse.", services
    )
    changed = _check(spec, "Refunds are paid within 30 days. Shipping to Berlin is free.", services)
    assert supported.passed, supported.reason
    assert not changed.passed and changed.score < supported.score
    assert "Shipping to Berlin" in changed.reason or "30 days" in changed.reason
    negated = _check({**spec, "type": "not-grounded"}, "Shipping to Berlin is free of charge.", services)
    assert negated.passed


def test_grounded_prefers_the_sources_the_call_retrieved() -> None:
    observed = Observed(CASE, "Refunds are paid within 14 days.", 1.0, 0.0, sources=[SOURCE])
    got = asyncio.run(
        check(AssertionSpec(type="grounded", value="Unrelated text."), observed, Services(Path(".")))
    )
    assert got.passed and got.score == 1.0


def test_grounded_without_sources_fails_clearly() -> None:
    got = _check({"type": "grounded"}, "Refunds take 14 days.")
    assert not got.passed and "no sources" in got.reason


def test_grounded_sources_from_the_case_variables() -> None:
    case = Case(id="c2", input="How long do refunds take?", vars={"context": SOURCE})
    observed = Observed(case, "Refunds are paid within 41 days.", 1.0, 0.0)
    spec = AssertionSpec(type="grounded", value="{{ context }}", threshold=0.9)
    got = asyncio.run(check(spec, observed, Services(Path("."))))
    assert not got.passed and got.score < 0.9
