"""Prometheus metrics: what every call did (a Monitoring stage), and circuit state at scrape time.

Labels are bounded by configuration (feature, model, key names, reason codes, route kinds), never
by request content, so the series count stays fixed however much traffic flows.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from keel.call import Call
from keel.stage import Layer, Stage

_STATE_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """One gateway's metrics, in a registry of its own (several pipelines may live in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.calls = Counter(
            "keel_calls", "Calls by feature, model and status", ["feature", "model", "status"], registry=r
        )
        self.tokens = Counter(
            "keel_tokens",
            "Tokens by feature, model and direction",
            ["feature", "model", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "keel_cost_usd", "USD spent by feature and model", ["feature", "model"], registry=r
        )
        self.saved = Counter(
            "keel_saved_usd", "USD saved by caching and routing", ["feature", "by"], registry=r
        )
        self.cache_hits = Counter(
            "keel_cache_hits", "Answers from the cache", ["feature", "kind"], registry=r
        )
        self.routes = Counter("keel_routes", "Routing decisions", ["feature", "route", "model"], registry=r)
        self.verdicts = Counter(
            "keel_verdicts", "Stage decisions by reason", ["feature", "stage", "action", "reason"], registry=r
        )
        self.attempts = Counter("keel_upstream_attempts", "Upstream calls made", ["feature"], registry=r)
        self.latency = Histogram(
            "keel_call_duration_seconds",
            "Whole-call latency",
            ["feature"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.circuit = Gauge(
            "keel_circuit_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open",
            ["model", "deployment"],
            registry=r,
        )
        self.circuit_opened = Gauge(
            "keel_circuit_opened",
            "Times this process saw a deployment's circuit open",
            ["model", "deployment"],
            registry=r,
        )

    def observe(self, call: Call) -> None:
        """Count one finished call."""
        f, m = call.feature, call.model or ""
        self.calls.labels(f, m, call.status.value).inc()
        u = call.usage
        if u.input_tokens:
            self.tokens.labels(f, m, "input").inc(u.input_tokens)
        if u.output_tokens:
            self.tokens.labels(f, m, "output").inc(u.output_tokens)
        if u.cost_usd:
            self.cost.labels(f, m).inc(u.cost_usd)
        if call.cache:
            self.cache_hits.labels(f, call.cache).inc()
        if call.saved_usd > 0:
            self.saved.labels(f, "cache" if call.cache else "route").inc(call.saved_usd)
        if call.route:
            # "complexity:large:0.83" → "complexity:large": the score would make every call a series.
            self.routes.labels(f, ":".join(call.route.split(":")[:2]), m).inc()
        for v in call.verdicts:
            self.verdicts.labels(f, v.stage, v.action.value, v.reason).inc()
        if call.attempts:
            self.attempts.labels(f).inc(call.attempts)
        total = call.timings.get("total")
        if total is not None:
            self.latency.labels(f).observe(total / 1000)

    def set_circuits(self, health: dict[str, Any]) -> None:
        """Refresh the circuit gauges from ``Runtime.health()``."""
        for model, report in health.items():
            for d in report.get("deployments", []):
                name = str(d.get("name", model))
                value = _STATE_VALUE.get(str(d.get("state")))
                if value is not None:
                    self.circuit.labels(model, name).set(value)
                self.circuit_opened.labels(model, name).set(float(d.get("opened", 0)))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsStage(Stage):
    """Count the finished call in the gateway's metrics (no I/O)."""

    name = "monitoring.metrics"
    layer = Layer.MONITORING

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def run(self, call: Call) -> None:
        """Observe the call."""
        self.metrics.observe(call)
