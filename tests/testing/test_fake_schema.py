"""The fake upstream's JSON generator: whatever the schema, the instance validates against it."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.testing.fake_schema import instance

pytestmark = pytest.mark.unit

VALIDATOR = jsonschema.Draft202012Validator


def check(schema: dict[str, Any]) -> Any:
    """The generated instance, after checking it against ``schema`` (formats included)."""
    value = instance(schema)
    VALIDATOR(schema, format_checker=VALIDATOR.FORMAT_CHECKER).validate(value)
    return value


@st.composite
def integers(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    lo = draw(st.none() | st.integers(-1000, 1000))
    step = draw(st.none() | st.integers(1, 9))
    if lo is not None:
        schema[draw(st.sampled_from(["minimum", "exclusiveMinimum"]))] = lo
    if draw(st.booleans()):
        base = lo if lo is not None else draw(st.integers(-1000, 1000))
        schema[draw(st.sampled_from(["maximum", "exclusiveMaximum"]))] = base + 2 + (step or 1) * 2
    if step is not None:
        schema["multipleOf"] = step
    return schema


@st.composite
def numbers(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    lo = draw(st.none() | st.floats(-1e6, 1e6))
    if lo is not None:
        schema[draw(st.sampled_from(["minimum", "exclusiveMinimum"]))] = lo
    if draw(st.booleans()):
        base = lo if lo is not None else draw(st.floats(-1e6, 1e6))
        schema[draw(st.sampled_from(["maximum", "exclusiveMaximum"]))] = base + draw(st.floats(0.001, 1e3))
    return schema


@st.composite
def strings(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if draw(st.booleans()):  # a format fixes the length: no length bounds with it
        return {
            **schema,
            "format": draw(st.sampled_from(["date", "date-time", "email", "ipv4", "ipv6", "uuid"])),
        }
    lo = draw(st.none() | st.integers(0, 40))
    if lo is not None:
        schema["minLength"] = lo
    if draw(st.booleans()):
        schema["maxLength"] = (lo or 0) + draw(st.integers(0, 10))
    return schema


leaves = st.one_of(
    integers(),
    numbers(),
    strings(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.text(max_size=5) | st.integers(), min_size=1, max_size=4, unique=True).map(
        lambda e: {"enum": e}
    ),
    st.integers().map(lambda c: {"const": c}),
    st.just({}),
)


def composites(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    names = st.text("abcdefgh", min_size=1, max_size=6)
    objects = st.dictionaries(names, children, max_size=4).flatmap(
        lambda props: (
            st.lists(st.sampled_from(sorted(props)), unique=True).map(
                lambda req: {"type": "object", "properties": props, "required": req}
            )
            if props
            else st.just({"type": "object", "properties": {}})
        )
    )
    arrays = st.tuples(children, st.integers(0, 3), st.integers(0, 3)).map(
        lambda t: {"type": "array", "items": t[0], "minItems": t[1], "maxItems": t[1] + t[2]}
    )
    unions = st.lists(children, min_size=1, max_size=3).map(lambda xs: {"anyOf": xs})
    return st.one_of(objects, arrays, unions)


schemas = st.recursive(leaves, composites, max_leaves=12)


@settings(max_examples=300, deadline=None, database=None)
@given(schemas)
def test_any_generated_schema_gets_a_valid_instance(schema: dict[str, Any]) -> None:
    check(schema)


def test_the_same_schema_always_gets_the_same_instance() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}}}
    assert instance(schema) == instance(schema)


def test_every_property_is_filled_in_required_or_not() -> None:
    value = check(
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "nights": {"type": "integer", "minimum": 2}},
            "required": ["city"],
        }
    )
    assert set(value) == {"city", "nights"} and value["nights"] >= 2


def test_refs_into_defs_and_recursive_schemas_terminate() -> None:
    tree = {
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["label", "children"],
            }
        },
    }
    assert check(tree)["label"]
    legacy = {"definitions": {"x": {"type": "integer", "minimum": 7}}, "$ref": "#/definitions/x"}
    assert check(legacy) == 7


def test_one_of_all_of_prefix_items_and_nullable_types() -> None:
    assert check({"oneOf": [{"type": "integer", "maximum": -5}, {"type": "string"}]}) == -5
    merged = check(
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
            ]
        }
    )
    assert set(merged) == {"a", "b"}
    pair = check({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2})
    assert isinstance(pair[0], int) and isinstance(pair[1], str)
    assert isinstance(check({"type": ["null", "string"]}), str)


def test_unique_items_get_distinct_values() -> None:
    value = check({"type": "array", "items": {"type": "string"}, "minItems": 3, "uniqueItems": True})
    assert len(set(value)) == 3
