"""``keel review status|export`` in a subprocess, over a queue filled and labelled through its store."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.gateway import KEEL

from keel.evals.review import ReviewItem
from keel.evals.review_sqlite import SQLiteReviewStore
from keel.evals.suite import Case

pytestmark = pytest.mark.integration

CONFIG = """\
models: [{name: small, provider: openai, base_url: "http://127.0.0.1:9/v1"}]
features: [{name: support, model: small}, {name: extract, model: small}]
storage: {path: state/keel.db}
"""


def keel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEEL, *args], capture_output=True, text=True, cwd=cwd, timeout=120, env=dict(os.environ)
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "keel.yaml").write_text(CONFIG)
    store = SQLiteReviewStore(tmp_path / "state" / "keel.db")
    store.add(
        [
            ReviewItem(f"c{i}", 100.0 + i, feature, [{"role": "user", "content": f"q{i}"}], f"a{i}")
            for i, feature in enumerate(["support", "support", "support", "extract"])
        ]
    )
    ids = [i["id"] for i in store.items(status="pending", limit=10)]  # oldest first
    store.label(ids[0], verdict="pass", reviewer="ops")
    store.label(ids[1], verdict="fail", corrected="better", note="too vague")
    return tmp_path


def test_status_counts_the_queue(project: Path) -> None:
    out = keel("review", "status", cwd=project)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pending 2, reviewed 2 (passed 1, failed 1, pass rate 50%)"
    only = keel("review", "status", "--feature", "extract", cwd=project)
    assert only.stdout.strip() == "pending 1, reviewed 0 (passed 0, failed 0, pass rate -)"


def test_export_writes_eval_cases_to_stdout_or_a_file(project: Path) -> None:
    out = keel("review", "export", "--feature", "support", cwd=project)
    assert out.returncode == 0, out.stderr
    cases = [json.loads(line) for line in out.stdout.splitlines()]
    assert [c["expected"] for c in cases] == ["a0", "better"]
    for c in cases:
        Case.model_validate(c)
    written = keel("review", "export", "--format", "full", "-o", "reviewed.jsonl", cwd=project)
    assert written.returncode == 0, written.stderr
    assert "wrote 2 items to reviewed.jsonl" in written.stderr
    rows = [json.loads(line) for line in (project / "reviewed.jsonl").read_text().splitlines()]
    assert [(r["verdict"], r["note"]) for r in rows] == [("pass", None), ("fail", "too vague")]


SUITE = """\
feature: support
defaults: {vars: {product: Acme}}
cases:
  - {id: parcel, input: "Where is my parcel?"}
  - {id: refund, messages: [{role: user, content: I want a refund}], vars: {product: Widget}}
"""


def test_an_eval_runs_outputs_join_the_queue_once(project: Path) -> None:
    from keel.evals.store import CaseResult, Run, SQLiteEvalStore

    (project / "suite.yaml").write_text(SUITE)
    results = [
        CaseResult("parcel", True, 1.0, "It ships tomorrow.", 120.0, 0.001, False, None),
        CaseResult("refund", False, 0.0, "No.", 80.0, 0.001, False, None),
    ]
    store = SQLiteEvalStore(project / "state" / "keel.db")
    store.save(Run("run0123456789", "support-suite", "support", None, "small", 500.0, results))
    store.close()
    out = keel("review", "add-eval", "latest", "--suite", "suite.yaml", cwd=project)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "queued 2 outputs of eval run run0123456789 (support-suite, small)"
    again = keel("review", "add-eval", "run0123", "--suite", "suite.yaml", "--failed-only", cwd=project)
    assert again.stdout.strip().endswith(
        "queued 0 outputs of eval run run0123456789 (support-suite, small); 1 already queued"
    )
    queued = SQLiteReviewStore(project / "state" / "keel.db").items(status="pending", feature="support")
    evals = [i for i in queued if i["source"].startswith("eval")]
    assert [i["source"] for i in evals] == ["eval support-suite run01234"] * 2
    item = SQLiteReviewStore(project / "state" / "keel.db").get(evals[1]["id"])
    assert item["messages"] == [{"role": "user", "content": "I want a refund"}]
    assert (item["answer"], item["variables"], item["model"]) == ("No.", {"product": "Widget"}, "small")
    missing = keel("review", "add-eval", "nope", "--suite", "suite.yaml", cwd=project)
    assert missing.returncode != 0
    assert "no eval run 'nope'" in missing.stderr


def test_a_bad_format_is_one_line(project: Path) -> None:
    out = keel("review", "export", "--format", "csv", cwd=project)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0
    assert "--format 'csv': expected cases or full" in out.stderr
