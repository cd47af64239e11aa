"""Traces of pipeline calls: a span per call, layer and stage, GenAI attributes, no content by default."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from keel import Call, Pipeline, Settings
from keel.errors import ConfigError, UpstreamTimeout
from keel.monitor.otel import OTelTracer
from keel.monitor.settings import TracingSettings
from keel.monitor.tracing import NOOP, build_tracer
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

SECRET = "my account number is 99-1234-5678"
CONFIG = """\
models:
  - name: m
    provider: scripted
    price: {input_per_mtok: 1.0, output_per_mtok: 2.0}
features:
  - name: support
    model: m
    limits: {max_output_tokens: 64}
ledger: {enabled: false}
"""
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _run(
    settings: Settings,
    replies: list[Any],
    *,
    content: bool = False,
    traceparent: str | None = None,
) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    tracer = OTelTracer(TracingSettings(include_content=content), exporter=exporter, batch=False)

    async def go() -> None:
        async with Pipeline(settings, providers={"m": ScriptedProvider("m", replies)}) as p:
            p.runtime.tracer = tracer
            call = Call(
                feature="support",
                messages=[{"role": "user", "content": SECRET}],
                key_id="team-a",
                params={"temperature": 0.2, "max_tokens": 30},
                traceparent=traceparent,
            )
            with contextlib.suppress(UpstreamTimeout):
                await p.run(call)

    asyncio.run(go())
    tracer.shutdown()
    return list(exporter.get_finished_spans())


def _by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def test_a_call_makes_a_span_with_a_child_per_layer_and_a_grandchild_per_stage(
    make_settings: Callable[[str], Settings],
) -> None:
    spans = _by_name(_run(make_settings(CONFIG), ["Hello there"]))
    root = spans["chat m"]
    assert root.parent is None
    for layer in ("keel.input", "keel.context", "keel.llm", "keel.validation", "keel.monitoring"):
        assert spans[layer].parent is not None and spans[layer].parent.span_id == root.context.span_id
    model = spans.pop("keel.llm.model")  # the model call: after the LLM layer's stages, before validation
    assert model.parent is not None and model.parent.span_id == root.context.span_id
    stages = [s for s in spans.values() if s.name.startswith("keel.") and s.name.count(".") >= 2]
    assert stages, "no stage spans"
    by_id = {s.context.span_id: s for s in spans.values()}
    for stage in stages:
        assert stage.parent is not None
        parent = by_id[stage.parent.span_id]
        assert parent.parent is not None and parent.parent.span_id == root.context.span_id
    assert "keel.monitoring.cost" in spans
    assert all(s.context.trace_id == root.context.trace_id for s in spans.values())


def test_the_call_span_carries_genai_and_keel_attributes(make_settings: Callable[[str], Settings]) -> None:
    root = _by_name(_run(make_settings(CONFIG), ["Hello there"]))["chat m"]
    a = root.attributes or {}
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "scripted"
    assert a["gen_ai.request.model"] == "m"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 30
    assert a["gen_ai.usage.input_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] > 0
    assert a["keel.feature"] == "support"
    assert a["keel.key_id"] == "team-a"
    assert a["keel.status"] == "ok"
    assert a["keel.cost_usd"] > 0
    assert "keel.timing.llm_ms" in a
    assert root.status.status_code is not StatusCode.ERROR


def test_message_content_stays_out_of_spans_unless_asked_for(
    make_settings: Callable[[str], Settings],
) -> None:
    settings = make_settings(CONFIG)

    def dump(spans: list[ReadableSpan]) -> str:
        return " ".join(s.to_json() for s in spans)

    assert SECRET not in dump(_run(settings, ["Your answer"]))
    with_content = _run(settings, ["Your answer"], content=True)
    assert SECRET in dump(with_content)
    assert "Your answer" in dump(with_content)


def test_a_failed_call_marks_its_span_with_the_error_type_not_the_message(
    make_settings: Callable[[str], Settings],
) -> None:
    spans = _run(make_settings(CONFIG), [UpstreamTimeout(f"slow upstream for {SECRET}")])
    root = next(s for s in spans if s.parent is None)
    assert root.status.status_code is StatusCode.ERROR
    assert (root.attributes or {})["error.type"] == "upstream_timeout"
    assert (root.attributes or {})["keel.status"] == "error"
    assert SECRET not in " ".join(s.to_json() for s in spans)


def test_a_callers_traceparent_makes_the_call_a_child_of_its_trace(
    make_settings: Callable[[str], Settings],
) -> None:
    spans = _run(make_settings(CONFIG), ["Hi"], traceparent=TRACEPARENT)
    root = _by_name(spans)["chat m"]
    assert f"{root.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert root.parent is not None and f"{root.parent.span_id:016x}" == "b7ad6b7169203331"


def test_without_an_endpoint_tracing_is_the_no_op_tracer() -> None:
    assert build_tracer(TracingSettings()) is NOOP
    assert NOOP.enabled is False


def test_export_headers_come_from_the_environment_and_a_missing_one_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = TracingSettings(endpoint="http://127.0.0.1:1/v1/traces", headers_env={"x-token": "KEEL_T"})
    monkeypatch.delenv("KEEL_T", raising=False)
    with pytest.raises(ConfigError, match="KEEL_T is not set"):
        build_tracer(settings)
    monkeypatch.setenv("KEEL_T", "abc")
    tracer = build_tracer(settings)
    assert tracer.enabled
    tracer.shutdown()
