"""The human review queue on a real gateway: sampled calls arrive, a reviewer labels them in the
browser (Debian's Chromium via Playwright), and the labels export as eval-suite cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keel.evals.suite import Case
from tests.gateway import http
from tests.server.dashboard.browser import artefact_dir, sign_in
from tests.server.dashboard.gateway import EMAIL, KEY_ADMIN, KEY_WEB, DashboardGateway, admin_get

pytestmark = pytest.mark.integration


def post(dash: DashboardGateway, path: str, body: Any, key: str = KEY_ADMIN) -> Any:
    return http(
        "POST",
        dash.gw.url + path,
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def test_answered_calls_of_sampled_features_wait_for_review(dash: DashboardGateway) -> None:
    data = admin_get(dash.gw, "/dashboard/api/review/items").json()
    answered = dash.traffic.calls["support"] - 1  # one was refused: nothing to review
    assert data["counts"] == {"pending": answered, "reviewed": 0, "passed": 0, "failed": 0}
    assert data["features"] == ["support"]  # extract is not sampled
    assert data["sampling"] == {"sample": 1.0, "features": ["support"]}
    item = admin_get(dash.gw, f"/dashboard/api/review/items/{data['items'][0]['id']}").json()
    assert item["messages"] == [{"role": "user", "content": "How do I reset my password? (0)"}]
    assert item["answer"]
    assert (item["feature"], item["key_id"], item["model"]) == ("support", "web", "large")


def test_personal_data_redacted_by_the_input_guard_stays_redacted_in_the_queue(
    dash: DashboardGateway,
) -> None:
    items = admin_get(dash.gw, "/dashboard/api/review/items?limit=100").json()["items"]
    bodies = [admin_get(dash.gw, f"/dashboard/api/review/items/{i['id']}") for i in items]
    assert not any(EMAIL.encode() in b.body for b in bodies)
    redacted = [b.json() for b in bodies if b"<EMAIL_1>" in b.body]
    assert len(redacted) == 1
    assert redacted[0]["messages"] == [{"role": "user", "content": "My e-mail is <EMAIL_1>, any news?"}]
    assert "<EMAIL_1>" in redacted[0]["answer"]  # the answer as the model gave it, before the restore


def test_only_admins_may_read_or_label(dash: DashboardGateway) -> None:
    assert admin_get(dash.gw, "/dashboard/api/review/items", key=KEY_WEB).status == 403
    assert post(dash, "/dashboard/api/review/items/1", {"verdict": "pass"}, key=KEY_WEB).status == 403
    assert admin_get(dash.gw, "/dashboard/api/review/export", key=None).status == 401


def test_bad_labels_and_unknown_items_get_openai_errors(dash: DashboardGateway) -> None:
    bad = post(dash, "/dashboard/api/review/items/1", {"verdict": "good"})
    assert bad.status == 400
    assert bad.json()["error"]["param"] == "verdict"
    missing = post(dash, "/dashboard/api/review/items/99999", {"verdict": "pass"})
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "review_item_not_found"
    assert admin_get(dash.gw, "/dashboard/api/review/items?status=done").status == 400
    assert admin_get(dash.gw, "/dashboard/api/review/export?format=csv").status == 400


def test_a_reviewer_labels_items_in_the_browser_and_exports_them(
    dash: DashboardGateway, page: Any, tmp_path: Path
) -> None:
    sign_in(page, dash.gw.url + "/dashboard/review", KEY_ADMIN)
    page.wait_for_selector("body[data-state=ready]")
    answered = dash.traffic.calls["support"] - 1
    assert page.locator("#queue li[data-item]").count() == answered
    assert page.locator('[data-kpi="pending"] .v').inner_text() == str(answered)
    assert page.locator("#item-messages .bubble.user").first.inner_text().endswith("(0)")
    first_answer = page.locator("#item-answer").inner_text()

    # Fail the first answer with a correction; the next item opens.
    page.click(".verdict .fail")
    page.fill("#score", "0.2")
    page.fill("#note", "should point to the reset page")
    page.fill("#corrected", "Open Settings, then Reset password.")
    page.click("#save")
    page.wait_for_selector("body[data-loads='2'][data-state=ready]")
    assert page.locator('[data-kpi="pending"] .v').inner_text() == str(answered - 1)
    assert page.locator("#item-messages .bubble.user").first.inner_text().endswith("(1)")
    second_answer = page.locator("#item-answer").inner_text()

    # Pass the second without a score.
    page.click(".verdict .pass")
    page.check("#score-none")
    page.click("#save")
    page.wait_for_selector("body[data-loads='3'][data-state=ready]")
    assert page.locator('[data-kpi="passrate"] .v').inner_text() == "50%"
    shot = artefact_dir(tmp_path) / "review.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"review screenshot: {shot}")

    # The export button downloads the reviewed items as eval-suite cases.
    with page.expect_download() as download:
        page.click("#export")
    target = artefact_dir(tmp_path) / "review-cases.jsonl"
    download.value.save_as(str(target))
    cases = [json.loads(line) for line in target.read_text().splitlines()]
    assert [c["expected"] for c in cases] == ["Open Settings, then Reset password.", second_answer]
    assert cases[0]["messages"] == [{"role": "user", "content": "How do I reset my password? (0)"}]
    for c in cases:
        Case.model_validate(c)

    # The full export keeps who reviewed, the verdicts, scores and notes.
    full = admin_get(dash.gw, "/dashboard/api/review/export?format=full&feature=support")
    assert full.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in full.body.decode().splitlines()]
    assert [(r["verdict"], r["score"], r["reviewer"]) for r in rows] == [
        ("fail", 0.2, "ops"),
        ("pass", None, "ops"),
    ]
    assert rows[0]["note"] == "should point to the reset page"
    assert rows[0]["answer"] == first_answer
    assert [e for e in page.errors if "status of 401" not in e] == []
