"""The Monitoring layer: the usage ledger (SQLite or PostgreSQL), its batching writer, the usage
report, prices, Prometheus metrics, OpenTelemetry traces and alert rules."""

from __future__ import annotations

from keel.errors import LedgerWriteError
from keel.monitor.ledger import GroupBy, Ledger, LedgerRow, LedgerWriter, TailPage, VerdictStats, WriterStats
from keel.monitor.open import open_ledger
from keel.monitor.sqlite_ledger import SQLiteLedger
from keel.monitor.usage import UsageSummary, parse_since

__all__ = [
    "GroupBy",
    "Ledger",
    "LedgerRow",
    "LedgerWriteError",
    "LedgerWriter",
    "SQLiteLedger",
    "TailPage",
    "UsageSummary",
    "VerdictStats",
    "WriterStats",
    "open_ledger",
    "parse_since",
]
