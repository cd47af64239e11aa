"""Routing rules: input tokens, patterns in the last user message, tried in order."""

from __future__ import annotations

import pytest
from routing_helpers import request, rule

from keel.call import Message
from keel.llm.providers.base import ModelRequest
from keel.llm.routing import Rules
from keel.llm.tokens import count_messages

pytestmark = pytest.mark.unit


def _never(messages: list[Message]) -> int:
    raise AssertionError("tokens were counted although they were known or not needed")


def test_the_first_rule_that_holds_wins_in_order() -> None:
    rules = Rules(
        [rule("a", pattern="refund"), rule("b", pattern="(?i)invoice"), rule("c", pattern="refund|invoice")],
        _never,
    )
    assert rules.match(request("please refund my invoice")) == 0
    assert rules.match(request("where is my Invoice?")) == 1
    assert rules.match(request("hello")) is None


def test_input_token_bounds_use_the_precounted_tokens_and_are_strict() -> None:
    rules = Rules([rule("big", input_tokens_over=1000), rule("tiny", input_tokens_under=10)], _never)
    assert rules.match(request("x", tokens=1001)) == 0
    assert rules.match(request("x", tokens=1000)) is None  # not over
    assert rules.match(request("x", tokens=9)) == 1
    assert rules.match(request("x", tokens=10)) is None  # not under


def test_tokens_are_counted_offline_when_the_pipeline_did_not_count_them() -> None:
    counted: list[int] = []

    def count(messages: list[Message]) -> int:
        n = count_messages(messages)
        counted.append(n)
        return n

    rules = Rules([rule("long", input_tokens_over=50), rule("short", input_tokens_under=51)], count)
    assert rules.match(request("word " * 80)) == 0
    assert rules.match(request("just a few words")) == 1
    assert len(counted) == 2  # once per request, however many rules ask
    assert counted[0] > 80 > counted[1]


def test_no_tokens_are_counted_when_no_rule_asks_about_them() -> None:
    assert Rules([rule("a", pattern="x")], _never).match(request("xyz")) == 0


def test_every_condition_of_a_rule_must_hold() -> None:
    rules = Rules([rule("code-large", pattern="```", input_tokens_over=100)], _never)
    assert rules.match(request("```print(1)```", tokens=500)) == 0
    assert rules.match(request("```print(1)```", tokens=50)) is None
    assert rules.match(request("no code here", tokens=500)) is None


def test_a_rule_without_conditions_catches_everything() -> None:
    rules = Rules([rule("a", pattern="never-there"), rule("catch-all")], _never)
    assert rules.match(request("anything")) == 1


def test_patterns_are_searched_in_the_last_user_message_only() -> None:
    rules = Rules([rule("a", pattern="SQL")], _never)
    messages: list[Message] = [
        {"role": "system", "content": "You are an SQL expert."},
        {"role": "user", "content": "Write SQL for me"},
        {"role": "assistant", "content": "Sure, which SQL dialect?"},
        {"role": "user", "content": "Postgres please"},
    ]
    assert rules.match(ModelRequest(messages=messages)) is None
    messages.append({"role": "user", "content": "and explain the SQL"})
    assert rules.match(ModelRequest(messages=messages)) == 0


def test_patterns_read_the_text_parts_of_a_multi_part_message() -> None:
    rules = Rules([rule("vision", pattern="diagram")], _never)
    parts: list[Message] = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "Explain this diagram"},
            ],
        }
    ]
    assert rules.match(ModelRequest(messages=parts)) == 0
