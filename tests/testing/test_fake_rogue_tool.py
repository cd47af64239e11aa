"""The fake upstream's ``rogue_tool`` knob: a model that calls a tool it was never offered."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion
from tests.gateway import KEEL
from upstream_client import WEATHER

from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

HI: Any = [{"role": "user", "content": "What is the weather in Oslo?"}]


def called(reply: ChatCompletion) -> list[str]:
    """The names of the tools an answer calls."""
    return [tc.function.name for tc in reply.choices[0].message.tool_calls or [] if tc.type == "function"]


def test_a_request_offering_tools_gets_a_call_to_the_rogue_tool_plain_and_streamed() -> None:
    with (
        FakeUpstream(rogue_tool="delete_account") as fake,
        openai.OpenAI(base_url=fake.base_url, api_key="unused", max_retries=0) as c,
    ):
        plain = c.chat.completions.create(model="m", messages=HI, tools=[WEATHER])
        chunks = list(c.chat.completions.create(model="m", messages=HI, tools=[WEATHER], stream=True))
        text = c.chat.completions.create(model="m", messages=HI)  # no tools offered: a text answer
    assert called(plain) == ["delete_account"] and plain.choices[0].finish_reason == "tool_calls"
    (call,) = plain.choices[0].message.tool_calls or []
    assert call.type == "function" and json.loads(call.function.arguments) == {}
    names = [
        tc.function.name
        for ch in chunks
        if ch.choices
        for tc in ch.choices[0].delta.tool_calls or []
        if tc.function and tc.function.name
    ]
    assert names == ["delete_account"]
    assert text.choices[0].message.content and not text.choices[0].message.tool_calls


def test_the_knob_is_changed_and_cleared_while_running() -> None:
    with FakeUpstream() as fake, openai.OpenAI(base_url=fake.base_url, api_key="unused", max_retries=0) as c:
        assert fake.configure(rogue_tool="rm").rogue_tool == "rm"
        strayed = c.chat.completions.create(model="m", messages=HI, tools=[WEATHER])
        assert fake.configure(rogue_tool=None).rogue_tool is None
        faithful = c.chat.completions.create(model="m", messages=HI, tools=[WEATHER])
    assert called(strayed) == ["rm"] and called(faithful) == ["get_weather"]


def test_the_command_takes_the_knob_as_a_flag() -> None:
    proc = subprocess.Popen(
        [KEEL, "fake-upstream", "--port", "0", "--rogue-tool", "wire_money"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", proc.stderr.readline())
        assert match is not None
        with openai.OpenAI(base_url=match.group(1), api_key="unused", max_retries=0) as c:
            reply = c.chat.completions.create(model="m", messages=HI, tools=[WEATHER])
        assert called(reply) == ["wire_money"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
