"""Declared tools through a real ``keel serve`` and the fake upstream, with the official openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from keel.testing import FakeUpstream
from tests.gateway import Gateway
from tests.server.conftest import ledger_rows
from tests.server.test_gateway_keys import keel

pytestmark = pytest.mark.integration

CONFIG = """\
models:
  - {name: up, provider: openai, base_url: "@URL@"}
features:
  - name: agent
    model: up
    tools:
      - name: get_weather
        parameters: {type: object, properties: {city: {type: string}}, required: [city]}
      - name: pick_city
        parameters: {type: object, properties: {city: {enum: [Paris, Oslo]}}, required: [city]}
      - name: send_email
        side_effects: true
        confirm: true
        parameters:
          type: object
          properties: {to: {type: string, format: email}, body: {type: string}}
          required: [to, body]
  - {name: plain, model: up}
storage: {path: ledger.db}
ledger: {flush_interval: 0.05}
"""
HI: Any = [{"role": "user", "content": "Do it."}]


def tool(name: str, properties: dict[str, Any]) -> Any:
    """A tool as the app offers it (the fake upstream calls it with arguments made from this schema)."""
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


WEATHER = tool("get_weather", {"city": {"type": "string"}})
LOOSE_PICK = tool("pick_city", {"city": {"type": "string"}})  # the declared schema allows Paris or Oslo only
EMAIL = tool("send_email", {"to": {"type": "string", "format": "email"}, "body": {"type": "string"}})


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, FakeUpstream, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("tools-gw")
    with FakeUpstream() as fake:
        config = tmp / "keel.yaml"
        config.write_text(CONFIG.replace("@URL@", fake.base_url))
        keys = {name: keel(config, "create", "--name", name) for name in ("alice", "bob")}
        with Gateway(config) as gw:
            yield gw, fake, keys


def sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def upstream_requests(fake: FakeUpstream) -> int:
    return int(fake.stats()["requests"])


def test_a_valid_call_to_a_declared_tool_comes_back(
    served: tuple[Gateway, FakeUpstream, dict[str, str]],
) -> None:
    gw, _, keys = served
    with sdk(gw, keys["alice"]) as c:
        out = c.chat.completions.create(model="agent", messages=HI, tools=[WEATHER])
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather" and isinstance(
        json.loads(call.function.arguments)["city"], str
    )


def test_arguments_that_fail_the_declared_schema_are_refused_and_recorded(
    served: tuple[Gateway, FakeUpstream, dict[str, str]],
) -> None:
    gw, _, keys = served
    with sdk(gw, keys["alice"]) as c, pytest.raises(openai.APIStatusError) as refused:
        c.chat.completions.create(model="agent", messages=HI, tools=[LOOSE_PICK])
    assert refused.value.status_code == 502 and refused.value.code == "tool_refused"
    assert "pick_city: arguments fail the schema at city: enum" in refused.value.message
    call_id = refused.value.response.headers["x-keel-call-id"]
    (row,) = [r for r in ledger_rows(gw, call_id) if r["id"] == call_id]
    reasons = [v["reason"] for v in json.loads(row["verdicts"])]
    assert reasons == ["tool.invalid_arguments", "tool.refused"] and row["status"] == "blocked"


def test_offering_an_undeclared_tool_is_a_400_and_the_upstream_is_not_asked(
    served: tuple[Gateway, FakeUpstream, dict[str, str]],
) -> None:
    gw, fake, keys = served
    before = upstream_requests(fake)
    with sdk(gw, keys["alice"]) as c, pytest.raises(openai.BadRequestError) as refused:
        c.chat.completions.create(
            model="agent", messages=HI, tools=[WEATHER, tool("run_shell", {"cmd": {"type": "string"}})]
        )
    assert (
        refused.value.code == "tool_undeclared"
        and "tool 'run_shell' is not declared" in refused.value.message
    )
    assert upstream_requests(fake) == before


def test_a_side_effecting_call_waits_for_the_callers_confirmation(
    served: tuple[Gateway, FakeUpstream, dict[str, str]],
) -> None:
    gw, fake, keys = served
    with sdk(gw, keys["alice"]) as alice, sdk(gw, keys["bob"]) as bob:
        first = alice.chat.completions.create(model="agent", messages=HI, tools=[EMAIL])
        assert first.choices[0].finish_reason == "stop" and not first.choices[0].message.tool_calls
        pending = (first.model_extra or {})["keel"]["pending_confirmation"]
        (held,) = pending["tool_calls"]
        assert held["function"]["name"] == "send_email" and pending["id"] in (
            first.choices[0].message.content or ""
        )
        asked = upstream_requests(fake)

        confirm = {"keel": {"confirm": pending["id"]}}
        with pytest.raises(openai.BadRequestError) as stolen:
            bob.chat.completions.create(model="agent", messages=HI, tools=[EMAIL], extra_body=confirm)
        assert stolen.value.code == "tool_confirmation_invalid"

        released = alice.chat.completions.create(
            model="agent", messages=HI, tools=[EMAIL], extra_body=confirm
        )
        (call,) = released.choices[0].message.tool_calls or []
        assert call.type == "function"
        assert released.choices[0].finish_reason == "tool_calls"
        assert call.id == held["id"] and call.function.arguments == held["function"]["arguments"]
        assert upstream_requests(fake) == asked  # confirming never asks the model again

        with pytest.raises(openai.BadRequestError) as reused:
            alice.chat.completions.create(model="agent", messages=HI, tools=[EMAIL], extra_body=confirm)
        assert reused.value.code == "tool_confirmation_invalid"


def test_a_stream_with_a_held_call_ends_with_the_pending_confirmation(
    served: tuple[Gateway, FakeUpstream, dict[str, str]],
) -> None:
    gw, _, keys = served
    with sdk(gw, keys["alice"]) as c:
        chunks = list(c.chat.completions.create(model="agent", messages=HI, tools=[EMAIL], stream=True))
    assert not any(ch.choices and ch.choices[0].delta.tool_calls for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    pending = [(ch.model_extra or {}).get("keel", {}).get("pending_confirmation") for ch in chunks]
    found = [p for p in pending if p]
    assert len(found) == 1 and found[0]["id"] in text
    with sdk(gw, keys["alice"]) as c:
        confirm = {"keel": {"confirm": found[0]["id"]}}
        released = list(
            c.chat.completions.create(
                model="agent", messages=HI, tools=[EMAIL], stream=True, extra_body=confirm
            )
        )
    deltas = [tc for ch in released if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
    (held,) = found[0]["tool_calls"]
    assert [d.id for d in deltas] == [held["id"]]
    assert deltas[0].function and deltas[0].function.arguments == held["function"]["arguments"]
    assert [ch.choices[0].finish_reason for ch in released if ch.choices][-1] == "tool_calls"


def test_a_streamed_call_to_a_declared_tool_comes_back_whole(
    served: tuple[Gateway, FakeUpstream, dict[str, str]],
) -> None:
    gw, _, keys = served
    with sdk(gw, keys["alice"]) as c:
        chunks = list(c.chat.completions.create(model="agent", messages=HI, tools=[WEATHER], stream=True))
    deltas = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
    assert {d.function.name for d in deltas if d.function and d.function.name} == {"get_weather"}
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert isinstance(json.loads(arguments)["city"], str)
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"


def ask_for_weather(c: openai.OpenAI, *, stream: bool) -> None:
    """One request offering get_weather (a held stream is refused before its first byte, with a status)."""
    if stream:
        list(c.chat.completions.create(model="agent", messages=HI, tools=[WEATHER], stream=True))
    else:
        c.chat.completions.create(model="agent", messages=HI, tools=[WEATHER])


@pytest.mark.parametrize("stream", [False, True])
def test_a_call_to_a_tool_the_model_was_never_given_is_refused_and_never_passed_on(
    served: tuple[Gateway, FakeUpstream, dict[str, str]], stream: bool
) -> None:
    gw, fake, keys = served
    fake.configure(rogue_tool="delete_account")  # the upstream model strays from the tools it was offered
    try:
        with sdk(gw, keys["alice"]) as c, pytest.raises(openai.APIStatusError) as refused:
            ask_for_weather(c, stream=stream)
    finally:
        fake.configure(rogue_tool=None)
    assert refused.value.status_code == 502 and refused.value.code == "tool_refused"
    assert (
        "'delete_account' is not declared for" not in refused.value.message
    )  # the answer's check, not input's
    assert "'delete_account' is not declared (declared: get_weather, pick_city, send_email)" in (
        refused.value.message
    )
    call_id = refused.value.response.headers["x-keel-call-id"]
    (row,) = [r for r in ledger_rows(gw, call_id) if r["id"] == call_id]
    reasons = [v["reason"] for v in json.loads(row["verdicts"])]
    assert reasons == ["tool.undeclared", "tool.refused"] and row["status"] == "blocked"


def test_the_model_list_says_which_tools_a_feature_declares_and_which_need_confirming(
    served: tuple[Gateway, FakeUpstream, dict[str, str]],
) -> None:
    gw, _, keys = served
    with sdk(gw, keys["alice"]) as c:
        agent = c.models.retrieve("agent")
    tools = {t["name"]: t for t in (agent.model_extra or {})["keel"]["tools"]}
    assert list(tools) == ["get_weather", "pick_city", "send_email"]
    assert tools["send_email"]["side_effects"] and tools["send_email"]["confirm"]
    assert not tools["get_weather"]["side_effects"] and not tools["get_weather"]["confirm"]
    assert tools["pick_city"]["parameters"]["properties"]["city"] == {"enum": ["Paris", "Oslo"]}


def test_a_confirmation_sent_to_a_feature_without_such_tools_is_refused_not_answered(
    served: tuple[Gateway, FakeUpstream, dict[str, str]],
) -> None:
    gw, fake, keys = served
    before = upstream_requests(fake)
    with sdk(gw, keys["alice"]) as c, pytest.raises(openai.BadRequestError) as refused:
        c.chat.completions.create(model="plain", messages=HI, extra_body={"keel": {"confirm": "tcf_x"}})
    assert refused.value.code == "tool_confirmation_invalid"
    assert "feature 'plain' has no tools that need confirmation" in refused.value.message
    assert upstream_requests(fake) == before
