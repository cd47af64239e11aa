"""The usage ledger: one row per call, and the writer that persists rows in batches off the request path.

``Ledger`` is the seam a storage backend implements (SQLite embedded, PostgreSQL at scale);
``LedgerWriter`` is the only thing the hot path touches: ``record()`` appends to a queue and a
daemon thread writes batches, each in one transaction, and now and then deletes rows older than
the retention period.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import orjson

from keel.call import Call
from keel.errors import LedgerWriteError, http_status

if TYPE_CHECKING:
    from keel.monitor.settings import LedgerSettings
    from keel.monitor.usage import UsageSummary

GroupBy = Literal["feature", "model", "key"]

log = logging.getLogger("keel.ledger")


@dataclass(slots=True)
class LedgerRow:
    """One call as the ledger stores it: who, what, how it ended, tokens, money, time. No content, no keys."""

    id: str
    ts: float  # call.started_at, epoch seconds
    feature: str
    key_id: str | None = None  # the key's name, never the key
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    status: str = "ok"  # ok | blocked | error
    http_status: int = 200
    error_code: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    tokens_estimated: bool = False
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    latency_ms: float | None = None  # the whole call
    ttft_ms: float | None = None
    t_input_ms: float | None = None
    t_context_ms: float | None = None
    t_llm_ms: float | None = None
    t_validation_ms: float | None = None
    stream: bool = False
    cache: str | None = None  # None | exact | semantic
    route: str | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_call(cls, call: Call) -> LedgerRow:
        """The row for a finished call (runs on the hot path: copies, never serialises)."""
        err = call.error
        t = call.timings
        u = call.usage
        return cls(
            id=call.id,
            ts=call.started_at,
            feature=call.feature,
            key_id=call.key_id,
            model=call.model,
            provider=call.provider,
            upstream_model=call.upstream_model,
            prompt_name=call.prompt_name,
            prompt_version=call.prompt_version,
            status=call.status.value,
            http_status=200 if err is None else http_status(err),
            error_code=None if err is None else err.code,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cached_input_tokens=u.cached_input_tokens,
            tokens_estimated=u.estimated,
            cost_usd=u.cost_usd,
            saved_usd=call.saved_usd,
            latency_ms=t.get("total"),
            ttft_ms=call.ttft_ms,
            t_input_ms=t.get("input"),
            t_context_ms=t.get("context"),
            t_llm_ms=t.get("llm"),
            t_validation_ms=t.get("validation"),
            stream=call.stream,
            cache=call.cache,
            route=call.route,
            verdicts=[v.to_dict() for v in call.verdicts],
            counters=dict(call.counters),
            metadata=dict(call.metadata),
        )


@dataclass(slots=True, frozen=True)
class TailPage:
    """Rows in the order they were stored, and the cursor to ask for the ones after them."""

    rows: list[LedgerRow]
    cursor: int  # pass as ``after`` to the next ``tail()``; 0 when nothing was stored yet


@dataclass(slots=True, frozen=True)
class VerdictStats:
    """One feature's verdicts from one stage (or a stage prefix) over a window, for alert rules."""

    feature: str
    verdicts: int
    blocks: int
    scored: int  # verdicts that carry a score
    mean_score: float | None


def json_text(value: Any) -> str:
    """A row's JSON field as text: odd types become strings, lone surrogates are escaped."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str)


class Ledger(ABC):
    """Where ledger rows are stored. Every backend passes the same contract tests."""

    @abstractmethod
    def write(self, rows: Sequence[LedgerRow]) -> None:
        """Store ``rows`` in one transaction: all or nothing. A row whose id is stored already is skipped.

        Raises LedgerWriteError (and stores nothing) when the batch cannot be written.
        """

    @abstractmethod
    def rows(self, *, since: float | None = None, limit: int = 100) -> list[LedgerRow]:
        """The latest ``limit`` rows with ``ts >= since``, newest first."""

    @abstractmethod
    def summarize(self, *, since: float | None, by: GroupBy) -> list[UsageSummary]:
        """Totals, latency percentiles (whole call and per layer) and savings per group, most expensive
        first (see ``keel.monitor.usage``)."""

    @abstractmethod
    def tail(self, *, after: int | None, limit: int = 100, feature: str | None = None) -> TailPage:
        """Up to ``limit`` rows stored after cursor ``after``, oldest first (to follow the ledger live).

        ``after=None``: the last ``limit`` rows stored, and a cursor at the newest row. The cursor
        follows the order rows were stored in, not their ``ts``: a slow call stored late is still seen.
        """

    @abstractmethod
    def verdict_stats(self, *, since: float | None, stage: str) -> list[VerdictStats]:
        """Per feature: verdicts of ``stage`` or any ``stage.*`` stage in calls with ``ts >= since``."""

    @abstractmethod
    def delete_before(self, ts: float, *, limit: int = 10_000) -> int:
        """Delete at most ``limit`` rows with ``ts < ts`` (oldest first); return how many went.

        Raises LedgerWriteError (retryable) when the ledger cannot be changed now.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(slots=True, frozen=True)
class WriterStats:
    """What the writer has done so far (for metrics and tests)."""

    pending: int  # recorded, not yet written
    written: int
    dropped: int  # oldest rows discarded because more than max_pending were waiting
    rejected: int  # rows the ledger refused as bad data
    failures: int  # failed write attempts
    pruned: int = 0  # rows deleted because they were older than the retention period


class LedgerWriter:
    """Persist ledger rows in batches on a daemon thread; ``record()`` is a queue append, never I/O.

    A batch is written every ``flush_interval`` seconds, or as soon as ``batch_size`` rows wait.
    When the ledger fails, the batch is kept and retried with backoff; meanwhile at most
    ``max_pending`` rows queue up and the oldest beyond that are dropped (counted in ``stats``).
    When it refuses a batch as bad data, the batch is bisected so only the bad rows are dropped.
    ``record()`` after ``close()`` raises RuntimeError: the ledger is closed by then. Rows still
    queued at normal interpreter exit are flushed by an atexit hook.

    With ``retention`` (seconds), rows older than that are deleted every ``retention_check``
    seconds, in chunks between batches so a large deletion never holds new rows back for long.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        flush_interval: float = 1.0,
        batch_size: int = 1000,
        max_pending: int = 100_000,
        max_backoff: float = 30.0,
        retention: float | None = None,
        retention_check: float = 3600.0,
        prune_chunk: int = 10_000,
    ) -> None:
        if flush_interval <= 0 or batch_size <= 0 or max_pending <= 0:
            raise ValueError("flush_interval, batch_size and max_pending must be positive")
        if (retention is not None and retention <= 0) or retention_check <= 0 or prune_chunk <= 0:
            raise ValueError("retention, retention_check and prune_chunk must be positive")
        self.ledger = ledger
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.max_backoff = max_backoff
        self.retention = retention
        self.retention_check = retention_check
        self.prune_chunk = prune_chunk
        self._next_prune = time.monotonic()  # the first check runs after the first interval
        self._pruned = 0
        # deque.append/popleft are atomic, so record() needs no lock; maxlen evicts the oldest.
        self._queue: deque[LedgerRow] = deque(maxlen=max_pending)
        self._held: list[LedgerRow] = []  # the batch being written or awaiting retry (writer thread only)
        self._wake = threading.Event()
        self._state = threading.Condition()
        self._requested = 0  # flush generations asked for / completed
        self._completed = 0
        self._flush_error: LedgerWriteError | None = None
        self._stopping = False
        self._closed = False
        self._backing_off = False
        self._written = self._dropped = self._rejected = self._failures = 0
        self._reported_drops = 0
        self._thread = threading.Thread(target=self._run, name="keel-ledger-writer", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    @classmethod
    def from_settings(cls, ledger: Ledger, settings: LedgerSettings) -> LedgerWriter:
        """A writer configured by the ``ledger`` section of keel.yaml."""
        return cls(
            ledger,
            flush_interval=settings.flush_interval,
            batch_size=settings.batch_size,
            max_pending=settings.max_pending,
            retention=settings.retention_seconds,
            retention_check=settings.retention_check,
        )

    # -- the hot path --------------------------------------------------------------------------

    def record(self, row: LedgerRow) -> None:
        """Queue ``row`` for the next batch (no I/O, no lock in the common case)."""
        if self._closed:
            raise RuntimeError(f"the ledger writer is closed; row for call {row.id} not recorded")
        queue = self._queue
        if len(queue) >= self.max_pending:
            self._dropped += 1  # approximate under contention; it only feeds a counter
        queue.append(row)
        if len(queue) >= self.batch_size and not self._backing_off and not self._wake.is_set():
            self._wake.set()

    # -- control -------------------------------------------------------------------------------

    @property
    def stats(self) -> WriterStats:
        """Counters since the writer started."""
        return WriterStats(
            pending=len(self._queue) + len(self._held),
            written=self._written,
            dropped=self._dropped,
            rejected=self._rejected,
            failures=self._failures,
            pruned=self._pruned,
        )

    def flush(self) -> None:
        """Write every row recorded before this call; LedgerWriteError if they could not be (kept)."""
        if self._closed:
            return
        self._flush(stop=False)

    def close(self) -> None:
        """Flush, stop the thread, close the ledger; idempotent. LedgerWriteError if rows were lost."""
        with self._state:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        try:
            self._flush(stop=True)
        finally:
            self._thread.join()
            self.ledger.close()

    def _close_at_exit(self) -> None:
        with contextlib.suppress(LedgerWriteError):  # logged as event=ledger_rows_lost already
            self.close()

    def _flush(self, *, stop: bool) -> None:
        with self._state:
            self._requested += 1
            ticket = self._requested
            self._stopping = self._stopping or stop
            self._wake.set()
            while self._completed < ticket:
                if not self._thread.is_alive():
                    raise RuntimeError("the ledger writer thread has stopped; see the log for why")
                self._state.wait(timeout=0.5)
            error = self._flush_error
        if error is not None:
            raise error

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.flush_interval
        while True:
            self._sleep(delay)
            with self._state:
                ticket, stopping = self._requested, self._stopping
            # Rows recorded before a flush request are queued by now: draining what is queued
            # covers them, and bounding the drain keeps a busy queue from starving the request.
            error = self._drain(None if stopping else len(self._queue))
            self._backing_off = error is not None
            delay = self.flush_interval if error is None else min(self.max_backoff, delay * 2)
            self._report_drops()
            with self._state:
                self._completed = ticket
                self._flush_error = error
                self._state.notify_all()
            if stopping:
                if error is not None:
                    log.error("event=ledger_rows_lost rows=%d error=%r", self.stats.pending, str(error))
                return
            if error is None:
                self._prune_if_due()

    def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds or until woken; while backing off, only a flush or close cuts it short."""
        deadline = time.monotonic() + delay
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._wake.wait(remaining):
                return
            self._wake.clear()
            if not self._backing_off or self._completed < self._requested:
                return

    def _drain(self, limit: int | None) -> LedgerWriteError | None:
        """Write the held batch, then up to ``limit`` queued rows (all when None), batch by batch."""
        budget = len(self._queue) if limit is None else limit
        while True:
            if not self._held:
                take = min(self.batch_size, budget, len(self._queue))
                if take <= 0:
                    return None
                self._held = [self._queue.popleft() for _ in range(take)]
                budget -= take
            try:
                self._write_isolating(self._held)
            except LedgerWriteError as exc:
                self._failures += 1
                log.warning(
                    "event=ledger_write_failed rows=%d pending=%d error=%r",
                    len(self._held),
                    len(self._queue),
                    str(exc),
                )
                return exc

    def _write_isolating(self, rows: list[LedgerRow]) -> None:
        """Write ``rows``; when the ledger refuses them as bad data, bisect to drop only the bad rows."""
        try:
            self.ledger.write(rows)
        except LedgerWriteError as exc:
            if exc.retryable:
                raise
            if len(rows) > 1:
                mid = len(rows) // 2
                self._write_isolating(rows[:mid])
                self._write_isolating(rows[mid:])
                return
            self._rejected += 1
            log.error("event=ledger_row_rejected call_id=%s error=%r", rows[0].id, str(exc))
            self._settle(rows, written=False)
            return
        self._settle(rows, written=True)

    def _settle(self, rows: list[LedgerRow], *, written: bool) -> None:
        """Forget ``rows`` from the held batch, so a retry after a later failure does not count them twice."""
        if written:
            self._written += len(rows)
        if rows is self._held:
            self._held = []
        else:
            gone = {id(r) for r in rows}
            self._held = [r for r in self._held if id(r) not in gone]

    def _prune_if_due(self) -> None:
        """Delete expired rows in chunks for at most a quarter second; the rest after the next batch."""
        if self.retention is None or time.monotonic() < self._next_prune:
            return
        cutoff = time.time() - self.retention
        stop_at = time.monotonic() + 0.25
        deleted = 0
        try:
            while True:
                n = self.ledger.delete_before(cutoff, limit=self.prune_chunk)
                deleted += n
                if n < self.prune_chunk:
                    self._next_prune = time.monotonic() + self.retention_check
                    break
                if time.monotonic() > stop_at or len(self._queue) >= self.batch_size:
                    break  # still due: goes on after the next batch
        except LedgerWriteError as exc:
            log.warning("event=ledger_prune_failed error=%r", str(exc))
            self._next_prune = time.monotonic() + min(self.retention_check, 60.0)
        self._pruned += deleted
        if deleted:
            log.info("event=ledger_pruned rows=%d before=%.0f", deleted, cutoff)

    def _report_drops(self) -> None:
        dropped = self._dropped
        if dropped > self._reported_drops:
            log.error(
                "event=ledger_rows_dropped dropped=%d total_dropped=%d max_pending=%d",
                dropped - self._reported_drops,
                dropped,
                self.max_pending,
            )
            self._reported_drops = dropped
