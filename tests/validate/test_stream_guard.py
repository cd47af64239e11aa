"""The stream guard on raw chunks: held text, tool-call arguments, choices, the end of a stream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keel.call import Call
from keel.input.secrets import SecretDetector
from keel.validate.leakage import LeakageStage, Scanner
from keel.validate.stream_guard import guard_for

pytestmark = pytest.mark.unit

EMAIL = 'jane."roe"@example.org'  # a quote, so that JSON escaping shows


def _chunk(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def _call(vault: dict[str, str] | None = None) -> Call:
    call = Call(feature="f", messages=[])
    call.vault.update(vault or {})
    return call


def test_tool_call_arguments_are_restored_as_json_even_when_a_placeholder_is_split() -> None:
    guard = guard_for(_call({"<EMAIL_1>": EMAIL}), None, live=True)
    assert guard is not None
    pieces = ['{"to": "<EM', 'AIL_1>", "cc": "<EMAIL', "_1>", '"}']
    out = []
    for i, piece in enumerate(pieces):
        tc = {"index": 0, "function": {"arguments": piece}}
        chunk = guard.apply(_chunk(tool_calls=[tc], finish="tool_calls" if i == len(pieces) - 1 else None))
        out += [t["function"]["arguments"] for t in chunk["choices"][0]["delta"]["tool_calls"]]
    assert json.loads("".join(out)) == {"to": EMAIL, "cc": EMAIL}


def test_each_choice_has_its_own_hold_and_the_finishing_chunk_carries_the_rest() -> None:
    guard = guard_for(_call({"<PHONE_1>": "+1 415 555 0132"}), None, live=True)
    assert guard is not None
    a = guard.apply(_chunk(0, content="call <PHO"))["choices"][0]["delta"]["content"]
    b = guard.apply(_chunk(1, content="write <PHO"))["choices"][0]["delta"]["content"]
    assert (a, b) == ("call ", "write ")
    a2 = guard.apply(_chunk(0, finish="stop", content="NE_1>"))["choices"][0]["delta"]["content"]
    assert a2 == "+1 415 555 0132"
    tail = guard.finish(_chunk(1))  # choice 1 never finished: what it held comes in a last chunk
    assert tail is not None and tail["choices"] == [
        {"index": 1, "delta": {"content": "<PHO"}, "finish_reason": None}
    ]


def test_nothing_to_guard_means_no_guard() -> None:
    assert guard_for(_call(), None, live=True) is None
    stage = LeakageStage(None, None, [Scanner("secret", "redact", SecretDetector().find)], live=True)
    assert guard_for(_call(), stage, live=True) is not None
