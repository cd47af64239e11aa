"""Declared tools through a real Pipeline: refused tool calls never reach the caller, and are recorded."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from typing import Any

import orjson
import pytest

from keel import Call, Pipeline, Settings
from keel.call import Action, Result
from keel.errors import ConfigError, InputRejected, InvalidRequest, OutputRejected
from keel.llm.providers.base import Chunk, ModelRequest
from keel.llm.replay import completion_chunks
from keel.llm.stream import StreamAccumulator
from keel.stores.memory import MemoryState
from keel.testing.scripted import Reply, ScriptedProvider
from keel.validate.tool_confirm import Confirmations, confirm, pending_confirmation

pytestmark = pytest.mark.unit

CONFIG = """\
models:
  - {name: m, provider: scripted}
features:
  - name: agent
    model: m
    tools:
      - name: get_weather
        description: Weather for a city
        parameters:
          type: object
          properties: {city: {type: string, minLength: 2}}
          required: [city]
          additionalProperties: false
      - name: send_email
        side_effects: true
        confirm: true
        parameters:
          type: object
          properties: {to: {type: string}, body: {type: string}}
          required: [to, body]
  - {name: free, model: m}
  - name: ops
    model: m
    tools:
      - {name: status, parameters: {type: object}}
      - {name: restart_service, side_effects: true, parameters: {type: object}}
storage: {path: keel.db}
ledger: {flush_interval: 0.05}
"""
MakeSettings = Callable[..., Settings]
SECRET_ARG = "card 4111-1111-1111-1111"  # an argument value that must never be recorded
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
EMAIL = {"type": "function", "function": {"name": "send_email", "parameters": {"type": "object"}}}


def tool_call(name: str, arguments: Any, id_: str = "call_1") -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


def answer(*calls: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


def make_call(feature: str = "agent", *, key: str | None = "alice", **params: Any) -> Call:
    params.setdefault("tools", [WEATHER, EMAIL])
    return Call(feature=feature, messages=[{"role": "user", "content": "help"}], key_id=key, params=params)


def run(
    settings: Settings, replies: list[Reply], fn: Callable[[Pipeline], Awaitable[Any]]
) -> tuple[Any, ScriptedProvider]:
    provider = ScriptedProvider("m", replies)

    async def go() -> Any:
        async with Pipeline(settings, providers={"m": provider}) as p:
            return await fn(p)

    return asyncio.run(go()), provider


def ask(settings: Settings, reply: Reply, call: Call | None = None) -> tuple[Result, Call]:
    call = call or make_call()
    result, _ = run(settings, [reply], lambda p: p.run(call))
    return result, call


def tool_verdicts(verdicts: Any) -> list[tuple[str, Action]]:
    return [(v.reason, v.action) for v in verdicts if v.reason.startswith("tool.")]


def test_a_valid_declared_tool_call_passes_untouched(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    call_ = tool_call("get_weather", {"city": "Oslo"})
    result, _ = ask(s, answer(call_))
    assert result.message["tool_calls"] == [call_]
    assert result.completion is not None and result.completion.finish_reason == "tool_calls"
    assert tool_verdicts(result.verdicts) == []


def test_an_undeclared_tool_call_is_removed_and_recorded_while_the_valid_one_stays(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    good = tool_call("get_weather", {"city": "Oslo"}, "call_good")
    result, _ = ask(s, answer(tool_call("delete_account", {"id": 7}, "call_bad"), good))
    assert result.message["tool_calls"] == [good]
    (verdict,) = [v for v in result.verdicts if v.reason == "tool.undeclared"]
    assert verdict.action is Action.MODIFY and verdict.stage == "validation.tools"
    assert "'delete_account' is not declared" in (verdict.detail or "")


@pytest.mark.parametrize(
    ("arguments", "where"),
    [
        ('{"city": "Oslo"', "not valid JSON"),
        ({"town": SECRET_ARG}, "at (root): required"),
        ({"city": "Oslo", "note": SECRET_ARG}, "at (root): additionalProperties"),
        ({"city": "O"}, "at city: minLength"),
    ],
)
def test_a_call_whose_arguments_fail_the_schema_is_removed_and_the_text_answer_kept(
    make_settings: MakeSettings, arguments: Any, where: str
) -> None:
    s = make_settings(CONFIG)
    result, call = ask(s, answer(tool_call("get_weather", arguments), content="Let me look that up."))
    assert "tool_calls" not in result.message and result.text == "Let me look that up."
    assert result.completion is not None and result.completion.finish_reason == "stop"
    (verdict,) = [v for v in result.verdicts if v.reason == "tool.invalid_arguments"]
    assert where in (verdict.detail or "") and SECRET_ARG not in (verdict.detail or "")
    rows = _ledger(s, call.id)
    assert "tool.invalid_arguments" in rows[0]["verdicts"] and SECRET_ARG not in json.dumps(rows)


def test_an_answer_with_nothing_valid_left_fails_with_502_and_is_recorded_as_blocked(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    call = make_call()
    with pytest.raises(OutputRejected) as refused:
        ask(s, answer(tool_call("rm_rf", "{}"), tool_call("get_weather", "not json", "c2")), call)
    assert refused.value.status == 502 and refused.value.code == "tool_refused"
    assert "'rm_rf' is not declared" in refused.value.message
    assert call.blocked_by is not None and call.blocked_by.reason == "tool.refused"
    assert tool_verdicts(call.verdicts) == [
        ("tool.undeclared", Action.MODIFY),
        ("tool.invalid_arguments", Action.MODIFY),
        ("tool.refused", Action.BLOCK),
    ]
    (row,) = _ledger(s, call.id)
    assert row["status"] == "blocked" and row["http_status"] == 502


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"tools": [WEATHER, {"type": "function", "function": {"name": "shell"}}]},
            "tool 'shell' is not declared",
        ),
        ({"tool_choice": {"type": "function", "function": {"name": "shell"}}}, "tool_choice: tool 'shell'"),
        ({"tools": [{"type": "web_search"}]}, "only function tools"),
        ({"functions": [{"name": "get_weather"}]}, "legacy 'functions'"),
        ({"n": 2}, "n > 1 cannot be used with tools that need confirmation"),
    ],
)
def test_a_request_offering_an_undeclared_tool_is_refused_before_the_model_is_asked(
    make_settings: MakeSettings, params: dict[str, Any], message: str
) -> None:
    s = make_settings(CONFIG)
    call = make_call(**params)
    provider = ScriptedProvider("m", ["never"])

    async def go() -> None:
        async with Pipeline(s, providers={"m": provider}) as p:
            await p.run(call)

    with pytest.raises(InputRejected, match=message) as refused:
        asyncio.run(go())
    assert refused.value.status == 400 and refused.value.code == "tool_undeclared"
    assert provider.requests == [] and call.blocked_by is not None


def test_a_feature_without_declared_tools_passes_tool_calls_through_unchecked(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    anything = tool_call("whatever", "not even json")
    result, _ = ask(
        s, answer(anything), make_call("free", tools=[{"type": "function", "function": {"name": "x"}}])
    )
    assert result.message["tool_calls"] == [anything]


def test_a_side_effecting_call_without_confirmation_is_passed_on_and_flagged_in_the_ledger(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    restart, status = tool_call("restart_service", {}, "call_r"), tool_call("status", {}, "call_s")
    tools = [{"type": "function", "function": {"name": n}} for n in ("status", "restart_service")]
    result, call = ask(s, answer(status, restart), make_call("ops", tools=tools))
    assert result.message["tool_calls"] == [status, restart]
    assert tool_verdicts(result.verdicts) == [("tool.side_effect", Action.FLAG)]
    (flag,) = [v for v in result.verdicts if v.reason == "tool.side_effect"]
    assert flag.detail == "restart_service id=call_r"
    (row,) = _ledger(s, call.id)
    assert row["status"] == "ok" and "tool.side_effect" in row["verdicts"]


def test_a_side_effecting_call_is_held_until_confirmed_then_released_exactly_once(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    held = tool_call("send_email", {"to": "bob@example.com", "body": "hi"})

    async def go(p: Pipeline) -> tuple[Result, Result, Call, Call, Exception, Exception]:
        first = await p.run(make_call())
        pending = pending_confirmation(first.completion)
        assert pending is not None
        confirmed = await p.run(confirm(make_call(), pending["id"]))
        again = confirm(make_call(), pending["id"])
        with pytest.raises(InvalidRequest) as reused:
            await p.run(again)
        other = await p.run(make_call())
        pending_other = pending_confirmation(other.completion)
        assert pending_other is not None
        thief = confirm(make_call(key="mallory"), pending_other["id"])
        with pytest.raises(InvalidRequest) as stolen:
            await p.run(thief)
        return first, confirmed, again, thief, reused.value, stolen.value

    (first, confirmed, again, thief, reused, stolen), provider = run(s, [answer(held)], go)
    pending = pending_confirmation(first.completion)
    assert pending is not None and pending["tool_calls"] == [held] and pending["id"].startswith("tcf_")
    assert "tool_calls" not in first.message and "send_email" in first.text and pending["id"] in first.text
    assert first.completion is not None and first.completion.finish_reason == "stop"
    (asked,) = [v for v in first.verdicts if v.reason == "tool.confirmation_required"]
    assert f"sha256={pending['sha256'][:16]}" in (asked.detail or "")

    assert confirmed.message["tool_calls"] == [held] and pending_confirmation(confirmed.completion) is None
    assert confirmed.completion is not None and confirmed.completion.finish_reason == "tool_calls"
    (released,) = [v for v in confirmed.verdicts if v.reason == "tool.confirmed"]
    assert f"sha256={pending['sha256'][:16]}" in (released.detail or "")
    assert confirmed.usage.cost_usd == 0
    assert len(provider.requests) == 2  # the first call and `other`; confirming never asks the model

    for err, call in ((reused, again), (stolen, thief)):
        assert (
            isinstance(err, InvalidRequest) and err.code == "tool_confirmation_invalid" and err.status == 400
        )
        assert call.blocked_by is not None and call.blocked_by.reason == "tool.confirmation_invalid"


def test_a_confirmation_expires(make_settings: MakeSettings) -> None:
    class Clock:
        now = 1_800_000_000.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    confirmations = Confirmations(MemoryState(clock=clock), ttl=60, clock=clock)
    call = make_call()

    async def go() -> tuple[Any, Any]:
        early = await confirmations.hold(call, [tool_call("send_email", "{}")])
        late = await confirmations.hold(call, [tool_call("send_email", "{}")])
        clock.now += 30
        ok = await confirmations.claim(early["id"], call)
        clock.now += 31
        return ok, await confirmations.claim(late["id"], call)

    ok, expired = asyncio.run(go())
    assert ok is not None and expired is None


class StreamsToolCalls(ScriptedProvider):
    """A scripted provider whose streams carry tool calls too (the plain one streams text only)."""

    streamed = False

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        for chunk in completion_chunks(self._next(request)):
            self.streamed = self.streamed or "delete_account" in orjson.dumps(chunk).decode()
            yield chunk


def test_a_held_stream_sends_the_checked_answer_never_the_refused_call(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    reply = answer(tool_call("delete_account", {}), tool_call("get_weather", {"city": "Oslo"}, "c2"))

    async def go(p: Pipeline) -> tuple[list[dict[str, Any]], Call]:
        call = make_call()
        return [chunk async for chunk in await p.open_stream(call)], call

    provider = StreamsToolCalls("m", [reply])

    async def main() -> tuple[list[dict[str, Any]], Call]:
        async with Pipeline(s, providers={"m": provider}) as p:
            return await go(p)

    chunks, call = asyncio.run(main())
    assert provider.streamed and b"delete_account" not in orjson.dumps(chunks)
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    (sent,) = acc.completion().message["tool_calls"]
    assert sent["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert [v.reason for v in call.verdicts if v.reason.startswith("tool.")] == ["tool.undeclared"]


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ("[{name: t, parameters: {type: objekt}}]", "features[0].tools[0].parameters: invalid JSON schema"),
        ("[{name: t}, {name: t}]", "features[0].tools[1].name: duplicate tool 't'"),
    ],
)
def test_bad_tool_declarations_stop_the_pipeline_at_load(
    make_settings: MakeSettings, tools: str, message: str
) -> None:
    s = make_settings(
        f"models: [{{name: m, provider: scripted}}]\nfeatures: [{{name: f, model: m, tools: {tools}}}]\n"
    )
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Pipeline(s, providers={"m": ScriptedProvider("m")}, ledger=False)


def _ledger(settings: Settings, call_id: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(settings.db_path)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM calls WHERE id = ?", (call_id,))]
