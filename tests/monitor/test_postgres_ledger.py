"""The ledger contract run against a real PostgreSQL, plus what only the PostgreSQL ledger promises."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from ledger_contract import LedgerContract, row
from tests.pg_schema import fresh_schema, postgres_or_skip

from keel.errors import ConfigError, LedgerWriteError
from keel.monitor.ledger import Ledger, LedgerWriter
from keel.monitor.open import open_ledger
from keel.monitor.postgres_ledger import PostgresLedger

pytestmark = pytest.mark.integration


class TestPostgresLedgerContract(LedgerContract):
    @pytest.fixture
    def ledger(self, tmp_path: Path) -> Iterator[Ledger]:
        with fresh_schema() as url, PostgresLedger(url) as ledger:
            yield ledger


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as u:
        yield u


def _tables(url: str, schema: str) -> dict[str, list[str]]:
    base = url.split("?", 1)[0]
    with psycopg.connect(base) as conn:
        names = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,)
        ).fetchall()
        applied = conn.execute(f'SELECT name FROM "{schema}"._migrations ORDER BY name').fetchall()
    return {"tables": [n for (n,) in names], "migrations": [n for (n,) in applied]}


def test_opening_creates_the_schema_and_applies_migrations_once(url: str) -> None:
    with PostgresLedger(url) as ledger:
        ledger.write([row("kept")])
        schema = ledger.schema
    with PostgresLedger(url) as ledger:
        assert [r.id for r in ledger.rows()] == ["kept"]
    assert schema.startswith("keel_test_")
    assert _tables(url, schema) == {
        "tables": ["_migrations", "calls"],
        "migrations": ["ledger.m001_create_calls"],
    }


def test_replicas_starting_together_migrate_once(url: str) -> None:
    errors: list[BaseException] = []
    opened: list[PostgresLedger] = []

    def start() -> None:
        try:
            opened.append(PostgresLedger(url))
        except ConfigError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ledger in opened:
        ledger.close()
    assert errors == []
    assert len(opened) == 4


def test_open_ledger_picks_postgres_for_a_postgresql_url(url: str) -> None:
    with open_ledger(url) as ledger:
        assert isinstance(ledger, PostgresLedger)


def test_an_unreachable_server_is_a_one_line_error_without_the_password() -> None:
    postgres_or_skip()
    with pytest.raises(ConfigError) as info:
        PostgresLedger("postgresql://keel:hunter2@127.0.0.1:1/nowhere", connect_timeout=1)
    message = str(info.value)
    assert message.startswith("ledger postgresql://keel:***@127.0.0.1:1/nowhere: cannot open:")
    assert "hunter2" not in message
    assert "\n" not in message


def test_a_bad_schema_name_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="schema 'no-dashes'"):
        PostgresLedger(url.split("?", 1)[0], schema="no-dashes")


def test_a_lost_connection_is_a_retryable_error_and_the_next_batch_reconnects(url: str) -> None:
    with PostgresLedger(url) as ledger:
        ledger.write([row("before")])
        with psycopg.connect(url.split("?", 1)[0], autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'keel-ledger' AND pid <> pg_backend_pid()"
                " AND datname = current_database() AND query NOT LIKE '%%pg_terminate_backend%%'"
            )
        with pytest.raises(LedgerWriteError) as info:
            ledger.write([row("during")])
        assert info.value.retryable is True
        ledger.write([row("during"), row("after")])
        assert sorted(r.id for r in ledger.rows()) == ["after", "before", "during"]


def test_the_writer_thread_writes_batches_into_postgres(url: str) -> None:
    writer = LedgerWriter(PostgresLedger(url), flush_interval=0.05, batch_size=100)
    for i in range(1000):
        writer.record(row(f"w{i:04}"))
    writer.close()
    with PostgresLedger(url) as reader:
        assert len(reader.rows(limit=5000)) == 1000
