"""The ledger contract (every backend passes it), run here against SQLite, plus SQLite's own promises."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import MISSING, fields, replace
from pathlib import Path

import pytest

from keel.call import Action, Call, Status, Usage, Verdict
from keel.errors import ConfigError, InputRejected, LedgerWriteError, UpstreamStatusError
from keel.monitor.ledger import Ledger, LedgerRow
from keel.monitor.sqlite_ledger import SQLiteLedger

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
CONTENT = "my card is 4111 and my secret plan is to leave"  # must never reach the ledger


def row(id: str, **kw: object) -> LedgerRow:
    """A hand-made row; ``ts`` defaults to a minute before NOW."""
    return LedgerRow(id=id, **{"ts": NOW - 60, "feature": "support", **kw})  # type: ignore[arg-type]


def full_row() -> LedgerRow:
    """A row with every field away from its default."""
    return LedgerRow(
        id="c1",
        ts=NOW - 1.25,
        feature="support",
        key_id="team-a",
        model="small",
        provider="openai",
        upstream_model="gpt-4o-mini-2024-07-18",
        prompt_name="support",
        prompt_version="3",
        status="blocked",
        http_status=400,
        error_code="prompt_injection",
        input_tokens=812,
        output_tokens=164,
        cached_input_tokens=256,
        tokens_estimated=True,
        cost_usd=0.000221,
        saved_usd=0.5,
        latency_ms=417.25,
        ttft_ms=120.5,
        t_input_ms=0.21,
        t_context_ms=3.4,
        t_llm_ms=412.0,
        t_validation_ms=0.8,
        stream=True,
        cache="semantic",
        route="small: short question",
        verdicts=[
            {"stage": "input.injection", "action": "block", "reason": "prompt_injection", "score": 0.97}
        ],
        counters={"input.invisible_removed": 2},
        metadata={"tenant": "acme", "nested": {"a": [1, 2]}, "flag": True},
    )


class LedgerContract:
    """What every Ledger backend guarantees; a backend's test class subclasses it, providing ``ledger``."""

    @pytest.fixture
    def ledger(self, tmp_path: Path) -> Iterator[Ledger]:
        raise NotImplementedError

    def test_a_row_round_trips_with_every_field(self, ledger: Ledger) -> None:
        original = full_row()
        for f in fields(LedgerRow):
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            assert getattr(original, f.name) != default, f"full_row() leaves {f.name} at its default"
        ledger.write([original])
        assert ledger.rows() == [original]

    def test_a_row_from_a_call_keeps_outcome_tokens_and_timings_but_no_content(self, ledger: Ledger) -> None:
        call = Call(feature="support", messages=[{"role": "user", "content": CONTENT}], key_id="team-a")
        call.model, call.provider = "small", "openai"
        call.usage = Usage(input_tokens=10, output_tokens=3, cost_usd=0.002, estimated=True)
        call.timings = {"input": 1.0, "llm": 40.0, "total": 45.5}
        call.add_verdict(Verdict("input.pii", Action.MODIFY, "email_redacted", detail="1 email"))
        call.count("input.invisible_removed", 4)
        call.status = Status.ERROR
        call.error = UpstreamStatusError("upstream said 503", upstream_status=503)
        ledger.write([LedgerRow.from_call(call)])

        (stored,) = ledger.rows()
        assert (stored.id, stored.ts, stored.key_id, stored.model) == (
            call.id,
            call.started_at,
            "team-a",
            "small",
        )
        assert (stored.status, stored.http_status, stored.error_code) == ("error", 502, "upstream_error")
        assert (stored.input_tokens, stored.output_tokens, stored.tokens_estimated) == (10, 3, True)
        assert (stored.latency_ms, stored.t_input_ms, stored.t_llm_ms, stored.t_context_ms) == (
            45.5,
            1.0,
            40.0,
            None,
        )
        assert stored.verdicts == [
            {"stage": "input.pii", "action": "modify", "reason": "email_redacted", "detail": "1 email"}
        ]
        assert stored.counters == {"input.invisible_removed": 4}
        assert CONTENT not in repr(stored)

    def test_a_blocked_call_records_the_status_the_caller_got(self, ledger: Ledger) -> None:
        call = Call(feature="support", messages=[{"role": "user", "content": "hi"}])
        call.status = Status.BLOCKED
        call.error = InputRejected("blocked", code="prompt_injection")
        ledger.write([LedgerRow.from_call(call)])
        (stored,) = ledger.rows()
        assert (stored.status, stored.http_status, stored.error_code) == ("blocked", 400, "prompt_injection")

    def test_rows_come_newest_first_filtered_by_since_and_limit(self, ledger: Ledger) -> None:
        ledger.write([row(f"r{i}", ts=NOW - 100 + i) for i in range(10)])
        assert [r.id for r in ledger.rows(limit=3)] == ["r9", "r8", "r7"]
        assert [r.id for r in ledger.rows(since=NOW - 93)] == ["r9", "r8", "r7"]
        assert len(ledger.rows(limit=100)) == 10

    def test_a_batch_with_a_bad_row_writes_nothing(self, ledger: Ledger) -> None:
        ledger.write([row("before")])
        batch = [row("a"), row("b"), row("bad", feature="lone surrogate \udcff"), row("c")]
        with pytest.raises(LedgerWriteError) as info:
            ledger.write(batch)
        assert info.value.retryable is False
        assert [r.id for r in ledger.rows()] == ["before"]

    def test_writing_a_stored_id_again_keeps_the_first_row(self, ledger: Ledger) -> None:
        ledger.write([row("same", input_tokens=1)])
        ledger.write([row("same", input_tokens=2), row("other")])
        assert sorted((r.id, r.input_tokens) for r in ledger.rows()) == [("other", 0), ("same", 1)]

    def test_summarize_totals_each_group_most_expensive_first(self, ledger: Ledger) -> None:
        ledger.write(
            [
                row(
                    "1", feature="cheap", input_tokens=100, output_tokens=10, cost_usd=0.001, latency_ms=10.0
                ),
                row("2", feature="cheap", status="error", http_status=502, latency_ms=20.0),
                row(
                    "3", feature="dear", input_tokens=5000, output_tokens=900, cost_usd=0.25, latency_ms=900.0
                ),
                row("4", feature="dear", status="blocked", http_status=400),
                row("5", feature="dear", cache="exact", saved_usd=0.25, latency_ms=2.0),
                row("6", feature="dear", cache="semantic", saved_usd=0.125, latency_ms=4.0),
            ]
        )
        dear, cheap = ledger.summarize(since=None, by="feature")
        assert (dear.group, dear.calls, dear.errors, dear.blocked, dear.cache_hits) == ("dear", 4, 0, 1, 2)
        assert (dear.input_tokens, dear.output_tokens) == (5000, 900)
        assert dear.cost_usd == pytest.approx(0.25)
        assert dear.saved_usd == pytest.approx(0.375)
        assert (cheap.group, cheap.calls, cheap.errors, cheap.blocked, cheap.cache_hits) == (
            "cheap",
            2,
            1,
            0,
            0,
        )
        assert cheap.cost_usd == pytest.approx(0.001)

    def test_latency_percentiles_interpolate_between_ranks(self, ledger: Ledger) -> None:
        # ten latencies 10..100: p50 sits halfway between 50 and 60, p95 halfway between 90 and 100
        ledger.write([row(f"a{i}", feature="a", latency_ms=float(10 * i)) for i in range(10, 0, -1)])
        ledger.write([row("b1", feature="b", latency_ms=7.0), row("b2", feature="b")])  # b2: no latency
        ledger.write([row("c1", feature="c")])
        by_group = {s.group: s for s in ledger.summarize(since=None, by="feature")}
        assert by_group["a"].latency_p50_ms == pytest.approx(55.0)
        assert by_group["a"].latency_p95_ms == pytest.approx(95.5)
        assert (by_group["b"].latency_p50_ms, by_group["b"].latency_p95_ms, by_group["b"].calls) == (
            7.0,
            7.0,
            2,
        )
        assert (by_group["c"].latency_p50_ms, by_group["c"].latency_p95_ms) == (None, None)

    def test_summarize_by_key_and_model_keeps_calls_without_one_in_a_none_group(self, ledger: Ledger) -> None:
        ledger.write(
            [
                row("1", key_id="team-a", model="small", cost_usd=0.5),
                row("2", key_id="team-a", model="large", cost_usd=1.0),
                row("3", key_id=None, model=None),
            ]
        )
        assert [(s.group, s.calls) for s in ledger.summarize(since=None, by="key")] == [
            ("team-a", 2),
            (None, 1),
        ]
        assert [s.group for s in ledger.summarize(since=None, by="model")] == ["large", "small", None]

    def test_summarize_counts_only_calls_since(self, ledger: Ledger) -> None:
        ledger.write([row("old", ts=NOW - 7200, cost_usd=9.0), row("new", ts=NOW - 60, cost_usd=1.0)])
        (s,) = ledger.summarize(since=NOW - 3600, by="feature")
        assert (s.calls, s.cost_usd) == (1, 1.0)
        assert ledger.summarize(since=NOW, by="feature") == []

    def test_close_is_idempotent(self, ledger: Ledger) -> None:
        ledger.close()
        ledger.close()


class TestSQLiteLedgerContract(LedgerContract):
    @pytest.fixture
    def ledger(self, tmp_path: Path) -> Iterator[Ledger]:
        with SQLiteLedger(tmp_path / "ledger.db") as ledger:
            yield ledger


def _cells(path: Path) -> list[object]:
    with closing(sqlite3.connect(path)) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [cell for t in tables for r in db.execute(f'SELECT * FROM "{t}"') for cell in r]


def test_opening_creates_the_directory_and_applies_migrations_once(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "keel.db"
    with SQLiteLedger(path) as ledger:
        ledger.write([row("kept")])
    with SQLiteLedger(path) as ledger:
        assert [r.id for r in ledger.rows()] == ["kept"]
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert [n for (n,) in db.execute("SELECT name FROM _migrations")] == ["ledger.m001_create_calls"]


def test_the_database_holds_no_message_content(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    call = Call(feature="support", messages=[{"role": "user", "content": CONTENT}], key_id="team-a")
    with SQLiteLedger(path) as ledger:
        ledger.write([LedgerRow.from_call(call)])
    cells = _cells(path)
    assert call.id in cells
    assert "team-a" in cells
    assert not any(isinstance(c, str) and "secret plan" in c for c in cells)


def test_reports_read_while_the_writer_holds_a_transaction(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    with SQLiteLedger(path, busy_timeout=0) as ledger:  # no waiting: a blocked read would raise
        ledger.write([row("committed")])
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            other.execute(
                "INSERT INTO calls (id, ts, feature, status, http_status, input_tokens, output_tokens,"
                " cached_input_tokens, tokens_estimated, cost_usd, saved_usd, stream, verdicts, counters,"
                " metadata) VALUES ('uncommitted', 0, 'x', 'ok', 200, 0, 0, 0, 0, 0, 0, 0, '[]', '{}', '{}')"
            )
            assert [r.id for r in ledger.rows()] == ["committed"]
            assert [s.calls for s in ledger.summarize(since=None, by="feature")] == [1]
            other.execute("ROLLBACK")


def test_a_locked_database_is_a_retryable_error_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    with SQLiteLedger(path, busy_timeout=0.05) as ledger:
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(LedgerWriteError) as info:
                ledger.write([row("a"), row("b")])
            other.execute("ROLLBACK")
        assert info.value.retryable is True
        assert "locked" in str(info.value)
        assert ledger.rows() == []
        ledger.write([row("a"), row("b")])
        assert len(ledger.rows()) == 2


def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    path.write_bytes(b"this is not sqlite, it is a text file that happens to be here" * 20)
    with pytest.raises(ConfigError, match=r"keel\.db: cannot open: file is not a database"):
        SQLiteLedger(path)


def test_writing_after_close_is_an_error(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "keel.db")
    ledger.close()
    with pytest.raises(LedgerWriteError, match="closed"):
        ledger.write([replace(row("late"))])
