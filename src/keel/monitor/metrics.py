"""Prometheus metrics: what every call did (a Monitoring stage), and live state refreshed at scrape time.

Named after the OpenTelemetry GenAI semantic conventions where they exist, as an OTel collector's
Prometheus exporter would name them (``gen_ai_client_token_usage``,
``gen_ai_client_operation_duration_seconds``, with ``gen_ai_*`` labels), and ``keel_*`` for the
rest: calls, cost, savings, cache hits, routes, verdicts, circuit state, budgets, the ledger, alerts.

Labels are bounded by configuration (feature, configured model, key names, prompt versions,
reason codes, route kinds), never by request content or the upstream's reported model id, so
the series count stays fixed however much traffic flows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from keel.call import Call
from keel.errors import KeelError
from keel.stage import Layer, Stage

if TYPE_CHECKING:
    from keel.monitor.alerts import AlertState
    from keel.monitor.ledger import WriterStats
    from keel.settings import Settings
    from keel.stores.base import Budgets

log = logging.getLogger("keel.metrics")

_STATE_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_LEVEL_VALUE = {"ok": 0.0, "warn": 1.0, "alert": 2.0}
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# The buckets the GenAI semantic conventions advise for these two histograms.
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_OPERATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_GENAI = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
_WHO = ["feature", "key_id", "prompt_version"]


@dataclass(frozen=True, slots=True)
class BudgetReading:
    """What is left of one budget in its current period (negative when overspent)."""

    scope: Literal["feature", "key"]
    name: str
    period: Literal["day", "month"]
    remaining_usd: float


BudgetSource = Callable[[], Awaitable[Iterable[BudgetReading]]]


class Metrics:
    """One gateway's metrics, in a registry of its own (several pipelines may live in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.calls = Counter(
            "keel_calls",
            "Calls by feature, model and status",
            ["feature", "model", "status", *_WHO[1:]],
            registry=r,
        )
        self.tokens = Counter(
            "keel_tokens",
            "Tokens by feature, model and direction",
            ["feature", "model", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "keel_cost_usd", "USD spent by feature and model", ["feature", "model", *_WHO[1:]], registry=r
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
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per model answer (OpenTelemetry GenAI), by gen_ai_token_type input or output",
            [*_GENAI, "gen_ai_token_type", *_WHO],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Time in the LLM layer per call that reached a model (OpenTelemetry GenAI); error_type if failed",
            [*_GENAI, "error_type", *_WHO],
            buckets=_OPERATION_BUCKETS,
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
        self.budget_remaining = Gauge(
            "keel_budget_remaining_usd",
            "USD left in each budget's current period (negative: overspent)",
            ["scope", "name", "period"],
            registry=r,
        )
        self.ledger_pending = Gauge(
            "keel_ledger_pending_rows", "Ledger rows waiting to be written", registry=r
        )
        self.ledger_rows = Gauge(
            "keel_ledger_rows",
            "Ledger rows since start, by outcome: written, dropped (queue full), rejected (bad data), pruned",
            ["outcome"],
            registry=r,
        )
        self.ledger_failures = Gauge("keel_ledger_write_failures", "Failed ledger write attempts", registry=r)
        self.alert_level = Gauge(
            "keel_alert_level",
            "Alert rule level per feature: 0 ok, 1 warn, 2 alert",
            ["rule", "feature"],
            registry=r,
        )
        self._budgets: BudgetSource | None = None
        self._ledger: Callable[[], WriterStats] | None = None
        self._alerts: Callable[[], Iterable[AlertState]] | None = None

    # -- per call (the hot path: no I/O) -------------------------------------------------------

    def observe(self, call: Call) -> None:
        """Count one finished call."""
        f, m = call.feature, call.model or ""
        key, version = call.key_id or "", call.prompt_version or ""
        self.calls.labels(f, m, call.status.value, key, version).inc()
        u = call.usage
        if u.input_tokens:
            self.tokens.labels(f, m, "input").inc(u.input_tokens)
        if u.output_tokens:
            self.tokens.labels(f, m, "output").inc(u.output_tokens)
        if u.cost_usd:
            self.cost.labels(f, m, key, version).inc(u.cost_usd)
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
        self._observe_genai(call, key, version)

    def _observe_genai(self, call: Call, key: str, version: str) -> None:
        """The GenAI client metrics: only for calls that asked a model (or its cache)."""
        llm_ms = call.timings.get("llm")
        if llm_ms is None or not (call.spend or call.attempts):
            return
        provider = call.provider or ""
        for s in call.spend:
            if s.cached:
                continue  # a cached answer used no tokens this time
            self.token_usage.labels("chat", provider, s.model, "input", call.feature, key, version).observe(
                s.usage.input_tokens
            )
            self.token_usage.labels("chat", provider, s.model, "output", call.feature, key, version).observe(
                s.usage.output_tokens
            )
        error = "" if call.error is None else (call.error.code or type(call.error).__name__)
        self.operation_duration.labels(
            "chat", provider, call.model or "", error, call.feature, key, version
        ).observe(llm_ms / 1000)

    # -- at scrape time ----------------------------------------------------------------------

    def watch(
        self,
        *,
        budgets: BudgetSource | None = None,
        ledger: Callable[[], WriterStats] | None = None,
        alerts: Callable[[], Iterable[AlertState]] | None = None,
    ) -> None:
        """Sources read by ``refresh()``: budgets from the state store, the writer's stats, alert levels."""
        self._budgets = budgets or self._budgets
        self._ledger = ledger or self._ledger
        self._alerts = alerts or self._alerts

    async def refresh(self) -> None:
        """Re-read every watched source into its gauges (call before ``render()``)."""
        if self._budgets is not None:
            try:
                readings = list(await self._budgets())
            except KeelError as exc:  # the state store is down: the other metrics still answer
                log.warning("event=metrics_budgets_unavailable error=%r", str(exc))
                readings = []
            for b in readings:
                self.budget_remaining.labels(b.scope, b.name, b.period).set(b.remaining_usd)
        if self._ledger is not None:
            stats = self._ledger()
            self.ledger_pending.set(stats.pending)
            for outcome in ("written", "dropped", "rejected", "pruned"):
                self.ledger_rows.labels(outcome).set(getattr(stats, outcome))
            self.ledger_failures.set(stats.failures)
        if self._alerts is not None:
            for a in self._alerts():
                self.alert_level.labels(a.rule, a.feature).set(_LEVEL_VALUE[a.level])

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


def budget_source(settings: Settings, budgets: Budgets) -> BudgetSource:
    """Read every configured budget (features' and keys') from the state store at scrape time."""
    from keel.llm.limits import budget_key  # the store keys the budget stages write

    lines: list[tuple[Literal["feature", "key"], str, Literal["day", "month"], float]] = []
    owners: list[tuple[Literal["feature", "key"], str, Any]] = [
        *(("feature", f.name, f.budget) for f in settings.features),
        *(("key", k.name, k.budget) for k in settings.keys),
    ]
    for scope, name, budget in owners:
        if budget is None:
            continue
        if budget.usd_per_day is not None:
            lines.append((scope, name, "day", budget.usd_per_day))
        if budget.usd_per_month is not None:
            lines.append((scope, name, "month", budget.usd_per_month))

    async def read() -> list[BudgetReading]:
        out = []
        for scope, name, period, limit in lines:
            spent, reserved = await budgets.usage(budget_key(scope, name, period))
            out.append(BudgetReading(scope, name, period, limit - spent - reserved))
        return out

    return read


class MetricsStage(Stage):
    """Count the finished call in the gateway's metrics (no I/O)."""

    name = "monitoring.metrics"
    layer = Layer.MONITORING

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def run(self, call: Call) -> None:
        """Observe the call."""
        self.metrics.observe(call)
