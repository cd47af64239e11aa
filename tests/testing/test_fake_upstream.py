"""``keel.testing.FakeUpstream`` answers like OpenAI: driven by the official SDK and by plain HTTP."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import jsonschema
import openai
import pytest
from upstream_client import BOOKING, TIME, USER, WEATHER, chat, http, sse

from keel.llm.tokens import count_messages, count_tokens
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration


# -- answers -----------------------------------------------------------------------------------


def test_the_answer_echoes_the_last_user_message_with_realistic_usage(client: openai.OpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "When does the Oslo office open?"},
    ]
    reply = client.chat.completions.create(model="gpt-test", messages=messages)
    text = reply.choices[0].message.content or ""
    assert "When does the Oslo office open?" in text and "first question" not in text
    assert reply.model == "gpt-test" and reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == count_messages(messages)
    assert reply.usage.completion_tokens == count_tokens(text)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_the_same_request_gets_the_same_content(fake: FakeUpstream) -> None:
    first, second = chat(fake, seed=3).json(), chat(fake, seed=3).json()
    assert first["choices"] == second["choices"] and first["usage"] == second["usage"]
    other = chat(fake, messages=[{"role": "user", "content": "something else entirely"}]).json()
    assert other["choices"][0]["message"]["content"] != first["choices"][0]["message"]["content"]


def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    short = client.chat.completions.create(model="m", messages=USER, max_tokens=4)  # type: ignore[arg-type]
    newer = client.chat.completions.create(model="m", messages=USER, max_completion_tokens=4)  # type: ignore[arg-type]
    text = short.choices[0].message.content or ""
    assert short.choices[0].finish_reason == "length" and newer.choices[0].finish_reason == "length"
    assert text and (full.choices[0].message.content or "").startswith(text)
    assert short.usage is not None and 0 < short.usage.completion_tokens <= 4


def test_n_gives_n_choices_and_stop_cuts_the_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="m", messages=USER, n=3)  # type: ignore[arg-type]
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) == 3
    stopped = client.chat.completions.create(model="m", messages=USER, stop=["Oslo"])  # type: ignore[arg-type]
    text = stopped.choices[0].message.content or ""
    assert "Oslo" not in text and text.startswith("You said:")
    assert stopped.choices[0].finish_reason == "stop"


def test_streaming_adds_up_to_the_plain_answer(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert not chunks[-1].choices and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens  # type: ignore[union-attr]


def test_a_stream_without_include_usage_has_no_usage_chunk(fake: FakeUpstream) -> None:
    events = sse(chat(fake, stream=True))
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1]) and all(e["choices"] for e in events[:-1])


def test_json_schema_output_is_valid_against_the_schema(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=USER,  # type: ignore[arg-type]
        response_format={"type": "json_schema", "json_schema": {"name": "booking", "schema": BOOKING}},
    )
    data = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(data, BOOKING)
    loose = client.chat.completions.create(
        model="m",
        messages=USER,  # type: ignore[arg-type]
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)


def test_tools_get_a_tool_call_with_arguments_from_the_schema(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="m", messages=USER, tools=[WEATHER, TIME])  # type: ignore[arg-type, list-item]
    [call] = reply.choices[0].message.tool_calls or []
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    jsonschema.validate(args, WEATHER["function"]["parameters"])  # type: ignore[index]

    named = client.chat.completions.create(
        model="m",
        messages=USER,  # type: ignore[arg-type]
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert named.choices[0].message.tool_calls[0].function.name == "get_time"  # type: ignore[index, union-attr]
    none = client.chat.completions.create(model="m", messages=USER, tools=[WEATHER], tool_choice="none")  # type: ignore[arg-type, list-item]
    assert none.choices[0].message.content and not none.choices[0].message.tool_calls


def test_a_tool_result_is_answered_with_text_that_mentions_it(client: openai.OpenAI) -> None:
    messages: Any = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees and raining"},
    ]
    reply = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert "12 degrees and raining" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason == "stop"


def test_streamed_tool_calls_send_the_arguments_in_several_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="m", messages=USER, tools=[WEATHER], stream=True)  # type: ignore[arg-type, list-item]
    pieces, name, finish = [], "", None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            name += (tc.function.name or "") if tc.function else ""
            if tc.function and tc.function.arguments:
                pieces.append(tc.function.arguments)
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and finish == "tool_calls" and len(pieces) > 1
    jsonschema.validate(json.loads("".join(pieces)), WEATHER["function"]["parameters"])  # type: ignore[index]


# -- other endpoints ---------------------------------------------------------------------------


def test_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI, fake: FakeUpstream) -> None:
    reply = client.embeddings.create(
        model="emb", input=["hello", "world", "hello"]
    )  # the SDK asks for base64
    a, b, c = (d.embedding for d in reply.data)
    assert len(a) == 384 and a == pytest.approx(c) and a != pytest.approx(b)
    assert math.fsum(x * x for x in a) == pytest.approx(1.0, abs=1e-5)
    raw = http("POST", fake.base_url + "/embeddings", {"input": "hello", "dimensions": 8}).json()
    [vector] = [d["embedding"] for d in raw["data"]]
    assert len(vector) == 8 and math.fsum(x * x for x in vector) == pytest.approx(1.0)
    assert raw["usage"]["prompt_tokens"] == count_tokens("hello")


def test_models_and_health(client: openai.OpenAI, fake: FakeUpstream) -> None:
    assert [m.id for m in client.models.list()] == ["fake-model"]
    assert http("GET", fake.url + "/healthz").status == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/v1/nowhere", {}, 404, "unknown path"),
        ("GET", "/v1/chat/completions", None, 405, "method not allowed"),
        ("POST", "/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("POST", "/v1/chat/completions", {"model": "m"}, 400, "messages"),
        ("POST", "/v1/chat/completions", {"messages": USER, "n": 0}, 400, "n:"),
        ("POST", "/v1/embeddings", {"model": "m"}, 400, "input"),
    ],
)
def test_bad_requests_get_openai_error_json(
    fake: FakeUpstream, method: str, path: str, body: Any, status: int, words: str
) -> None:
    reply = http(method, fake.url + path, body)
    assert reply.status == status
    error = reply.json()["error"]
    assert words in error["message"] and error["type"]


def test_the_last_request_is_recorded_with_headers_and_body(fake: FakeUpstream) -> None:
    chat(fake, {"Authorization": "Bearer sk-test"}, temperature=0.5)
    last = http("GET", fake.url + "/_fake/stats").json()["last_request"]
    assert last["method"] == "POST" and last["path"] == "/v1/chat/completions"
    assert last["headers"]["authorization"] == "Bearer sk-test"
    assert last["body"] == {"messages": USER, "temperature": 0.5}


def test_async_with_serves_from_a_background_thread() -> None:
    async def go() -> str:
        async with (
            FakeUpstream() as fake,
            openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as client,
        ):
            reply = await client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        return reply.choices[0].message.content or ""

    assert "Oslo" in asyncio.run(go())


def test_bad_knobs_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        FakeUpstream(error_rate=1.5)
    with pytest.raises(ValueError, match="error_status"):
        FakeUpstream(error_status=302)
    with pytest.raises(ValueError, match="unknown knob 'latency'"):
        FakeUpstream(latency=3)
    with FakeUpstream() as fake, pytest.raises(ValueError, match="timeout_rate"):
        fake.configure(timeout_rate=-1)


def test_a_stopped_fake_can_start_again_with_its_knobs_and_stats() -> None:
    fake = FakeUpstream(timeout_rate=1.0, hang_ms=20)
    with fake:
        assert chat(fake).status == 504
    with fake:  # a new port, the same knobs; hangs hang again after the shutdown
        assert chat(fake).status == 504
        assert fake.stats()["outcomes"]["timeout"] == 2
