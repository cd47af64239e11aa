"""Traces: the hooks the pipeline calls around each call, layer and stage, and how to build them.

The pipeline calls the tracer around what it already times (no stage of its own)::

    tracer.start_call(call)                   # when the call enters (call.traceparent: the caller's trace)
    with tracer.layer(call, Layer.INPUT):     # around each layer
        with tracer.stage(call, stage.name):  # around each stage
            ...
    tracer.end_call(call)                     # in the Monitoring layer, always

``Tracer`` itself does nothing (``enabled`` is False, so a caller may skip the hooks); with
``tracing.endpoint`` set, ``build_tracer`` returns ``keel.monitor.otel.OTelTracer``, which makes
OpenTelemetry spans and exports them over OTLP/HTTP. The OpenTelemetry SDK is an extra
(``pip install 'keel[otel]'``), imported only when tracing is configured.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from keel.call import Call
from keel.errors import ConfigError
from keel.monitor.settings import TracingSettings
from keel.stage import Layer

_NULL: AbstractContextManager[None] = nullcontext()


class Tracer:
    """Tracing off: every hook returns at once and nothing is allocated per call."""

    enabled = False
    include_content = False

    def start_call(self, call: Call) -> None:
        """Open the call's span."""

    def layer(self, call: Call, layer: Layer) -> AbstractContextManager[None]:
        """A span around one layer of the call."""
        return _NULL

    def stage(self, call: Call, name: str) -> AbstractContextManager[None]:
        """A span around one stage (a child of the open layer's span)."""
        return _NULL

    def end_call(self, call: Call) -> None:
        """Describe the finished call on its span and end it."""

    def shutdown(self) -> None:
        """Export the spans still queued, then stop (blocking: call it off the event loop)."""


NOOP = Tracer()


def build_tracer(settings: TracingSettings) -> Tracer:
    """The tracer ``settings`` ask for: OpenTelemetry over OTLP/HTTP, or ``NOOP`` when no endpoint is set."""
    if not settings.enabled:
        return NOOP
    try:
        from keel.monitor.otel import OTelTracer
    except ImportError as exc:
        raise ConfigError(
            f"tracing.endpoint is set but the OpenTelemetry SDK is not installed ({exc.name});"
            " pip install 'keel[otel]'"
        ) from None
    return OTelTracer(settings)
