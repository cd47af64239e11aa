"""The library path: a Call flows through all five layers with no server running."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from keel import Call, Pipeline, Settings
from keel.call import Status
from keel.errors import OutputRejected, PayloadTooLarge, UnknownFeature, UpstreamTimeout
from keel.llm.canary import canary_token, marker
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

CONFIG = """\
models:
  - name: m
    provider: scripted
    price: {input_per_mtok: 1.0, output_per_mtok: 2.0}
features:
  - name: support
    model: m
    prompt: support
    limits: {max_input_chars: 200, max_output_tokens: 64}
  - name: extract
    model: m
    schema:
      type: object
      properties: {city: {type: string}, days: {type: integer, minimum: 1}}
      required: [city, days]
storage: {path: keel.db}
"""
PROMPT = """\
system: 'You are the {{ product }} helper.'
variables: {product: {default: Acme}}
params: {temperature: 0.3}
"""

MakeSettings = Callable[..., Settings]


def _run(settings: Settings, provider: ScriptedProvider, call: Call) -> Any:
    async def go() -> Any:
        async with Pipeline(settings, providers={"m": provider}) as p:
            return await p.run(call)

    return asyncio.run(go())


def _rows(settings: Settings) -> list[sqlite3.Row]:
    with sqlite3.connect(settings.db_path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("select * from calls order by ts").fetchall()
    db.close()
    return rows


def test_a_call_passes_every_layer_and_is_recorded(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})
    provider = ScriptedProvider("m", ["Hello there"])
    result = _run(s, provider, Call(feature="support", messages=[{"role": "user", "content": "hi\u200b"}]))

    assert result.text == "Hello there"
    sent = provider.requests[0]
    assert sent.messages == [
        {"role": "system", "content": "You are the Acme helper." + marker(canary_token("support"))},
        {"role": "user", "content": "hi"},
    ]
    assert sent.params == {"temperature": 0.3, "max_tokens": 64}
    assert result.prompt_name == "support" and len(result.prompt_version or "") == 12
    assert set(result.timings) >= {"input", "context", "llm", "validation", "total"}
    assert result.usage.cost_usd == pytest.approx(
        (result.usage.input_tokens * 1 + result.usage.output_tokens * 2) / 1e6
    )

    [row] = _rows(s)
    assert row["feature"] == "support" and row["status"] == "ok" and row["model"] == "m"
    assert row["prompt_version"] == result.prompt_version
    assert row["input_tokens"] == result.usage.input_tokens and row["cost_usd"] == pytest.approx(
        result.usage.cost_usd
    )
    assert "input.invisible_removed" in row["verdicts"]


def test_schema_feature_parses_and_validates_output(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})
    result = _run(
        s,
        ScriptedProvider("m", ['{"city": "Oslo", "days": 3}']),
        Call(feature="extract", messages=[{"role": "user", "content": "Oslo for 3 days"}]),
    )
    assert result.output == {"city": "Oslo", "days": 3}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("not json", "output.not_json"),
        ('{"city": "Oslo", "days": 0}', "output.schema_invalid"),
        ('{"days": 2}', "output.schema_invalid"),
    ],
)
def test_invalid_structured_output_is_refused_with_a_verdict(
    make_settings: MakeSettings, reply: str, reason: str
) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})
    with pytest.raises(OutputRejected):
        _run(
            s,
            ScriptedProvider("m", [reply]),
            Call(feature="extract", messages=[{"role": "user", "content": "x"}]),
        )
    [row] = _rows(s)
    assert row["status"] == "blocked" and reason in row["verdicts"] and row["http_status"] == 502


def test_oversized_input_is_refused_before_the_model_and_recorded(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})
    provider = ScriptedProvider("m")
    with pytest.raises(
        PayloadTooLarge, match=r"input is 300 characters; feature 'support' allows at most 200"
    ):
        _run(s, provider, Call(feature="support", messages=[{"role": "user", "content": "x" * 300}]))
    assert provider.requests == []
    [row] = _rows(s)
    assert row["status"] == "blocked" and row["http_status"] == 413 and row["input_tokens"] == 0


def test_upstream_failure_is_recorded_as_error(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})
    with pytest.raises(UpstreamTimeout):
        _run(
            s,
            ScriptedProvider("m", [UpstreamTimeout("slow")]),
            Call(feature="support", messages=[{"role": "user", "content": "x"}]),
        )
    [row] = _rows(s)
    assert row["status"] == "error" and row["http_status"] == 504 and row["error_code"] == "upstream_timeout"


def test_unknown_feature_names_the_ones_served(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})
    with pytest.raises(UnknownFeature, match="unknown feature 'nope'; this gateway serves: extract, support"):
        _run(s, ScriptedProvider("m"), Call(feature="nope", messages=[{"role": "user", "content": "x"}]))


def test_request_params_override_prompt_defaults_and_tokens_are_counted_when_unreported(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})
    provider = ScriptedProvider("m", ["four words of answer"], usage=False)
    result = _run(
        s,
        provider,
        Call(
            feature="support",
            messages=[{"role": "user", "content": "hi"}],
            params={"temperature": 0.9, "max_tokens": 500},
        ),
    )
    assert provider.requests[0].params == {"temperature": 0.9, "max_tokens": 64}
    assert result.usage.estimated and result.usage.output_tokens == 4 and result.usage.input_tokens > 0


def test_streaming_yields_chunks_then_records_the_whole_answer(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})

    async def go() -> tuple[list[dict[str, Any]], Call]:
        call = Call(feature="support", messages=[{"role": "user", "content": "hi"}])
        async with Pipeline(s, providers={"m": ScriptedProvider("m", ["one two three"])}) as p:
            chunks = [c async for c in await p.open_stream(call)]
        return chunks, call

    chunks, call = asyncio.run(go())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "one two three"
    assert all(c["choices"] for c in chunks)  # the usage-only chunk is not sent unless asked for
    assert call.status is Status.OK and call.completion is not None and call.ttft_ms is not None
    [row] = _rows(s)
    assert row["stream"] == 1 and row["output_tokens"] == 3


def test_streaming_with_schema_holds_chunks_until_the_answer_validates(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})

    async def go(reply: str) -> list[dict[str, Any]]:
        call = Call(
            feature="extract",
            messages=[{"role": "user", "content": "hi"}],
            params={"stream_options": {"include_usage": True}},
        )
        got: list[dict[str, Any]] = []
        async with Pipeline(s, providers={"m": ScriptedProvider("m", [reply])}) as p:
            async for c in await p.open_stream(call):
                got.append(c)
        return got

    good = asyncio.run(go('{"city": "Rome", "days": 2}'))
    assert good[-1]["usage"]["completion_tokens"] > 0
    got: list[dict[str, Any]] = []

    async def bad() -> None:
        call = Call(feature="extract", messages=[{"role": "user", "content": "hi"}])
        async with Pipeline(s, providers={"m": ScriptedProvider("m", ['{"city": 1}'])}) as p:
            async for c in await p.open_stream(call):
                got.append(c)

    with pytest.raises(OutputRejected):
        asyncio.run(bad())
    assert got == []  # nothing of the invalid answer reached the caller


def test_an_abandoned_stream_is_recorded_as_cancelled_with_what_was_sent(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG, {"support": PROMPT})

    async def go() -> None:
        call = Call(feature="support", messages=[{"role": "user", "content": "hi"}])
        async with Pipeline(s, providers={"m": ScriptedProvider("m", ["a b c d e f g h"])}) as p:
            stream = await p.open_stream(call)
            seen = 0
            async for _ in stream:
                seen += 1
                if seen == 3:
                    break
            await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(go())
    [row] = _rows(s)
    assert (row["status"], row["http_status"], row["error_code"]) == ("error", 499, "cancelled")
    assert 0 < row["output_tokens"] < 8
