"""JSON schema → grammar for the local model: numeric bounds are exact, and unusable schemas say so."""

from __future__ import annotations

import re

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("llama_cpp")

from keel.errors import InvalidRequest
from keel.llm.local_grammar import bounded_number, schema_grammar, uint_range

pytestmark = pytest.mark.unit


def as_regex(gbnf: str) -> re.Pattern[str]:
    """The number rules use only literals, digit classes, repetition, groups and alternation: a regex."""
    body = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), gbnf).replace(" ", "")
    return re.compile(body)


def admits(gbnf: str, text: str) -> bool:
    return as_regex(gbnf).fullmatch(text) is not None


@given(st.integers(0, 5000), st.integers(0, 5000))
def test_an_integer_range_admits_exactly_the_integers_inside_it(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    rule = uint_range(lo, hi)
    for x in {0, lo - 1, lo, lo + 1, (lo + hi) // 2, hi - 1, hi, hi + 1, 9, 10, 99, 100, 999, 1000}:
        if x >= 0:
            assert admits(rule, str(x)) == (lo <= x <= hi), (lo, hi, x)
    assert not admits(rule, "0" + str(hi))  # never a leading zero


def test_a_lower_bound_alone_admits_everything_above_it() -> None:
    for lo in (0, 1, 7, 10, 95, 1000):
        rule = uint_range(lo, None)
        assert [x for x in range(3000) if admits(rule, str(x))] == list(range(lo, 3000))
        assert admits(rule, "123456789012")


BOUNDS = [
    {"minimum": 1, "maximum": 5},
    {"minimum": -5, "maximum": 5},
    {"minimum": -100, "maximum": -3},
    {"minimum": 0},
    {"maximum": 10},
    {"maximum": -7},
    {"minimum": -7},
    {"exclusiveMinimum": 0, "exclusiveMaximum": 100},
    {"minimum": 0.5, "maximum": 9.5},
    {"minimum": 0, "maximum": 1},
    {"minimum": 0, "maximum": 100, "exclusiveMaximum": True},  # draft 4 spelling
]


@pytest.mark.parametrize("bounds", BOUNDS)
def test_bounded_integers_are_exactly_the_valid_ones(bounds: dict[str, float]) -> None:
    schema = {"type": "integer", **bounds}
    rule = bounded_number(schema, integer=True)
    assert rule is not None
    validator = (
        jsonschema.Draft4Validator
        if "exclusiveMaximum" in bounds and bounds["exclusiveMaximum"] is True
        else jsonschema.Draft202012Validator
    )
    for x in range(-300, 300):
        assert admits(rule, str(x)) == validator(schema).is_valid(x), (bounds, x)


@pytest.mark.parametrize("bounds", BOUNDS)
def test_bounded_numbers_admit_only_valid_values(bounds: dict[str, float]) -> None:
    schema = {"type": "number", **bounds}
    rule = bounded_number(schema, integer=False)
    assert rule is not None
    validator = (
        jsonschema.Draft4Validator
        if bounds.get("exclusiveMaximum") is True
        else jsonschema.Draft202012Validator
    )
    admitted = 0
    for text in [f"{x / 4:g}" for x in range(-1200, 1200)] + ["-0.5", "0.25", "1.0", "1.000", "1.5", "-0"]:
        if admits(rule, text):
            admitted += 1
            assert validator(schema).is_valid(float(text)), (bounds, text)
    assert admitted > 0


def test_a_range_holding_no_integer_is_left_to_validation() -> None:
    assert bounded_number({"type": "number", "minimum": 0.2, "maximum": 0.8}, integer=False) is None


def test_the_grammar_keeps_property_order_and_keeps_control_characters_out_of_strings() -> None:
    schema = {
        "type": "object",
        "properties": {"zeta": {"type": "string"}, "alpha": {"type": "integer", "minimum": 1, "maximum": 3}},
        "required": ["zeta", "alpha"],
    }
    grammar = schema_grammar(schema)
    root = next(line for line in grammar.splitlines() if line.startswith("root ::="))
    assert root.index("zeta") < root.index("alpha")
    char = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert r"\x00-\x1F" in char


def test_a_nullable_bounded_integer_keeps_its_bounds() -> None:
    grammar = schema_grammar({"type": ["integer", "null"], "minimum": 1, "maximum": 3})
    assert "[1-3]" in grammar
    assert '"null"' in grammar


@pytest.mark.parametrize(
    "schema",
    [{"type": "frobnicate"}, {"$ref": "https://example.com/schema.json"}, {"$ref": "#/$defs/missing"}],
)
def test_a_schema_the_converter_cannot_handle_is_an_invalid_request(schema: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest, match="cannot constrain"):
        schema_grammar(schema)
