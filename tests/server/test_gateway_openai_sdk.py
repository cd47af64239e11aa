"""The official OpenAI SDK against a real ``keel serve`` over a real ``keel fake-upstream``."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.gateway import Gateway, http
from tests.server.conftest import KEY_ADMIN, KEY_ALL, KEY_EXTRACT, WEATHER_TOOL, ledger_rows

pytestmark = pytest.mark.integration


def test_plain_completion_through_the_sdk_is_recorded_in_the_ledger(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="support", messages=[{"role": "user", "content": "Where is my parcel?"}], max_tokens=50
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert raw.headers["x-keel-feature"] == "support"
    assert raw.headers["x-keel-model"] == "upstream"
    version = raw.headers["x-keel-prompt-version"]
    assert len(version) == 12

    call_id = raw.headers["x-keel-call-id"]
    row = next(r for r in ledger_rows(gateway, call_id) if r["id"] == call_id)
    assert row["feature"] == "support" and row["model"] == "upstream" and row["status"] == "ok"
    assert row["key_id"] == "all" and row["prompt_name"] == "support" and row["prompt_version"] == version
    assert row["input_tokens"] == reply.usage.prompt_tokens
    assert row["output_tokens"] == reply.usage.completion_tokens
    expected = (reply.usage.prompt_tokens * 0.15 + reply.usage.completion_tokens * 0.60) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)
    assert row["tokens_estimated"] == 0
    assert KEY_ALL not in json.dumps(row)


def test_the_upstream_sees_the_rendered_prompt_and_the_configured_key(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    client.chat.completions.create(model="support", messages=[{"role": "user", "content": "hello"}])
    seen = gateway.fake.stats()["last_request"]  # type: ignore[attr-defined]
    assert seen["body"]["model"] == "gpt-4o-mini"
    system = seen["body"]["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are the support bot of Acme.")
    assert "<!-- keel-canary-" in system["content"]  # output.canary is on by default
    assert seen["headers"]["authorization"] == "Bearer upstream-secret"


def test_streaming_through_the_sdk_matches_the_plain_answer(gateway: Gateway, client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Tell me about shipping times"}]
    plain = client.chat.completions.create(model="support", messages=messages, temperature=0)
    stream = client.chat.completions.create(
        model="support", messages=messages, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_stream_without_include_usage_sends_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert chunks and all(c.choices for c in chunks)


def test_tool_calls_pass_through_plain_and_streaming(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Weather in Oslo?"}]
    reply = client.chat.completions.create(model="support", messages=messages, tools=[WEATHER_TOOL])
    [call] = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert reply.choices[0].finish_reason == "tool_calls"

    stream = client.chat.completions.create(
        model="support", messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    name, args = "", ""
    for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += (tc.function.name or "") if tc.function else ""
            args += (tc.function.arguments or "") if tc.function else ""
    assert name == "get_weather" and "city" in json.loads(args)

    follow: Any = [
        *messages,
        reply.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "12°C and raining"},
    ]
    answer = client.chat.completions.create(model="support", messages=follow, tools=[WEATHER_TOOL])
    assert answer.choices[0].message.content


def test_response_format_passes_through_and_schema_output_validates(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="extract", messages=[{"role": "user", "content": "Two nights in Rome"}]
    )
    reply = raw.parse()
    data = json.loads(reply.choices[0].message.content or "")
    assert isinstance(data["city"], str) and data["nights"] >= 1
    sent = gateway.fake.stats()["last_request"]["body"]  # type: ignore[attr-defined]
    assert sent["response_format"]["type"] == "json_schema"


def test_feature_can_be_chosen_by_header(gateway: Gateway) -> None:
    with openai.OpenAI(
        base_url=gateway.base_url,
        api_key=KEY_ALL,
        max_retries=0,
        default_headers={"X-Keel-Feature": "support"},
    ) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert raw.headers["x-keel-feature"] == "support"


def test_tokens_are_counted_when_the_upstream_reports_none(gateway: Gateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="counted", messages=[{"role": "user", "content": "count my tokens please"}]
    )
    reply = raw.parse()
    assert reply.usage is not None and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    call_id = raw.headers["x-keel-call-id"]
    row = next(r for r in ledger_rows(gateway, call_id) if r["id"] == call_id)
    assert row["tokens_estimated"] == 1 and row["input_tokens"] == reply.usage.prompt_tokens


def test_models_lists_the_features_a_key_may_use(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=gateway.base_url, api_key=KEY_ALL) as c:
        assert sorted(m.id for m in c.models.list()) == ["counted", "extract", "flaky", "support"]
    with openai.OpenAI(base_url=gateway.base_url, api_key=KEY_EXTRACT) as c:
        assert [m.id for m in c.models.list()] == ["extract"]
        assert c.models.retrieve("extract").id == "extract"


def test_healthz_reports_features_without_secrets(gateway: Gateway) -> None:
    reply = http("GET", gateway.url + "/healthz")
    assert reply.status == 200
    body = reply.json()
    assert body["status"] == "ok" and body["features"] == ["counted", "extract", "flaky", "support"]
    assert "upstream-secret" not in reply.body.decode()


def test_metrics_count_calls_and_show_circuits_to_an_admin_key(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    client.chat.completions.create(model="support", messages=[{"role": "user", "content": "count me"}])
    assert http("GET", gateway.url + "/metrics").status == 401
    assert http("GET", gateway.url + "/metrics", headers={"authorization": f"Bearer {KEY_ALL}"}).status == 403
    reply = http("GET", gateway.url + "/metrics", headers={"authorization": f"Bearer {KEY_ADMIN}"})
    assert reply.status == 200
    text = reply.body.decode()
    calls = [line for line in text.splitlines() if line.startswith('keel_calls_total{feature="support"')]
    assert calls and float(calls[0].rsplit(" ", 1)[1]) >= 1
    assert 'keel_circuit_state{deployment="upstream",model="upstream"} 0.0' in text
    assert "keel_call_duration_seconds_bucket" in text
