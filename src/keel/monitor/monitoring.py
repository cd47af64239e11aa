"""The Monitoring layer's long-lived parts: tracer, alert monitor, and what /metrics reads when scraped.

Built once by the ``Runtime`` (after the ledger writer), started and closed with it. The dashboard
reads alert levels through ``Monitoring.alert_states()`` (also ``Runtime.monitoring``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from keel.errors import ConfigError
from keel.monitor.alerts import AlertMonitor, AlertState
from keel.monitor.ledger import LedgerWriter
from keel.monitor.metrics import Metrics, budget_source
from keel.monitor.tracing import Tracer, build_tracer

if TYPE_CHECKING:
    from keel.settings import Settings
    from keel.stores.base import StateBackend


class Monitoring:
    """Tracer and alert monitor for one runtime; feeds the budget, ledger and alert gauges of ``metrics``."""

    def __init__(
        self, settings: Settings, metrics: Metrics, writer: LedgerWriter | None, state: StateBackend
    ) -> None:
        self.tracer: Tracer = build_tracer(settings.tracing)
        self.alerts: AlertMonitor | None = None
        if settings.alerts.rules:
            if writer is None:
                raise ConfigError("alerts.rules: alert rules read the ledger; enable the ledger to use them")
            self.alerts = AlertMonitor(settings.alerts, writer.ledger)
        stats = (lambda: writer.stats) if writer is not None else None
        metrics.watch(budgets=budget_source(settings, state.budgets), ledger=stats, alerts=self.alert_states)

    def alert_states(self) -> list[AlertState]:
        """Every (rule, feature) pair's level as of the last evaluation, worst first; [] without rules.

        The dashboard's source for its alerts panel: each ``AlertState`` has ``rule``, ``feature``,
        ``metric``, ``level`` (ok | warn | alert), ``value``, ``calls``, ``since`` and ``checked_at``
        (``to_dict()`` for JSON).
        """
        return [] if self.alerts is None else self.alerts.states()

    def start(self) -> None:
        """Start evaluating alert rules (a daemon thread; none without rules)."""
        if self.alerts is not None:
            self.alerts.start()

    async def aclose(self) -> None:
        """Stop the alert monitor (delivering queued webhooks) and export the spans still queued."""
        if self.alerts is not None:
            await asyncio.to_thread(self.alerts.close)
        await asyncio.to_thread(self.tracer.shutdown)
