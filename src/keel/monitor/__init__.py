"""The Monitoring layer: the usage ledger, its batching writer and the usage report."""

from __future__ import annotations

from keel.errors import LedgerWriteError
from keel.monitor.ledger import GroupBy, Ledger, LedgerRow, LedgerWriter, WriterStats
from keel.monitor.sqlite_ledger import SQLiteLedger
from keel.monitor.usage import UsageSummary, parse_since

__all__ = [
    "GroupBy",
    "Ledger",
    "LedgerRow",
    "LedgerWriteError",
    "LedgerWriter",
    "SQLiteLedger",
    "UsageSummary",
    "WriterStats",
    "parse_since",
]
