"""The dashboard's JSON API on a real gateway: admin-only, counts what the calls did, filters, bad input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.server.dashboard.gateway import (
    KEY_BATCH,
    KEY_WEB,
    DashboardGateway,
    admin_get,
)

pytestmark = pytest.mark.integration


def test_the_api_needs_an_admin_key(dash: DashboardGateway) -> None:
    missing = admin_get(dash.gw, "/dashboard/api/overview", key=None)
    assert missing.status == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    not_admin = admin_get(dash.gw, "/dashboard/api/calls", key=KEY_WEB)
    assert not_admin.status == 403
    assert "not an admin key" in not_admin.json()["error"]["message"]


def test_the_page_loads_without_a_key_and_holds_no_data(dash: DashboardGateway) -> None:
    page = admin_get(dash.gw, "/dashboard", key=None)
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("charts.js", "dashboard.js", "dashboard.css"):
        assert admin_get(dash.gw, f"/dashboard/assets/{asset}", key=None).status == 200
    assert admin_get(dash.gw, "/dashboard/assets/../app.py", key=None).status == 404


def test_overview_counts_the_calls_that_were_made(dash: DashboardGateway) -> None:
    data = admin_get(dash.gw, "/dashboard/api/overview?range=1h").json()
    t = dash.traffic
    assert data["totals"]["calls"] == t.total
    assert data["totals"]["errors"] == 1  # the failing upstream
    assert data["totals"]["blocked"] == 1  # the over-long input
    assert data["totals"]["cost_usd"] > 0
    calls_per_feature: dict[str, int] = {}
    for row in data["series"]:
        calls_per_feature[row["feature"]] = calls_per_feature.get(row["feature"], 0) + row["calls"]
    assert calls_per_feature == t.calls
    assert {c["cache"]: c["calls"] for c in data["cache"]}["exact"] == 2
    assert data["totals"]["cache_hits"] == 2
    answered_by = {r["model"] for r in data["routes"]}
    assert {"large", "small"} <= answered_by
    assert any(r["route"].startswith("rule:") and r["model"] == "small" for r in data["routes"])
    reasons = {(v["reason"], v["action"]) for v in data["verdicts"]}
    assert any(action == "block" for _, action in reasons), reasons
    codes = {(e["http_status"], e["status"]) for e in data["errors"]}
    assert (413, "blocked") in codes
    assert (502, "error") in codes
    layers = data["latency"]["layers"]
    assert layers["total"]["n"] >= t.total - 1
    assert layers["total"]["p50"] <= layers["total"]["p95"] <= layers["total"]["p99"]
    assert layers["llm"]["p50"] is not None
    assert data["options"]["keys"] == ["batch", "web"]
    assert set(data["options"]["features"]) == {"support", "extract", "flaky"}


def test_budgets_show_what_was_spent_against_each_limit(dash: DashboardGateway) -> None:
    data = admin_get(dash.gw, "/dashboard/api/overview?range=1h").json()
    budgets = {(b["scope"], b["name"], b["period"]): b for b in data["budgets"]}
    support = budgets["feature", "support", "day"]
    assert support["limit_usd"] == 0.05
    assert support["spent_usd"] > 0
    batch = budgets["key", "batch", "month"]
    assert batch["limit_usd"] == 1.0
    assert batch["spent_usd"] > 0
    assert batch["spent_usd"] < support["spent_usd"]  # three calls to the small model against ten


def test_alerts_show_each_rules_level_per_feature(dash: DashboardGateway) -> None:
    deadline = time.monotonic() + 15
    while True:  # the monitor evaluates its rules every 0.2 s, on a thread of its own
        alerts = admin_get(dash.gw, "/dashboard/api/overview?range=1h").json()["alerts"]
        levels = {(a["rule"], a["feature"]): a for a in alerts}
        failing = levels.get(("upstream-failing", "flaky"), {})
        done = failing.get("level") == "alert" and ("daily-spend", "support") in levels
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert failing.get("level") == "alert", alerts
    assert failing["value"] == 1.0
    assert (failing["warn"], failing["alert"]) == (0.1, 0.5)
    assert levels["daily-spend", "support"]["level"] == "ok", alerts
    only_extract = admin_get(dash.gw, "/dashboard/api/overview?range=1h&feature=extract").json()["alerts"]
    assert {a["feature"] for a in only_extract} == {"extract"}


def test_filters_narrow_every_number(dash: DashboardGateway) -> None:
    by_feature = admin_get(dash.gw, "/dashboard/api/overview?range=1h&feature=extract").json()
    assert by_feature["totals"]["calls"] == dash.traffic.calls["extract"]
    assert {r["feature"] for r in by_feature["series"]} == {"extract"}
    by_key = admin_get(dash.gw, "/dashboard/api/overview?range=1h&key=web").json()
    assert by_key["totals"]["calls"] == dash.traffic.keys["web"]
    by_model = admin_get(dash.gw, "/dashboard/api/overview?range=1h&model=small").json()
    assert {r["model"] for r in by_model["routes"]} == {"small"}
    # The filter menus still offer everything in the time range.
    assert set(by_model["options"]["features"]) == {"support", "extract", "flaky"}
    nothing = admin_get(dash.gw, "/dashboard/api/overview?range=1h&feature=nope").json()
    assert nothing["totals"]["calls"] == 0
    assert nothing["series"] == []


def test_recent_calls_are_newest_first_without_content_or_keys(dash: DashboardGateway) -> None:
    reply = admin_get(dash.gw, "/dashboard/api/calls?range=1h&limit=5")
    calls = reply.json()["calls"]
    assert len(calls) == 5
    assert [c["ts"] for c in calls] == sorted((c["ts"] for c in calls), reverse=True)
    assert calls[0]["feature"] == "extract"
    assert calls[0]["key_id"] == "batch"
    text = reply.body.decode()
    for secret in (KEY_WEB, KEY_BATCH, "Lisbon", "password"):
        assert secret not in text
    blocked = admin_get(dash.gw, "/dashboard/api/calls?range=1h&feature=support&limit=50").json()["calls"]
    refusal = next(c for c in blocked if c["status"] == "blocked")
    assert refusal["verdicts"]
    assert all("detail" not in v for v in refusal["verdicts"])


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("range=yesterday", "range"),
        ("range=0h", "since"),
        ("since=abc", "since"),
        ("since=10&range=1h", "range"),
        ("range=500d", "range"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
    ],
)
def test_bad_parameters_get_a_400_naming_them(dash: DashboardGateway, query: str, param: str) -> None:
    reply = admin_get(dash.gw, f"/dashboard/api/calls?{query}")
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_the_open_gateway_serves_the_dashboard_without_a_key(tmp_path: Path) -> None:
    from keel.testing import FakeUpstream
    from tests.gateway import Gateway, http

    with FakeUpstream() as fake:
        (tmp_path / "keel.yaml").write_text(
            f"models: [{{name: m, provider: openai, base_url: '{fake.base_url}'}}]\n"
            "features: [{name: chat, model: m}]\nstorage: {path: ledger.db}\n"
        )
        with Gateway(tmp_path / "keel.yaml") as gw:
            reply = http("GET", gw.url + "/dashboard/api/overview?range=1h")
            assert reply.status == 200
            assert reply.json()["totals"]["calls"] == 0
            assert reply.json()["budgets"] == []


def test_a_gateway_on_postgresql_charts_its_calls_and_queues_them_for_review(tmp_path: Path) -> None:
    import openai

    from keel.testing import FakeUpstream
    from tests.gateway import Gateway, http
    from tests.pg_schema import fresh_schema

    with fresh_schema() as url, FakeUpstream() as fake:
        (tmp_path / "keel.yaml").write_text(
            f"models: [{{name: m, provider: openai, base_url: '{fake.base_url}',"
            " price: {input_per_mtok: 1, output_per_mtok: 2}}]\n"
            "features: [{name: chat, model: m}, {name: other, model: m}]\n"
            f"ledger: {{url: '{url}', flush_interval: 0.05}}\nstorage: {{path: keel.db}}\n"
            f"review: {{sample: 1.0, features: [other], store: '{url}'}}\n"
        )
        with (
            Gateway(tmp_path / "keel.yaml") as gw,
            openai.OpenAI(base_url=gw.base_url, api_key="x") as client,
        ):
            for feature in ("chat", "chat", "other"):
                client.chat.completions.create(model=feature, messages=[{"role": "user", "content": "hi"}])
            deadline = time.monotonic() + 10
            while True:
                data = http("GET", gw.url + "/dashboard/api/overview?range=1h").json()
                if data["totals"]["calls"] == 3 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert data["totals"]["calls"] == 3
            assert data["totals"]["cost_usd"] > 0
            per_feature: dict[str, int] = {}
            for r in data["series"]:  # the calls may straddle a minute: several buckets
                per_feature[r["feature"]] = per_feature.get(r["feature"], 0) + r["calls"]
            assert per_feature == {"chat": 2, "other": 1}
            assert data["latency"]["layers"]["total"]["n"] == 3
            calls = http("GET", gw.url + "/dashboard/api/calls?range=1h&feature=other").json()["calls"]
            assert [c["feature"] for c in calls] == ["other"]
            # The review queue is in the same PostgreSQL schema, beside the ledger.
            deadline = time.monotonic() + 10
            while True:
                queue = http("GET", gw.url + "/dashboard/api/review/items").json()
                if queue["counts"]["pending"] == 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert queue["features"] == ["other"]
            assert queue["counts"]["pending"] == 1


def test_with_the_ledger_off_the_dashboard_says_so(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from keel.config import load_config
    from keel.server.app import create_app

    (tmp_path / "keel.yaml").write_text(
        "models: [{name: m, provider: openai, base_url: 'http://127.0.0.1:9/v1'}]\n"
        "features: [{name: chat, model: m, budget: {usd_per_day: 2}}]\n"
        "ledger: {enabled: false}\nstorage: {path: keel.db}\n"
    )
    with TestClient(create_app(load_config(tmp_path / "keel.yaml")).api) as client:
        overview = client.get("/dashboard/api/overview").json()
        assert overview["ledger"] is False
        assert "totals" not in overview
        assert overview["budgets"][0]["spent_usd"] == 0
        assert client.get("/dashboard/api/calls").json() == {"ledger": False, "calls": []}
        assert client.get("/dashboard/api/review/items").json()["counts"]["pending"] == 0
