"""The batching writer: rows land in batches off the caller's thread, survive failures, outlive exit."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path

import pytest

from keel.errors import LedgerWriteError
from keel.monitor.ledger import GroupBy, Ledger, LedgerRow, LedgerWriter, TailPage, VerdictStats
from keel.monitor.sqlite_ledger import SQLiteLedger
from keel.monitor.usage import UsageSummary

NOW = 1_800_000_000.0


def row(id: str, **kw: object) -> LedgerRow:
    return LedgerRow(id=id, **{"ts": NOW, "feature": "support", **kw})  # type: ignore[arg-type]


def ids(ledger: Ledger) -> list[str]:
    return sorted(r.id for r in ledger.rows(limit=100_000))


def eventually(check: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Wait until ``check()`` holds; fail naming ``what`` if it never does (no timing is asserted)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


class Switchable(Ledger):
    """A real SQLite ledger whose writes can be made to fail (retryably) or to block until released."""

    def __init__(self, inner: SQLiteLedger) -> None:
        self.inner = inner
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.deletes: list[int] = []

    def write(self, rows: Sequence[LedgerRow]) -> None:
        self.entered.set()
        self.gate.wait()
        if self.failing:
            raise LedgerWriteError("disk full (simulated)", retryable=True)
        self.inner.write(rows)
        self.batches.append(len(rows))

    def rows(self, *, since: float | None = None, limit: int = 100) -> list[LedgerRow]:
        return self.inner.rows(since=since, limit=limit)

    def summarize(self, *, since: float | None, by: GroupBy) -> list[UsageSummary]:
        return self.inner.summarize(since=since, by=by)

    def tail(self, *, after: int | None, limit: int = 100, feature: str | None = None) -> TailPage:
        return self.inner.tail(after=after, limit=limit, feature=feature)

    def verdict_stats(self, *, since: float | None, stage: str) -> list[VerdictStats]:
        return self.inner.verdict_stats(since=since, stage=stage)

    def delete_before(self, ts: float, *, limit: int = 10_000) -> int:
        if self.failing:
            raise LedgerWriteError("disk full (simulated)", retryable=True)
        n = self.inner.delete_before(ts, limit=limit)
        self.deletes.append(n)
        return n

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def reader(db: Path) -> Iterator[SQLiteLedger]:
    with SQLiteLedger(db) as ledger:
        yield ledger


@pytest.mark.unit
def test_flush_makes_every_recorded_row_durable(db: Path, reader: SQLiteLedger) -> None:
    writer = LedgerWriter(SQLiteLedger(db), flush_interval=60)
    for i in range(2500):
        writer.record(row(f"r{i:04}"))
    writer.flush()
    assert ids(reader) == [f"r{i:04}" for i in range(2500)]
    assert writer.stats.written == 2500
    writer.close()


@pytest.mark.unit
def test_a_full_batch_is_written_without_waiting_for_the_interval(db: Path, reader: SQLiteLedger) -> None:
    writer = LedgerWriter(SQLiteLedger(db), flush_interval=60, batch_size=10)
    for i in range(10):
        writer.record(row(f"r{i}"))
    eventually(lambda: len(ids(reader)) == 10, "a full batch written before the 60 s interval")
    writer.close()


@pytest.mark.unit
def test_rows_are_written_every_interval_without_a_flush(db: Path, reader: SQLiteLedger) -> None:
    writer = LedgerWriter(SQLiteLedger(db), flush_interval=0.05, batch_size=1000)
    writer.record(row("lonely"))
    eventually(lambda: ids(reader) == ["lonely"], "the interval flush")
    writer.close()


@pytest.mark.unit
def test_close_flushes_and_later_records_are_refused(db: Path, reader: SQLiteLedger) -> None:
    writer = LedgerWriter(SQLiteLedger(db), flush_interval=60)
    writer.record(row("a"))
    writer.record(row("b"))
    writer.close()
    assert ids(reader) == ["a", "b"]
    writer.close()  # idempotent
    writer.flush()  # nothing left to do
    with pytest.raises(RuntimeError, match="closed"):
        writer.record(row("late"))


@pytest.mark.unit
def test_rows_recorded_from_many_threads_all_arrive(db: Path, reader: SQLiteLedger) -> None:
    writer = LedgerWriter(SQLiteLedger(db), flush_interval=0.01, batch_size=50)

    def produce(t: int) -> None:
        for i in range(500):
            writer.record(row(f"t{t}-{i:03}"))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert len(ids(reader)) == 2000


@pytest.mark.unit
@pytest.mark.timeout(30)
def test_record_never_waits_for_a_slow_write(db: Path, reader: SQLiteLedger) -> None:
    slow = Switchable(SQLiteLedger(db))
    slow.gate.clear()  # the next write blocks until the gate opens
    writer = LedgerWriter(slow, flush_interval=60, batch_size=5)
    for i in range(5):
        writer.record(row(f"first{i}"))
    assert slow.entered.wait(10), "the writer thread never started the batch"
    # The writer thread is stuck inside write(); recording must still return at once.
    for i in range(2000):
        writer.record(row(f"later{i:04}"))
    assert writer.stats.pending == 2005
    assert ids(reader) == []
    slow.gate.set()
    writer.flush()
    assert len(ids(reader)) == 2005
    writer.close()


@pytest.mark.unit
def test_a_failed_batch_is_kept_logged_and_retried(
    db: Path, reader: SQLiteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Switchable(SQLiteLedger(db))
    flaky.failing = True
    writer = LedgerWriter(flaky, flush_interval=60)
    for i in range(3):
        writer.record(row(f"r{i}"))
    with caplog.at_level(logging.WARNING, logger="keel.ledger"), pytest.raises(LedgerWriteError):
        writer.flush()
    assert ids(reader) == []
    assert writer.stats.pending == 3
    assert writer.stats.failures == 1
    assert any("event=ledger_write_failed rows=3" in r.getMessage() for r in caplog.records)
    flaky.failing = False
    writer.flush()
    assert ids(reader) == ["r0", "r1", "r2"]
    assert writer.stats.pending == 0
    writer.close()


@pytest.mark.unit
def test_a_row_failing_mid_batch_leaves_nothing_then_the_batch_is_retried(
    db: Path, reader: SQLiteLedger
) -> None:
    # A real mid-batch failure inside SQLite: a trigger errors on the third row while the fault is on.
    with closing(sqlite3.connect(db, isolation_level=None)) as admin:
        admin.execute("CREATE TABLE fault (broken INTEGER)")
        admin.execute("INSERT INTO fault VALUES (1)")
        admin.execute(
            "CREATE TRIGGER fail_third BEFORE INSERT ON calls"
            " WHEN NEW.id = 'r2' AND (SELECT broken FROM fault) BEGIN SELECT json('not json'); END"
        )
        writer = LedgerWriter(SQLiteLedger(db), flush_interval=60)
        for i in range(5):
            writer.record(row(f"r{i}"))
        with pytest.raises(LedgerWriteError, match="malformed JSON") as info:
            writer.flush()
        assert info.value.retryable is True
        assert ids(reader) == []  # r0 and r1 were inserted before r2 failed: rolled back with it
        admin.execute("UPDATE fault SET broken = 0")
    writer.flush()
    assert ids(reader) == ["r0", "r1", "r2", "r3", "r4"]
    writer.close()


@pytest.mark.unit
def test_a_locked_database_delays_rows_but_loses_none(db: Path, reader: SQLiteLedger) -> None:
    writer = LedgerWriter(SQLiteLedger(db, busy_timeout=0.05), flush_interval=60)
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        writer.record(row("a"))
        with pytest.raises(LedgerWriteError, match="locked"):
            writer.flush()
        other.execute("COMMIT")
    writer.record(row("b"))
    writer.flush()
    assert ids(reader) == ["a", "b"]
    writer.close()


@pytest.mark.unit
def test_a_bad_row_is_rejected_alone_and_the_rest_of_its_batch_is_written(
    db: Path, reader: SQLiteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    writer = LedgerWriter(SQLiteLedger(db), flush_interval=60)
    for i in range(7):
        writer.record(row(f"r{i}", feature="bad \udcff" if i == 4 else "support"))
    with caplog.at_level(logging.ERROR, logger="keel.ledger"):
        writer.flush()
    assert ids(reader) == ["r0", "r1", "r2", "r3", "r5", "r6"]
    assert (writer.stats.written, writer.stats.rejected, writer.stats.pending) == (6, 1, 0)
    assert any("event=ledger_row_rejected call_id=r4" in r.getMessage() for r in caplog.records)
    writer.close()


@pytest.mark.unit
def test_while_the_ledger_fails_the_queue_is_bounded_and_drops_the_oldest(
    db: Path, reader: SQLiteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Switchable(SQLiteLedger(db))
    broken.failing = True
    writer = LedgerWriter(broken, flush_interval=60, batch_size=100, max_pending=5)
    for i in range(8):
        writer.record(row(f"r{i}"))
    with caplog.at_level(logging.ERROR, logger="keel.ledger"), pytest.raises(LedgerWriteError):
        writer.flush()
    assert (writer.stats.dropped, writer.stats.pending) == (3, 5)
    assert any("event=ledger_rows_dropped dropped=3" in r.getMessage() for r in caplog.records)
    broken.failing = False
    writer.close()
    assert ids(reader) == ["r3", "r4", "r5", "r6", "r7"]


@pytest.mark.unit
def test_close_reports_rows_it_could_not_write(db: Path, reader: SQLiteLedger) -> None:
    broken = Switchable(SQLiteLedger(db))
    broken.failing = True
    writer = LedgerWriter(broken, flush_interval=60)
    writer.record(row("lost"))
    with pytest.raises(LedgerWriteError):
        writer.close()
    writer.close()  # already closed: nothing more to report


@pytest.mark.integration
def test_rows_are_saved_at_interpreter_exit_without_close(db: Path, reader: SQLiteLedger) -> None:
    script = textwrap.dedent(
        f"""
        from keel.monitor.ledger import LedgerRow, LedgerWriter
        from keel.monitor.sqlite_ledger import SQLiteLedger

        writer = LedgerWriter(SQLiteLedger({str(db)!r}), flush_interval=3600)
        for i in range(3):
            writer.record(LedgerRow(id=f"exit{{i}}", ts=1.0, feature="support"))
        print("recorded")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "recorded"
    assert ids(reader) == ["exit0", "exit1", "exit2"]


@pytest.mark.unit
def test_rows_older_than_the_retention_period_are_deleted_in_chunks_by_the_writer(
    db: Path, reader: SQLiteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    old = [row(f"old{i:02}", ts=now - 10 * 86400 - i) for i in range(25)]
    recent = [row(f"new{i}", ts=now - 3600) for i in range(3)]
    reader.write(old + recent)
    spy = Switchable(SQLiteLedger(db))
    with caplog.at_level(logging.INFO, logger="keel.ledger"):
        writer = LedgerWriter(
            spy, flush_interval=0.02, retention=7 * 86400, prune_chunk=10, retention_check=3600
        )
        eventually(lambda: ids(reader) == ["new0", "new1", "new2"], "the 25 expired rows deleted")
        writer.record(row("fresh", ts=now))
        writer.flush()
        time.sleep(0.1)  # several more intervals: the next check is an hour away, so no more deletes
        writer.close()
    assert spy.deletes == [10, 10, 5]
    assert writer.stats.pruned == 25
    assert ids(reader) == ["fresh", "new0", "new1", "new2"]
    assert any("event=ledger_pruned" in r.getMessage() for r in caplog.records)


@pytest.mark.unit
def test_a_failed_deletion_is_logged_and_does_not_stop_writes(
    db: Path, reader: SQLiteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    reader.write([row("expired", ts=1.0)])
    spy = Switchable(SQLiteLedger(db))
    spy.failing = True
    with caplog.at_level(logging.WARNING, logger="keel.ledger"):
        writer = LedgerWriter(spy, flush_interval=0.02, retention=86400)
        eventually(
            lambda: any("event=ledger_prune_failed" in r.getMessage() for r in caplog.records),
            "a logged failure",
        )
    spy.failing = False
    writer.record(row("kept", ts=time.time()))
    writer.flush()
    writer.close()
    assert "kept" in ids(reader)


@pytest.mark.unit
def test_without_retention_nothing_is_ever_deleted(db: Path, reader: SQLiteLedger) -> None:
    reader.write([row("ancient", ts=1.0)])
    spy = Switchable(SQLiteLedger(db))
    writer = LedgerWriter(spy, flush_interval=0.01)
    writer.record(row("new", ts=time.time()))
    writer.flush()
    time.sleep(0.05)
    writer.close()
    assert spy.deletes == []
    assert ids(reader) == ["ancient", "new"]


@pytest.mark.unit
def test_a_writer_from_settings_takes_interval_batch_pending_and_retention() -> None:
    from keel.monitor.settings import LedgerSettings

    class Nowhere(Switchable):
        def __init__(self) -> None:
            pass

        def close(self) -> None:
            pass

    settings = LedgerSettings.model_validate(
        {"flush_interval": 0.5, "batch_size": 50, "max_pending": 500, "retention_days": 30}
    )
    writer = LedgerWriter.from_settings(Nowhere(), settings)
    try:
        assert (writer.flush_interval, writer.batch_size, writer.max_pending) == (0.5, 50, 500)
        assert writer.retention == 30 * 86400
    finally:
        writer.close()
