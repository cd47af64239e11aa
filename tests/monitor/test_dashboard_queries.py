"""The dashboard's aggregations give the same numbers on SQLite and PostgreSQL, and the right ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.pg_schema import fresh_schema

from keel.monitor.dashboard_queries import DashboardQueries, Filters, bucket_seconds, percentile, queries_for
from keel.monitor.ledger import Ledger, LedgerRow
from keel.monitor.sqlite_ledger import SQLiteLedger

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # a fixed hour boundary, so buckets are known


def _rows() -> list[LedgerRow]:
    block = {"stage": "input.injection", "action": "block", "reason": "injection.signature", "detail": "x"}
    flag = {"stage": "output.pii", "action": "flag", "reason": "pii.email", "score": 0.9}
    return [
        LedgerRow(id="a", ts=T0 + 10, feature="support", key_id="web", model="large", input_tokens=100,
                  output_tokens=50, cost_usd=0.01, latency_ms=100.0, t_llm_ms=90.0, t_input_ms=1.0),
        LedgerRow(id="b", ts=T0 + 20, feature="support", key_id="web", model="large", input_tokens=100,
                  output_tokens=50, cost_usd=0.0, saved_usd=0.01, cache="exact", latency_ms=2.0),
        LedgerRow(id="c", ts=T0 + 4000, feature="support", key_id="web", model="small", route="rule:0",
                  input_tokens=10, output_tokens=5, cost_usd=0.001, saved_usd=0.004, latency_ms=300.0,
                  t_llm_ms=290.0, verdicts=[flag]),
        LedgerRow(id="d", ts=T0 + 4100, feature="extract", key_id="batch", model="small", input_tokens=7,
                  output_tokens=3, cost_usd=0.0005, latency_ms=50.0, ttft_ms=20.0),
        LedgerRow(id="e", ts=T0 + 4200, feature="support", key_id="web", status="blocked", http_status=400,
                  error_code="input_rejected", verdicts=[block], latency_ms=0.5),
        LedgerRow(id="f", ts=T0 + 4300, feature="flaky", key_id="web", model="broken", status="error",
                  http_status=502, error_code="upstream_error", latency_ms=10.0),
        LedgerRow(id="old", ts=T0 - 10, feature="support", key_id="web", model="large", cost_usd=9.0),
    ]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def queries(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DashboardQueries]:
    ledger: Ledger
    if request.param == "sqlite":
        ledger = SQLiteLedger(tmp_path / "ledger.db")
        ledger.write(_rows())
        yield queries_for(ledger)
        ledger.close()
        return
    from keel.monitor.postgres_ledger import PostgresLedger

    with fresh_schema() as url:
        ledger = PostgresLedger(url)
        ledger.write(_rows())
        q = queries_for(ledger)
        yield q
        q.read.close()  # type: ignore[attr-defined]
        ledger.close()


WINDOW = Filters(since=T0, until=T0 + 7200)


def test_totals_count_calls_tokens_money_and_outcomes(queries: DashboardQueries) -> None:
    t = queries.totals(WINDOW)
    assert t["calls"] == 6  # "old" is before the range
    assert (t["errors"], t["blocked"], t["cache_hits"]) == (1, 1, 1)
    assert t["input_tokens"] == 217
    assert t["cost_usd"] == pytest.approx(0.0115)
    assert t["saved_usd"] == pytest.approx(0.014)
    assert t["error_rate"] == pytest.approx(1 / 6)
    assert isinstance(t["calls"], int) and isinstance(t["input_tokens"], int)


def test_series_puts_each_call_in_its_bucket(queries: DashboardQueries) -> None:
    series = queries.series(WINDOW, 3600)
    got = {(r["t"], r["feature"]): (r["calls"], r["errors"], round(r["cost_usd"], 6)) for r in series}
    assert got == {
        (T0, "support"): (2, 0, 0.01),
        (T0 + 3600, "support"): (2, 0, 0.001),
        (T0 + 3600, "extract"): (1, 0, 0.0005),
        (T0 + 3600, "flaky"): (1, 1, 0.0),
    }


def test_breakdowns_of_cache_routes_verdicts_and_errors(queries: DashboardQueries) -> None:
    cache = {c["cache"]: c for c in queries.cache(WINDOW)}
    assert (cache["exact"]["calls"], cache["miss"]["calls"]) == (1, 5)
    assert cache["exact"]["saved_usd"] == pytest.approx(0.01)
    assert cache["miss"]["saved_usd"] == 0.0  # routing's savings are not the cache's
    routes = {(r["route"], r["model"]): r for r in queries.routes(WINDOW)}
    assert set(routes) == {
        ("default", "large"),
        ("rule:0", "small"),
        ("default", "small"),
        ("default", "broken"),
    }
    assert routes["rule:0", "small"]["saved_usd"] == pytest.approx(0.004)
    assert queries.verdicts(WINDOW) == [
        {"stage": "input.injection", "reason": "injection.signature", "action": "block", "count": 1},
        {"stage": "output.pii", "reason": "pii.email", "action": "flag", "count": 1},
    ]
    errors = [(e["status"], e["http_status"], e["code"], e["count"]) for e in queries.errors(WINDOW)]
    assert sorted(errors) == [("blocked", 400, "input_rejected", 1), ("error", 502, "upstream_error", 1)]


def test_latency_percentiles_per_layer(queries: DashboardQueries) -> None:
    lat = queries.latency(WINDOW, 3600)
    assert lat["sample"] == 6
    total = lat["layers"]["total"]
    assert total["n"] == 6
    assert total["p50"] == pytest.approx(percentile([0.5, 2.0, 10.0, 50.0, 100.0, 300.0], 0.5))
    assert lat["layers"]["llm"]["n"] == 2
    assert lat["layers"]["ttft"]["p99"] == 20.0
    assert lat["layers"]["context"] == {"p50": None, "p95": None, "p99": None, "n": 0}
    assert [s["t"] for s in lat["series"]] == [T0, T0 + 3600]


def test_filters_and_options(queries: DashboardQueries) -> None:
    only = Filters(since=T0, until=T0 + 7200, feature="support", model="large", key="web")
    assert queries.totals(only)["calls"] == 2
    assert queries.options(only) == {
        "features": ["extract", "flaky", "support"],
        "models": ["broken", "large", "small"],
        "keys": ["batch", "web"],
    }
    recent = queries.recent(Filters(since=T0, until=T0 + 7200, key="web"), limit=2)
    assert [r["id"] for r in recent] == ["f", "e"]
    assert recent[1]["verdicts"] == [
        {"stage": "input.injection", "action": "block", "reason": "injection.signature"}
    ]
    assert recent[0]["stream"] is False


@pytest.mark.unit
def test_bucket_width_keeps_charts_to_about_a_hundred_bars() -> None:
    assert bucket_seconds(3600) == 60
    assert bucket_seconds(86400) == 900
    assert bucket_seconds(7 * 86400) == 7200
    assert 30 * 86400 / bucket_seconds(30 * 86400) <= 100
