"""The eval store's contract, run on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.pg_schema import fresh_schema

from keel.errors import ConfigError
from keel.evals.store import CaseResult, EvalStore, Run, open_eval_store

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    if request.param == "sqlite":
        yield tmp_path / "keel.db"
        return
    with fresh_schema("keel_evals") as url:
        yield url


@pytest.fixture
def store(target: str | Path) -> Iterator[EvalStore]:
    with open_eval_store(target) as s:
        yield s


def _run(run_id: str, passed: list[bool]) -> Run:
    results = [
        CaseResult(f"c{i}", p, 1.0 if p else 0.25, f"out {i}", 12.5, 0.000123, i % 2 == 0, None if p else "x",
                   [{"type": "contains", "pass": p, "score": 1.0, "reason": "r", "weight": 1.0}])
        for i, p in enumerate(passed)
    ]  # fmt: skip
    return Run(run_id, "suite", "support", "support@3", "m", 1_764_000_000.5, results)


def test_a_saved_run_loads_back_exactly(store: EvalStore) -> None:
    run = _run("aaaa1111", [True, False, True, True, False, True, True, True, True, True, True, True])
    store.save(run)
    back = store.load("aaaa1111")
    assert back == run  # the cases in their order, every field, outcomes included
    [listed] = store.runs()
    assert listed["id"] == "aaaa1111" and listed["passed"] == 10 and listed["cases"] == 12
    assert listed["created_at"] == 1_764_000_000.5 and listed["cost_usd"] == pytest.approx(0.000123 * 6)


def test_ids_prefixes_and_latest_resolve(store: EvalStore) -> None:
    store.save(_run("aaaa1111", [True]))
    store.save(_run("bbbb2222", [False]))
    assert store.resolve("latest") == "bbbb2222" and store.resolve("latest~1") == "aaaa1111"
    assert store.load("aaaa").results[0].passed and [r["id"] for r in store.runs()] == [
        "bbbb2222",
        "aaaa1111",
    ]
    with pytest.raises(ConfigError, match="no eval run 'latest~5'"):
        store.resolve("latest~5")
    with pytest.raises(ConfigError, match="bad run reference"):
        store.resolve("latest~x")
    with pytest.raises(ConfigError, match="no eval run 'cccc'"):
        store.resolve("cccc")


def test_the_cache_keeps_the_last_value_per_key(store: EvalStore) -> None:
    assert store.cached("k") is None
    store.remember("k", {"output": "one", "latency_ms": 1.0})
    store.remember("k", {"output": "two", "latency_ms": 2.0})
    assert store.cached("k") == {"output": "two", "latency_ms": 2.0}


def test_concurrent_savers_get_distinct_sequence_numbers(target: str | Path) -> None:
    errors: list[BaseException] = []

    def save(i: int) -> None:
        try:
            with open_eval_store(target) as s:
                s.save(_run(f"run{i:05d}", [True]))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_eval_store(target) as s:
        assert len({s.resolve(f"latest~{n}") for n in range(6)}) == 6
