"""The Monitoring layer's last stage: hand the finished call to the ledger writer (no I/O here)."""

from __future__ import annotations

from keel.call import Call
from keel.monitor.ledger import LedgerRow, LedgerWriter
from keel.stage import Layer, Stage


class LedgerStage(Stage):
    """Queue one ledger row for the call; the writer persists it in a batch off the request path."""

    name = "monitoring.ledger"
    layer = Layer.MONITORING

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    async def run(self, call: Call) -> None:
        """Record the call's row."""
        self.writer.record(LedgerRow.from_call(call))
