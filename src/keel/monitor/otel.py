"""OpenTelemetry traces: one span per call, a child per layer, a grandchild per stage.

The call span carries the OpenTelemetry GenAI attributes (``gen_ai.operation.name``,
``gen_ai.provider.name``, request and response model, input and output tokens) and keel's own
(feature, key id, prompt version, cost, cache, route, status), one event per verdict, and,
only with ``include_content: true``, the messages and the answer. Spans are exported over
OTLP/HTTP by a batch processor on its own thread, never on the request path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import keel
from keel.call import Call
from keel.errors import ConfigError, KeelError
from keel.monitor.ledger import json_text
from keel.monitor.settings import TracingSettings
from keel.monitor.tracing import Tracer
from keel.stage import Layer

_PROPAGATOR = TraceContextTextMapPropagator()
_REQUEST_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "seed": "gen_ai.request.seed",
}


@dataclass(slots=True)
class _Open:
    """The spans of one call in flight."""

    root: Span
    context: Context
    layer: Context | None = None  # the open layer span, parent of stage spans


class OTelTracer(Tracer):
    """Spans for calls, layers and stages, exported to ``settings.endpoint`` (or ``exporter``)."""

    enabled = True

    def __init__(
        self, settings: TracingSettings, *, exporter: SpanExporter | None = None, batch: bool = True
    ) -> None:
        self.include_content = settings.include_content
        resource = Resource.create(
            {"service.name": settings.service_name, "service.version": keel.__version__}
        )
        self.provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
        )
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=settings.endpoint, headers=_headers(settings), timeout=settings.timeout
            )
        self.provider.add_span_processor(
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )
        self._tracer = self.provider.get_tracer("keel", keel.__version__)
        self._open: dict[str, _Open] = {}

    # -- the pipeline's hooks -------------------------------------------------------------------

    def start_call(self, call: Call) -> None:
        """Open the call's span, a child of the caller's trace when ``call.traceparent`` names one."""
        parent = _PROPAGATOR.extract({"traceparent": call.traceparent}) if call.traceparent else None
        span = self._tracer.start_span(
            f"chat {call.feature}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "keel.call_id": call.id,
                "keel.feature": call.feature,
            },
        )
        self._open[call.id] = _Open(span, trace.set_span_in_context(span))

    def layer(self, call: Call, layer: Layer) -> AbstractContextManager[None]:
        """A span around one layer of the call."""
        return self._span(call, layer.value, is_layer=True)

    def stage(self, call: Call, name: str) -> AbstractContextManager[None]:
        """A span around one stage (a child of the open layer's span, else of the call's)."""
        return self._span(call, name, is_layer=False)

    def end_call(self, call: Call) -> None:
        """Describe the finished call on its span and end it."""
        opened = self._open.pop(call.id, None)
        if opened is None:
            return
        span = opened.root
        if span.is_recording():
            span.update_name(f"chat {call.model or call.feature}")
            span.set_attributes(_call_attributes(call))
            for v in call.verdicts:
                event: dict[str, Any] = {
                    "keel.verdict.stage": v.stage,
                    "keel.verdict.action": v.action.value,
                    "keel.verdict.reason": v.reason,
                }
                if v.score is not None:
                    event["keel.verdict.score"] = v.score
                span.add_event("keel.verdict", event)
            if self.include_content:
                span.add_event("gen_ai.client.inference.operation.details", _content(call))
            if call.error is not None:
                span.set_attribute("error.type", _error_type(call.error))
                span.set_status(Status(StatusCode.ERROR, _error_type(call.error)))
        span.end()

    def shutdown(self) -> None:
        """Export the spans still queued, then stop (blocking: call it off the event loop)."""
        self.provider.shutdown()

    # -- spans ----------------------------------------------------------------------------------

    @contextmanager
    def _span(self, call: Call, name: str, *, is_layer: bool) -> Iterator[None]:
        """``keel.<name>``: a layer's span is the call's child and parent of its stages' spans."""
        opened = self._open.get(call.id)
        if opened is None:
            yield
            return
        parent = opened.context if is_layer else (opened.layer or opened.context)
        span = self._tracer.start_span(f"keel.{name}", context=parent)
        outer = opened.layer
        if is_layer:
            opened.layer = trace.set_span_in_context(span)
        try:
            yield
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            opened.layer = outer
            span.end()


def _headers(settings: TracingSettings) -> dict[str, str]:
    """Export headers whose values come from the environment, so secrets stay out of keel.yaml."""
    out = {}
    for header, var in settings.headers_env.items():
        value = os.environ.get(var)
        if value is None:
            raise ConfigError(f"tracing.headers_env.{header}: environment variable {var} is not set")
        out[header] = value
    return out


def _error_type(exc: BaseException) -> str:
    return (exc.code if isinstance(exc, KeelError) else None) or type(exc).__name__


def _failed(span: Span, exc: BaseException) -> None:
    """Mark a span failed by the error's type or code only: its message may quote the input."""
    kind = _error_type(exc)
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))


def _call_attributes(call: Call) -> dict[str, Any]:
    """The GenAI and keel attributes of a finished call (None values left out)."""
    completion = call.completion
    attrs: dict[str, Any] = {
        "gen_ai.provider.name": call.provider,
        "gen_ai.system": call.provider,  # the older name, still read by many backends
        "gen_ai.request.model": call.model,
        "gen_ai.response.model": call.upstream_model,
        "gen_ai.response.id": completion.id if completion else None,
        "gen_ai.usage.input_tokens": call.usage.input_tokens,
        "gen_ai.usage.output_tokens": call.usage.output_tokens,
        "keel.key_id": call.key_id,
        "keel.prompt.name": call.prompt_name,
        "keel.prompt.version": call.prompt_version,
        "keel.status": call.status.value,
        "keel.cache": call.cache,
        "keel.route": call.route,
        "keel.cost_usd": call.usage.cost_usd,
        "keel.saved_usd": call.saved_usd,
        "keel.attempts": call.attempts,
        "keel.tokens_estimated": call.usage.estimated,
    }
    if completion is not None:
        reasons = [str(c.get("finish_reason")) for c in completion.choices if c.get("finish_reason")]
        if reasons:
            attrs["gen_ai.response.finish_reasons"] = reasons
    for param, name in _REQUEST_PARAMS.items():
        value = call.params.get(param)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[name] = value
    for layer, ms in call.timings.items():
        attrs[f"keel.timing.{layer}_ms"] = ms
    return {k: v for k, v in attrs.items() if v is not None}


def _content(call: Call) -> dict[str, str]:
    """The messages as sent to the model (after the Input layer's redaction) and the answer, as JSON."""
    output = [c.get("message") for c in call.completion.choices] if call.completion else []
    return {"gen_ai.input.messages": json_text(call.messages), "gen_ai.output.messages": json_text(output)}
