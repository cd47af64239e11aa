"""Property tests: whatever text a model writes, the ladder's parse and validate rungs never crash."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keel.call import Action, Call, Completion
from keel.errors import OutputRejected
from keel.validate.schema import SchemaStage
from keel.validate.structured import NotJSON, OutputSchema, parse

pytestmark = pytest.mark.unit

SCHEMA = OutputSchema(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "child": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
        "required": ["name"],
    }
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # orjson reads wider integers as floats
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def broken_json(draw: st.DrawFn) -> str:
    """Valid JSON, then cut, fenced, wrapped in prose, given stray commas or spliced with noise."""
    text = json.dumps(draw(json_values))
    how = draw(st.sampled_from(["cut", "fence", "prose", "comma", "splice", "raw"]))
    if how == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if how == "fence":
        return f"```json\n{text}\n```"
    if how == "prose":
        return f"{draw(st.text(max_size=30))}{text}{draw(st.text(max_size=30))}"
    if how == "comma":
        i = draw(st.integers(0, len(text)))
        return text[:i] + "," + text[i:]
    if how == "splice":
        i = draw(st.integers(0, len(text)))
        return text[:i] + draw(st.text(alphabet='{}[]":,\\ntrue0.-e', max_size=10)) + text[i:]
    return draw(st.text(max_size=60))


def _check(text: str) -> Call:
    call = Call(feature="f", messages=[])
    call.completion = Completion(
        choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        model="m",
    )
    try:
        asyncio.run(SchemaStage(SCHEMA).run(call))
    except OutputRejected:
        assert call.blocked_by is not None and call.blocked_by.action is Action.BLOCK
        assert call.output is None
    return call


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_json())
@example('{"name": "x", "score": NaN}')
@example("```\n```")
@example('{"name": "\\ud800"')
def test_random_broken_json_is_repaired_or_refused_never_crashes(text: str) -> None:
    try:
        parsed = parse(text, repair=True)
    except NotJSON:
        parsed = None
    if parsed is not None:
        json.dumps(parsed.value)  # whatever repair returns is plain JSON data
    call = _check(text)
    if call.blocked_by is None:
        # Passed: the output is valid and the text sent on is exactly that output.
        assert SCHEMA.errors(call.output) == []
        assert json.loads(call.text) == call.output


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_valid_json_parses_unchanged_without_repair(value: Any) -> None:
    text = json.dumps(value)
    parsed = parse(text, repair=True)
    assert parsed.value == value and parsed.repair is None


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_any_text_at_all_never_crashes(text: str) -> None:
    _check(text)
