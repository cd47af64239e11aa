"""The OpenAI-compatible provider over real HTTP against ``FakeUpstream``: answers, pool, config."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator

import jsonschema
import pytest
from openai_helpers import (
    HELLO,
    KEY,
    TRIP,
    WEATHER,
    collect,
    eventually,
    make,
    run,
    text_of,
)

from keel.call import Completion
from keel.config import parse_config
from keel.errors import (
    ConfigError,
)
from keel.llm.providers import provider_class
from keel.llm.providers.base import Chunk, ModelRequest
from keel.llm.providers.openai import OpenAIProvider
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


# -- answers -----------------------------------------------------------------------------------


def test_complete_returns_the_upstreams_answer_and_usage(fake: FakeUpstream) -> None:
    completion = run(make(fake.base_url, model="gpt-test"), lambda p: p.complete(ModelRequest(HELLO)))
    assert "Where is my parcel number 1234?" in completion.text
    assert completion.model == "gpt-test" and completion.finish_reason == "stop"
    assert completion.id and completion.id.startswith("chatcmpl-") and completion.created
    assert completion.usage is not None and completion.usage.input_tokens > 0
    assert completion.usage.output_tokens > 0 and not completion.usage.estimated
    assert completion.extra["object"] == "chat.completion" and "choices" not in completion.extra


def test_stream_yields_the_same_text_and_a_final_usage_chunk(fake: FakeUpstream) -> None:
    async def both(p: OpenAIProvider) -> tuple[Completion, list[Chunk]]:
        plain = await p.complete(ModelRequest(HELLO))
        request = ModelRequest(HELLO, params={"stream_options": {"include_usage": False, "x_keep": 1}})
        return plain, await collect(p, request)

    plain, chunks = run(make(fake.base_url), both)
    assert text_of(chunks) == plain.text and len(chunks) > 3
    assert (
        chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == plain.usage.output_tokens
    )  # type: ignore[union-attr]
    sent = fake.stats()["last_request"]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True, "x_keep": 1}


def test_everything_the_caller_sent_passes_through_untouched(fake: FakeUpstream) -> None:
    params = {
        "temperature": 0.2,
        "seed": 7,
        "stop": ["\n\n"],
        "logprobs": True,
        "user": "u-1",
        "vendor_extension": {"nested": [1, 2]},
        "stream_options": {"include_usage": True},  # meaningless without streaming: not sent
    }
    provider = make(fake.base_url, model="gpt-test", headers={"X-Team": "search"})
    run(provider, lambda p: p.complete(ModelRequest(HELLO, params=dict(params))))
    seen = fake.stats()["last_request"]
    expected = {k: v for k, v in params.items() if k != "stream_options"}
    assert seen["body"] == {**expected, "model": "gpt-test", "messages": HELLO}
    assert seen["headers"]["authorization"] == f"Bearer {KEY}"
    assert seen["headers"]["x-team"] == "search"


def test_the_configured_model_name_is_the_default_upstream_model(fake: FakeUpstream) -> None:
    run(make(fake.base_url), lambda p: p.complete(ModelRequest(HELLO)))
    assert fake.stats()["last_request"]["body"]["model"] == "upstream"


def test_tool_calls_pass_through_plain_and_streaming(fake: FakeUpstream) -> None:
    request = ModelRequest(HELLO, params={"tools": [WEATHER], "tool_choice": "auto"})

    async def both(p: OpenAIProvider) -> tuple[Completion, list[Chunk]]:
        return await p.complete(request), await collect(p, request)

    plain, chunks = run(make(fake.base_url), both)
    [call] = plain.message["tool_calls"]
    assert plain.finish_reason == "tool_calls" and call["function"]["name"] == "get_weather"
    assert "city" in json.loads(call["function"]["arguments"])
    deltas = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    arguments = "".join(tc["function"].get("arguments") or "" for tc in deltas)
    assert len(deltas) > 2 and json.loads(arguments) == json.loads(call["function"]["arguments"])
    assert fake.stats()["last_request"]["body"]["tools"] == [WEATHER]


def test_a_schema_is_sent_as_response_format_json_schema(fake: FakeUpstream) -> None:
    completion = run(make(fake.base_url), lambda p: p.complete(ModelRequest(HELLO, schema=TRIP)))
    jsonschema.validate(json.loads(completion.text), TRIP)
    sent = fake.stats()["last_request"]["body"]["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "output", "schema": TRIP}}


def test_the_callers_response_format_wins_over_the_schema(fake: FakeUpstream) -> None:
    own = {"type": "json_schema", "json_schema": {"name": "trip", "strict": True, "schema": TRIP}}
    request = ModelRequest(HELLO, params={"response_format": own}, schema={"type": "object"})
    completion = run(make(fake.base_url), lambda p: p.complete(request))
    jsonschema.validate(json.loads(completion.text), TRIP)
    assert fake.stats()["last_request"]["body"]["response_format"] == own


def test_usage_is_none_when_the_upstream_reports_none() -> None:
    async def both(p: OpenAIProvider) -> tuple[Completion, list[Chunk]]:
        return await p.complete(ModelRequest(HELLO)), await collect(p, ModelRequest(HELLO))

    with FakeUpstream(no_usage=True) as fake:
        plain, chunks = run(make(fake.base_url), both)
    assert plain.usage is None and plain.text
    assert all("usage" not in c for c in chunks) and text_of(chunks) == plain.text


# -- the connection pool -----------------------------------------------------------------------


def test_the_provider_works_across_several_asyncio_runs(fake: FakeUpstream) -> None:
    provider = make(fake.base_url)
    first = asyncio.run(provider.complete(ModelRequest(HELLO)))
    second = asyncio.run(collect(provider, ModelRequest(HELLO)))  # a new loop: a fresh pool
    third = asyncio.run(provider.complete(ModelRequest(HELLO)))
    asyncio.run(provider.aclose())
    gc.collect()  # an unclosed pool would warn here, and warnings are errors
    assert first.text == text_of(second) == third.text


def test_a_consumer_that_stops_early_releases_the_upstream_request() -> None:
    async def first_chunk(p: OpenAIProvider) -> Chunk:
        stream = p.stream(ModelRequest(HELLO))
        chunk = await anext(stream)
        await stream.aclose()  # e.g. the gateway's client disconnected
        return chunk

    with FakeUpstream(chunk_delay_ms=2000) as fake:  # the whole stream would take half a minute
        provider = make(fake.base_url)
        assert run(provider, first_chunk)["choices"][0]["delta"]["role"] == "assistant"
        assert eventually(lambda: fake.stats()["in_flight"] == 0)  # the upstream saw the client go
        assert fake.stats()["max_in_flight"] == 1


def test_concurrent_requests_share_a_pool_of_at_most_max_connections() -> None:
    async def many(p: OpenAIProvider) -> list[str]:
        results = await asyncio.gather(*(p.complete(ModelRequest(HELLO)) for _ in range(40)))
        return [r.text for r in results]

    with FakeUpstream(latency_ms=20) as fake:
        texts = run(make(fake.base_url, max_connections=4), many)
        assert len(texts) == 40 and len(set(texts)) == 1
        assert fake.stats()["max_in_flight"] == 4


# -- configuration -----------------------------------------------------------------------------

CONFIG = """\
models:
  - name: up
    provider: openai
    base_url: {base_url}
    api_key_env: KEEL_TEST_UPSTREAM_KEY
    model: gpt-test
    timeout: {timeout}
    price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
features: [{{name: f, model: up}}]
"""


def test_the_key_comes_from_the_named_environment_variable(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = parse_config(CONFIG.format(base_url=fake.base_url, timeout=30), source="keel.yaml")
    model = settings.model("up")
    monkeypatch.delenv("KEEL_TEST_UPSTREAM_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"'up'.*KEEL_TEST_UPSTREAM_KEY"):
        provider_class("openai").from_config(model, settings)
    monkeypatch.setenv("KEEL_TEST_UPSTREAM_KEY", "")
    with pytest.raises(ConfigError, match="KEEL_TEST_UPSTREAM_KEY"):
        provider_class("openai").from_config(model, settings)
    monkeypatch.setenv("KEEL_TEST_UPSTREAM_KEY", "sk-from-env")
    provider = provider_class("openai").from_config(model, settings)
    assert isinstance(provider, OpenAIProvider) and provider.options.timeout.total == 30
    run(provider, lambda p: p.complete(ModelRequest(HELLO)))
    seen = fake.stats()["last_request"]
    assert seen["headers"]["authorization"] == "Bearer sk-from-env" and seen["body"]["model"] == "gpt-test"


@pytest.mark.parametrize(
    ("base_url", "timeout", "words"),
    [
        ("ftp://example.com/v1", "30", r"base_url: .*expected an http\(s\) URL"),
        ("http://127.0.0.1:9/v1", "{connect: 0, total: 5}", r"timeout\.connect"),
        ("http://127.0.0.1:9/v1", "{total: 5, read: 3}", r"timeout\.read: unknown key"),
    ],
)
def test_bad_options_are_config_errors_that_name_the_key(base_url: str, timeout: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_config(CONFIG.format(base_url=base_url, timeout=timeout), source="keel.yaml")


def test_an_unknown_option_is_named() -> None:
    text = (
        "models: [{name: up, provider: openai, base_url: 'http://x/v1', api_key: sk-1}]\n"
        "features: [{name: f, model: up}]\n"
    )
    with pytest.raises(ConfigError, match="api_key: unknown key"):
        parse_config(text, source="keel.yaml")
