"""The key-store contract (every store passes it) on memory, SQLite and PostgreSQL; then each one's own."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from tests.pg_schema import fresh_schema

from keel.errors import InvalidRequest, StateUnavailable
from keel.keys import hash_key
from keel.keystore import KeySpec, KeyStore, MemoryKeyStore, SQLiteKeyStore, issue_key, parse_budgets
from keel.keystore.postgres import PostgresKeyStore
from keel.monitor.sqlite_ledger import SQLiteLedger
from keel.settings import Budget, RateLimit

pytestmark = pytest.mark.unit


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    if request.param == "postgres":
        with fresh_schema() as url, PostgresKeyStore(url) as pg:
            yield pg
        return
    s: KeyStore = MemoryKeyStore() if request.param == "memory" else SQLiteKeyStore(tmp_path / "k.db")
    with s:
        yield s


def test_an_issued_key_is_stored_as_its_hash_with_a_display_prefix_and_its_scopes(store: KeyStore) -> None:
    spec = KeySpec(
        "app",
        features=("support",),
        models=("small", "big"),
        admin=True,
        rate_limit=RateLimit(rpm=5),
        budget=Budget(usd_per_day=10),
    )
    secret, record = issue_key(store, spec, now=100.0)
    assert secret.startswith("sk-keel-") and len(secret) > 40
    (stored,) = store.list_keys()
    assert stored == record
    assert stored.hash == hash_key(secret) and stored.prefix == secret[:12] and stored.active
    assert stored.spec == spec and stored.created_at == 100.0
    config = stored.to_key_config()
    assert config.name == "app" and config.features == ["support"] and config.models == ["small", "big"]
    assert config.admin and config.rate_limit == RateLimit(rpm=5) and config.budget == Budget(usd_per_day=10)
    public = stored.to_public()
    assert secret not in str(public) and stored.hash not in str(public)


def test_names_are_unique_among_active_keys_and_free_again_once_revoked(store: KeyStore) -> None:
    _, first = issue_key(store, KeySpec("app"), now=1.0)
    with pytest.raises(InvalidRequest, match="an active key named 'app' already exists"):
        issue_key(store, KeySpec("app"))
    gone = store.revoke("app", now=2.0)
    assert gone.id == first.id and gone.revoked_at == 2.0 and not gone.active
    _, second = issue_key(store, KeySpec("app"), now=3.0)
    assert [k.id for k in store.list_keys()] == [second.id]
    assert [(k.id, k.revoked_at) for k in store.list_keys(include_revoked=True)] == [
        (first.id, 2.0),
        (second.id, None),
    ]


def test_revoking_an_unknown_or_revoked_name_is_refused(store: KeyStore) -> None:
    with pytest.raises(InvalidRequest, match="no active key named 'nobody'"):
        store.revoke("nobody")
    issue_key(store, KeySpec("app"))
    store.revoke("app")
    with pytest.raises(InvalidRequest, match="no active key named 'app'"):
        store.revoke("app")


def test_the_revision_changes_with_every_create_and_revoke_and_remembers_keys_ever_made(
    store: KeyStore,
) -> None:
    empty = store.revision()
    assert not empty.ever_had_keys
    issue_key(store, KeySpec("a"))
    one = store.revision()
    issue_key(store, KeySpec("b"))
    two = store.revision()
    store.revoke("a")
    store.revoke("b")
    none_left = store.revision()
    assert len({empty, one, two, none_left}) == 4
    assert none_left.ever_had_keys and store.list_keys() == []


def test_a_key_name_must_be_a_plain_name() -> None:
    with pytest.raises(InvalidRequest, match="invalid key name"):
        KeySpec("two words")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["10/day"], Budget(usd_per_day=10)),
        (["$200/month", "2.5/day"], Budget(usd_per_day=2.5, usd_per_month=200)),
        ([], None),
    ],
)
def test_budgets_are_parsed_from_amount_per_period(values: list[str], expected: Budget | None) -> None:
    assert parse_budgets(values) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["10/week"], "expected AMOUNT/day or AMOUNT/month"),
        (["ten/day"], "expected AMOUNT/day"),
        (["0/day"], "more than 0"),
        (["1/day", "2/day"], "the day budget is given twice"),
    ],
)
def test_bad_budgets_are_refused_with_the_value(values: list[str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_budgets(values)


# -- SQLite's own promises ----------------------------------------------------------------------


def test_reading_a_missing_file_finds_no_keys_and_creates_nothing(tmp_path: Path) -> None:
    store = SQLiteKeyStore(tmp_path / "sub" / "k.db")
    assert store.list_keys() == [] and not store.revision().ever_had_keys
    with pytest.raises(InvalidRequest):
        store.revoke("app")
    assert not (tmp_path / "sub").exists()


def test_the_key_table_shares_the_ledger_file_with_its_own_migrations_and_never_holds_a_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keel.db"
    SQLiteLedger(path).close()
    secret, _ = issue_key(SQLiteKeyStore(path), KeySpec("app", budget=Budget(usd_per_month=5)))
    issue_key(SQLiteKeyStore(path), KeySpec("other"))  # a second process: migrations are not re-run
    with closing(sqlite3.connect(path)) as db:
        migrations = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    assert migrations == ["keys.m001_create_api_keys", "ledger.m001_create_calls"]
    assert {"calls", "api_keys"} <= tables and mode == "wal"
    raw = path.read_bytes() + (
        path.with_name("keel.db-wal").read_bytes() if path.with_name("keel.db-wal").exists() else b""
    )
    assert secret.encode() not in raw and secret[12:].encode() not in raw
    assert hash_key(secret).encode() in raw  # what is stored instead


def test_two_stores_on_one_file_see_each_others_keys(tmp_path: Path) -> None:
    a, b = SQLiteKeyStore(tmp_path / "k.db"), SQLiteKeyStore(tmp_path / "k.db")
    issue_key(a, KeySpec("app"))
    assert [k.name for k in b.list_keys()] == ["app"]
    b.revoke("app")
    assert a.list_keys() == [] and a.revision() == b.revision()


# -- PostgreSQL's own promises -------------------------------------------------------------------


@pytest.mark.integration
def test_replicas_on_one_postgres_schema_share_keys_and_one_name_is_won_by_one_create() -> None:
    with fresh_schema() as url:
        replicas = [PostgresKeyStore(url) for _ in range(4)]
        won: list[str] = []
        refused: list[str] = []

        def create(store: KeyStore) -> None:
            try:
                won.append(issue_key(store, KeySpec("app"))[0])
            except InvalidRequest as exc:
                refused.append(exc.message)

        threads = [threading.Thread(target=create, args=(r,)) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1 and len(refused) == 3
        assert all("an active key named 'app' already exists" in m for m in refused)
        (seen,) = {tuple(k.hash for k in r.list_keys()) for r in replicas}
        assert seen == (hash_key(won[0]),)
        replicas[1].revoke("app")
        assert all(r.list_keys() == [] and r.revision() == replicas[0].revision() for r in replicas)


@pytest.mark.integration
def test_an_unreachable_postgres_is_a_one_line_error_without_the_password() -> None:
    store = PostgresKeyStore("postgresql://keel:s3cret@127.0.0.1:9/keel?schema=k", connect_timeout=1)
    with pytest.raises(StateUnavailable) as failed:
        store.list_keys()
    assert "s3cret" not in failed.value.message and "\n" not in failed.value.message
    assert failed.value.message.startswith("key store postgresql://keel:***@127.0.0.1:9/keel")
