"""The embedded SQLite stores sharing one new file: every one that opens it at once comes up.

Several connections switching a new file to WAL at the same moment sometimes get "database is
locked" at once, without SQLite's busy timeout (seen as a prompt registry failing to open in a
loaded test run; 20 of 300 trials of four plain connections on this machine): ``use_wal``
retries."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keel.context.sqlite_index import SQLiteIndex
from keel.evals.review_sqlite import SQLiteReviewStore
from keel.monitor.sqlite_ledger import SQLiteLedger
from keel.prompts.sqlite_registry import SQLitePromptRegistry
from keel.stores.sqlite_migrations import use_wal

pytestmark = pytest.mark.unit


def together(openers: list[Callable[[], Any]]) -> list[BaseException]:
    """Run the openers in threads released at the same moment; the errors they raised."""
    start = threading.Barrier(len(openers))
    errors: list[BaseException] = []

    def run(opener: Callable[[], Any]) -> None:
        start.wait()
        try:
            opener()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(o,)) for o in openers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_connections_switching_a_new_file_to_wal_at_once_all_succeed(tmp_path: Path) -> None:
    def switch(path: Path) -> None:
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            use_wal(db)
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE IF NOT EXISTS t (a)")
            db.execute("COMMIT")
        finally:
            db.close()

    failed = []
    for trial in range(100):
        path = tmp_path / f"{trial}.db"
        failed += together([lambda p=path: switch(p)] * 4)
    assert failed == []


@pytest.mark.parametrize("trial", range(5))
def test_stores_opening_a_new_file_together_all_come_up_in_wal_mode(tmp_path: Path, trial: int) -> None:
    path = tmp_path / "keel.db"
    kinds = [SQLitePromptRegistry, SQLitePromptRegistry, SQLiteLedger, SQLiteReviewStore, SQLiteIndex]
    assert together([lambda k=k: k(path).close() for k in kinds]) == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
