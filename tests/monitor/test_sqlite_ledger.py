"""The ledger contract run against SQLite, plus SQLite's own promises."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from ledger_contract import CONTENT, LedgerContract, row

from keel.call import Call
from keel.errors import ConfigError, LedgerWriteError
from keel.monitor.ledger import Ledger, LedgerRow
from keel.monitor.sqlite_ledger import SQLiteLedger

pytestmark = pytest.mark.unit


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
