"""PII and secret redaction through a real Pipeline: what the model sees, what the caller gets back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from keel import Call, Pipeline, Settings
from keel.errors import InputRejected
from keel.llm.providers.base import ModelRequest
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

EMAIL, PHONE, CARD = "jane.roe@example.org", "+1 (415) 555-0132", "4111 1111 1111 1111"
PROMPT = f"Hi, I am Jane ({EMAIL}), call {PHONE}; my card is {CARD}. Write a reply to {EMAIL}."

CONFIG = """\
models:
  - name: m
    provider: scripted
features:
  - name: f
    model: m
    input: {pii: @PII@, secrets: @SECRETS@}
storage: {path: keel.db}
"""


def _settings(make_settings: Callable[..., Settings], pii: str, secrets: str = "redact") -> Settings:
    return make_settings(CONFIG.replace("@PII@", pii).replace("@SECRETS@", secrets))


def _echo(request: ModelRequest) -> str:
    """A model that repeats the user's message back, placeholders and all."""
    return "You wrote: " + str(request.messages[-1]["content"])


def _run(settings: Settings, provider: ScriptedProvider, text: str, *, stream: bool = False) -> Any:
    async def go() -> Any:
        async with Pipeline(settings, providers={"m": provider}) as p:
            call = Call(feature="f", messages=[{"role": "user", "content": text}])
            if not stream:
                return await p.run(call)
            chunks = await p.open_stream(call)
            pieces = [c["choices"][0]["delta"].get("content") or "" async for c in chunks if c.get("choices")]
            return pieces

    return asyncio.run(go())


def test_redaction_hides_values_from_the_model_and_numbers_them(
    make_settings: Callable[..., Settings],
) -> None:
    provider = ScriptedProvider("m", _echo)
    result = _run(_settings(make_settings, "{action: redact}"), provider, PROMPT)
    seen = provider.requests[0].messages[-1]["content"]
    assert seen == (
        "Hi, I am Jane (<EMAIL_1>), call <PHONE_1>; my card is <CREDIT_CARD_1>. Write a reply to <EMAIL_1>."
    )
    assert result.text == "You wrote: " + seen  # no restore: the caller sees the placeholders too
    verdict = next(v for v in result.verdicts if v.stage == "input.pii")
    assert verdict.reason == "input.pii_redacted"
    assert verdict.detail == "CREDIT_CARD=1 EMAIL_ADDRESS=2 PHONE_NUMBER=1"


def test_restore_gives_the_caller_the_original_values(make_settings: Callable[..., Settings]) -> None:
    provider = ScriptedProvider("m", _echo)
    result = _run(_settings(make_settings, "{action: redact, restore: true}"), provider, PROMPT)
    assert EMAIL not in str(provider.requests[0].messages)
    assert result.text == "You wrote: " + PROMPT
    assert result.message["content"] == result.text and result.completion.text == result.text


def test_a_streamed_answer_is_restored(make_settings: Callable[..., Settings]) -> None:
    # Placeholders split across chunks at every possible point: tests/input/test_redaction_fuzz.py.
    provider = ScriptedProvider("m", ["Dear <EMAIL_1>, we will call <PHONE_1>."])
    pieces = _run(_settings(make_settings, "{action: redact, restore: true}"), provider, PROMPT, stream=True)
    assert "".join(pieces) == f"Dear {EMAIL}, we will call {PHONE}."


def test_pseudonyms_are_consistent_and_restored(make_settings: Callable[..., Settings]) -> None:
    provider = ScriptedProvider("m", _echo)
    settings = _settings(make_settings, "{action: pseudonymize, restore: true}")
    result = _run(settings, provider, PROMPT)
    seen = provider.requests[0].messages[-1]["content"]
    assert EMAIL not in seen and CARD not in seen and PHONE not in seen
    fake_emails = [w.strip("()., ") for w in seen.split() if "@" in w]
    assert len(fake_emails) == 2 and fake_emails[0] == fake_emails[1]  # the same value, the same fake
    assert fake_emails[0].split("@")[1].startswith("example.")
    assert result.text == "You wrote: " + PROMPT
    again = ScriptedProvider("m", _echo)
    _run(settings, again, PROMPT)
    assert again.requests[0].messages[-1]["content"] == seen  # and the same across calls


def test_block_refuses_the_call_with_a_reason_code(make_settings: Callable[..., Settings]) -> None:
    provider = ScriptedProvider("m", _echo)
    with pytest.raises(InputRejected) as err:
        _run(_settings(make_settings, "{action: block}"), provider, PROMPT)
    assert err.value.code == "input_pii_detected" and err.value.status == 400
    assert "EMAIL_ADDRESS" in err.value.message and EMAIL not in err.value.message
    assert provider.requests == []


def test_flag_answers_unchanged_and_records_the_verdict(make_settings: Callable[..., Settings]) -> None:
    provider = ScriptedProvider("m", _echo)
    result = _run(_settings(make_settings, "{action: flag}"), provider, PROMPT)
    assert provider.requests[0].messages[-1]["content"] == PROMPT
    assert any(v.reason == "input.pii_detected" and v.action == "flag" for v in result.verdicts)


def test_secrets_in_the_input_are_redacted_by_default(make_settings: Callable[..., Settings]) -> None:
    provider = ScriptedProvider("m", ["ok"])
    key = "sk-proj-Abc123XyZ987LmNoPqRsTuVwXyZ0123456789abcdEFGH"
    result = _run(_settings(make_settings, "{action: 'off'}"), provider, f"why does {key} fail?")
    assert provider.requests[0].messages[-1]["content"] == "why does <SECRET_1> fail?"
    assert any(v.reason == "input.secret_redacted" for v in result.verdicts)


def test_secrets_block_is_a_400_naming_the_reason(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(InputRejected) as err:
        _run(
            _settings(make_settings, "{action: 'off'}", "block"),
            ScriptedProvider("m"),
            "AKIAIOSFODNN7EXAMPLE",
        )
    assert err.value.code == "input_secret_detected"


def test_a_literal_placeholder_in_the_input_is_never_restored_to_someone_else(
    make_settings: Callable[..., Settings],
) -> None:
    provider = ScriptedProvider("m", _echo)
    text = f"I typed <EMAIL_1> myself; my address is {EMAIL}"
    result = _run(_settings(make_settings, "{action: redact, restore: true}"), provider, text)
    assert provider.requests[0].messages[-1]["content"] == "I typed <EMAIL_1> myself; my address is <EMAIL_2>"
    assert result.text == "You wrote: " + text


def test_no_value_reaches_the_logs(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _run(_settings(make_settings, "{action: redact, restore: true}"), ScriptedProvider("m", _echo), PROMPT)
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    for value in (EMAIL, PHONE, CARD, "jane.roe", "555-0132"):
        assert value not in logged


def test_output_pii_checks_leave_the_callers_own_stand_ins_to_be_restored(
    make_settings: Callable[..., Settings],
) -> None:
    config = CONFIG.replace("@PII@", "{action: pseudonymize, restore: true}").replace("@SECRETS@", "redact")
    config = config.replace("    input:", "    output: {pii: redact}\n    input:")
    provider = ScriptedProvider(
        "m", lambda r: "Noted: " + str(r.messages[-1]["content"]) + " and bob@acme-corp.com"
    )
    result = _run(make_settings(config), provider, f"my mail is {EMAIL}")
    assert result.text == f"Noted: my mail is {EMAIL} and [REDACTED_EMAIL]"


def test_traces_with_content_see_placeholders_never_the_values(
    make_settings: Callable[..., Settings],
) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from keel.monitor.otel import OTelTracer
    from keel.monitor.settings import TracingSettings

    exporter = InMemorySpanExporter()
    tracer = OTelTracer(TracingSettings(include_content=True), exporter=exporter, batch=False)
    settings = _settings(make_settings, "{action: redact, restore: true}")

    async def go() -> Any:
        async with Pipeline(settings, providers={"m": ScriptedProvider("m", _echo)}) as p:
            p.runtime.tracer = tracer
            return await p.run(Call(feature="f", messages=[{"role": "user", "content": PROMPT}]))

    result = asyncio.run(go())
    tracer.shutdown()
    spans = " ".join(s.to_json() for s in exporter.get_finished_spans())
    assert result.text == "You wrote: " + PROMPT  # the caller has its values back
    assert "<EMAIL_1>" in spans and "<CREDIT_CARD_1>" in spans  # the trace has the content...
    for value in (EMAIL, PHONE, CARD, "jane.roe", "555-0132"):
        assert value not in spans  # ...but never the values


def test_an_unknown_pii_entity_stops_keel_at_load_naming_the_key(
    make_settings: Callable[..., Settings],
) -> None:
    from keel.errors import ConfigError

    settings = _settings(make_settings, "{action: redact, entities: [EMAIL, SHOE_SIZE]}")
    with pytest.raises(ConfigError) as err:
        Pipeline(settings, providers={"m": ScriptedProvider("m")})
    assert "features[0].input.pii.entities: unknown PII entity 'SHOE_SIZE'" in err.value.message
    assert "EMAIL_ADDRESS" in err.value.message


def test_structured_output_is_restored_in_the_parsed_value_and_in_a_held_stream(
    make_settings: Callable[..., Settings],
) -> None:
    config = CONFIG.replace("@PII@", "{action: redact, restore: true}").replace("@SECRETS@", "redact")
    config = config.replace(
        "    input:",
        "    schema: {type: object, properties: {to: {type: string}}, required: [to]}\n    input:",
    )
    settings = make_settings(config)
    reply = '{"to": "<EMAIL_1>"}'
    result = _run(settings, ScriptedProvider("m", [reply]), f"mail {EMAIL}")
    assert result.output == {"to": EMAIL} and result.text == f'{{"to": "{EMAIL}"}}'
    pieces = _run(settings, ScriptedProvider("m", [reply]), f"mail {EMAIL}", stream=True)
    assert "".join(pieces) == f'{{"to": "{EMAIL}"}}'
