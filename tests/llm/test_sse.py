"""Server-sent events decoding: the same events however the bytes are split or lines are ended."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.llm.providers.sse import Event, SSEDecoder

pytestmark = pytest.mark.unit

STREAM = (
    ": keep-alive comment\n\n"
    'data: {"a": 1}\n\n'
    "event: error\n"
    'data: {"error": {"message": "boom"}}\n\n'
    "data: line one\n"
    "data:line two\n"
    "id: 7\n"
    "retry: 1000\n\n"
    "data: caf\u00e9 \u2603\n\n"
    "data: [DONE]\n\n"
)
EVENTS = [
    Event('{"a": 1}'),
    Event('{"error": {"message": "boom"}}', "error"),
    Event("line one\nline two"),
    Event("caf\u00e9 \u2603"),
    Event("[DONE]"),
]


def decode(chunks: list[bytes]) -> list[Event]:
    """Every event the decoder produces from ``chunks``, then from closing it."""
    decoder = SSEDecoder()
    out = [e for chunk in chunks for e in decoder.feed(chunk)]
    return out + decoder.close()


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_ending_gives_the_same_events(newline: str) -> None:
    assert decode([STREAM.replace("\n", newline).encode()]) == EVENTS


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_one_cut_at_every_position_or_one_byte_at_a_time_changes_nothing(newline: str) -> None:
    raw = STREAM.replace("\n", newline).encode()
    for i in range(len(raw) + 1):
        assert decode([raw[:i], raw[i:]]) == EVENTS, f"cut at {i}: {raw[:i][-10:]!r} | {raw[i:][:10]!r}"
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == EVENTS


@settings(max_examples=300, deadline=None, database=None)
@given(st.sampled_from(["\n", "\r\n", "\r"]), st.lists(st.integers(0, 400), max_size=30))
def test_splitting_the_bytes_anywhere_changes_nothing(newline: str, cuts: list[int]) -> None:
    raw = STREAM.replace("\n", newline).encode()
    points = sorted({min(c, len(raw)) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert decode(chunks) == EVENTS


def test_an_unterminated_last_event_is_dispatched_on_close() -> None:
    assert decode([b'data: {"a": 1}\n\ndata: {"b"', b": 2}"]) == [Event('{"a": 1}'), Event('{"b": 2}')]


def test_blank_lines_and_comments_alone_dispatch_nothing() -> None:
    assert decode([b"\n\n: ping\n\n\r\n"]) == []
