"""A whole completion as stream chunks adds back up to the same answer."""

from __future__ import annotations

import pytest

from keel.call import Completion
from keel.llm.replay import completion_chunks
from keel.llm.stream import StreamAccumulator

pytestmark = pytest.mark.unit


def test_chunks_of_a_completion_add_up_to_it_with_tool_calls_and_keel_fields() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
    ]
    comp = Completion(
        choices=[
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi", "tool_calls": calls},
                "finish_reason": "tool_calls",
            },
            {"index": 1, "message": {"role": "assistant", "content": "second"}, "finish_reason": "stop"},
        ],
        model="m",
        id="chatcmpl-1",
        created=7,
        extra={"keel": {"pending_confirmation": {"id": "tcf_x"}}},
    )
    chunks = completion_chunks(comp)
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    assert acc.completion().choices == comp.choices
    assert [c for c in chunks if "keel" in c] == [chunks[-1]]
    assert all(c["id"] == "chatcmpl-1" and c["object"] == "chat.completion.chunk" for c in chunks)
