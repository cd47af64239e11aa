"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright).

A user signs in with the admin key, sees charts drawn from the calls just made, narrows them
with a filter and sees the charts change. A screenshot is saved under ``$KEEL_ARTIFACTS`` (or the
test's temporary directory) and its path printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.dashboard.browser import artefact_dir, sign_in
from tests.server.dashboard.gateway import KEY_ADMIN, KEY_WEB, DashboardGateway, start

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardGateway]:
    yield from start(tmp_path_factory.mktemp("dash-ui"), history=True)


def series_of(page: Any, chart: str) -> set[str]:
    marks = page.locator(f"svg[data-chart={chart}] [data-series]")
    return {marks.nth(i).get_attribute("data-series") for i in range(marks.count())}


def kpi(page: Any, name: str) -> str:
    return str(page.locator(f'[data-kpi="{name}"] .v').inner_text())


def test_dashboard_draws_the_calls_and_filters_change_the_charts(
    dash: DashboardGateway, page: Any, tmp_path: Path
) -> None:
    sign_in(page, dash.gw.url + "/dashboard#range=1h", KEY_ADMIN)
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator("#login").is_hidden()

    # Every chart is drawn, from the calls just made.
    assert kpi(page, "calls") == str(dash.traffic.total)
    assert series_of(page, "cost") == {"support", "extract"}  # flaky failed: it cost nothing
    assert series_of(page, "tokens") == {"support", "extract"}
    cost_total = sum(
        float(v)
        for v in page.locator("svg[data-chart=cost] rect.bar").evaluate_all(
            "els => els.map(e => e.dataset.value)"
        )
    )
    assert cost_total > 0
    assert page.locator("svg[data-chart=layers] rect.bar").count() >= 6  # p50/p95/p99 of >= 2 layers
    assert page.locator("svg[data-chart=latency] circle.point").count() >= 2
    assert series_of(page, "cache") == {"exact hit", "miss"}
    assert any("small" in s for s in series_of(page, "routes"))
    assert page.locator("svg[data-chart=verdicts] rect.bar").count() >= 1
    assert {s.split()[0] for s in series_of(page, "errors")} == {"413", "502"}
    assert page.locator('[data-budget="feature:support:day"] .spent').count() == 1
    assert page.locator('[data-alert="upstream-failing:flaky"]').get_attribute("data-level") == "alert"
    assert page.locator("#calls tbody tr").count() == dash.traffic.total
    assert page.locator("#calls .pill.blocked").count() == 1

    # A longer time range brings in the earlier day: many more bars, more calls.
    page.select_option("#f-range", "24h")
    page.wait_for_selector("body[data-loads='2'][data-state=ready]")
    history = sum(dash.history.values())
    assert kpi(page, "calls") == f"{dash.traffic.total + history:,}"
    hours = set(
        page.locator("svg[data-chart=cost] rect.bar").evaluate_all("els => els.map(e => e.dataset.t)")
    )
    assert len(hours) > 20
    assert page.locator("svg[data-chart=latency] circle.point").count() > 20
    assert series_of(page, "verdicts") >= {"injection.signature", "input.too_long"}
    shot = artefact_dir(tmp_path) / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"dashboard screenshot: {shot}")

    # A filter narrows every chart.
    page.select_option("#f-feature", "extract")
    page.wait_for_selector("body[data-loads='3'][data-state=ready]")
    assert kpi(page, "calls") == f"{dash.traffic.calls['extract'] + dash.history['extract']:,}"
    assert series_of(page, "cost") == {"extract"}
    assert series_of(page, "tokens") == {"extract"}
    assert series_of(page, "errors") == set()
    assert series_of(page, "routes") == {"small"}
    assert page.locator('[data-budget="feature:support:day"]').count() == 0  # another feature's
    assert page.locator('[data-budget="key:batch:month"]').count() == 1
    assert "feature=extract" in page.url and "range=24h" in page.url
    assert page.locator("#calls tbody tr").count() == 25  # the newest 25
    assert set(page.locator("#calls tbody tr td:nth-child(2)").all_inner_texts()) == {"extract"}
    filtered = artefact_dir(tmp_path) / "dashboard-extract.png"
    page.screenshot(path=str(filtered), full_page=True)
    print(f"dashboard screenshot (feature=extract): {filtered}")

    # The browser logs the 401s that asked for the key; nothing else may fail.
    assert [e for e in page.errors if "status of 401" not in e] == []


def test_a_key_that_is_not_admin_is_refused_with_a_reason(dash: DashboardGateway, page: Any) -> None:
    sign_in(page, dash.gw.url + "/dashboard#range=1h", KEY_WEB)
    page.wait_for_selector("#login-msg.error")
    assert "not an admin key" in page.locator("#login-msg").inner_text()
    assert page.evaluate("sessionStorage.getItem('keel.dashboard.key')") is None
    # The browser logs the 401 (no key yet) and the 403 itself; nothing else may fail.
    assert [e for e in page.errors if "status of 401" not in e and "status of 403" not in e] == []
