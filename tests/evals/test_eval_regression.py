"""A suite compares two prompt versions on the fake upstream and catches a planted regression."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.gateway import KEEL
from typer.testing import CliRunner, Result

from keel.cli.main import app
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

GOOD = (
    "system: 'You are the support bot of {{ product }}.'\n"
    "variables: {product: {default: Acme}}\nuser: '{{ input }}'\n"
)
# The planted regression: a long preamble pushes the customer's question out of the answer.
BAD = GOOD.replace(
    "user: '{{ input }}'",
    "user: 'Please answer the following customer question as briefly as you possibly can "
    "right now: {{ input }}'",
)
QUESTIONS = [
    ("parcel", "Where is my parcel?"),
    ("refund", "Can I get a refund?"),
    ("invoice", "Send my invoice again"),
    ("password", "Reset my password please"),
    ("address", "Change my delivery address"),
    ("hours", "What are your opening hours?"),
]
SUITE = {
    "name": "support-answers",
    "feature": "support",
    "cases": [{"id": cid, "input": q, "expected": q.split()[-1].rstrip("?")} for cid, q in QUESTIONS],
    "defaults": {
        "assert": [
            {"type": "contains", "value": "{{ expected }}", "weight": 3},
            {"type": "regex", "value": "^You said: "},
            {"type": "not-contains", "value": "Traceback"},
            {"type": "cost", "value": 0.01},
            {"type": "latency", "value": 30000, "weight": 0},
        ]
    },
}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, FakeUpstream]]:
    with FakeUpstream() as fake:
        (tmp_path / "prompts").mkdir()
        (tmp_path / "keel.yaml").write_text(
            f"""\
models:
  - name: up
    provider: openai
    base_url: "{fake.base_url}"
    price: {{input_per_mtok: 1, output_per_mtok: 2}}
features:
  - {{name: support, model: up, prompt: support@production}}
storage: {{path: keel.db}}
"""
        )
        (tmp_path / "suite.yaml").write_text(json.dumps(SUITE))
        yield tmp_path, fake


def _keel(cwd: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--config", str(cwd / "keel.yaml")])


def _run_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    return str(runs[0]["id"])


def test_compare_catches_the_planted_regression_and_reruns_cost_nothing(
    project: tuple[Path, FakeUpstream],
) -> None:
    cwd, fake = project
    (cwd / "prompts" / "support.yaml").write_text(GOOD)
    assert _keel(cwd, "prompts", "list").exit_code == 0  # v1
    (cwd / "prompts" / "support.yaml").write_text(BAD)
    suite = str(cwd / "suite.yaml")

    good = _keel(cwd, "eval", "run", suite, "--prompt", "support@1", "--json", "-j", "3")
    run_a = _run_id(good)
    assert json.loads(good.stdout)[0]["passed"] == 6 and json.loads(good.stdout)[0]["cost_usd"] > 0
    bad = _keel(cwd, "eval", "run", suite, "--prompt", "support@2", "--json")
    run_b = _run_id(bad)
    assert json.loads(bad.stdout)[0]["passed"] == 0
    calls = fake.stats()["requests"]

    html = cwd / "report.html"
    cmp = subprocess.run(
        [KEEL, "eval", "compare", run_a, run_b, "--html", str(html), "--config", str(cwd / "keel.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cmp.returncode == 1, cmp.stderr
    assert "REGRESSION: 6 regressed, 0 fixed of 6 cases" in cmp.stdout
    assert "REGRESSED parcel" in cmp.stdout and "missing 'parcel'" in cmp.stdout
    report = html.read_text()
    assert "<svg" in report and "Regression: pass rate" in report and "http" not in report.split("<body>")[1]

    same = _keel(cwd, "eval", "compare", run_a, "latest~1")  # the baseline against itself: no regression
    assert same.exit_code == 0 and "no regression" in same.stdout

    again = _keel(cwd, "eval", "run", suite, "--prompt", "support@1", "--json")
    summary = json.loads(again.stdout)[0]
    assert (summary["cached"], summary["cost_usd"], summary["passed"]) == (6, 0, 6)
    assert fake.stats()["requests"] == calls  # a re-run of unchanged input makes no model call
    fixed = _keel(cwd, "eval", "compare", run_b, "latest")
    assert fixed.exit_code == 0 and "6 fixed" in fixed.stdout


def test_eval_run_errors_are_one_line(project: tuple[Path, FakeUpstream]) -> None:
    cwd, _ = project
    (cwd / "prompts" / "support.yaml").write_text(GOOD)
    (cwd / "bad.yaml").write_text("feature: support\ncases: [{input: hi, assert: [{type: smells-right}]}]\n")
    r = subprocess.run(
        [KEEL, "eval", "run", str(cwd / "bad.yaml"), "--config", str(cwd / "keel.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "bad.yaml: cases.0.assert.0.type: unknown assertion 'smells-right'" in r.stderr


def test_similar_scores_with_the_configured_embedding_endpoint(project: tuple[Path, FakeUpstream]) -> None:
    cwd, fake = project
    (cwd / "prompts" / "support.yaml").write_text(GOOD)
    embeddings = f'embeddings: {{provider: openai, base_url: "{fake.base_url}"}}\n'
    (cwd / "keel.yaml").write_text((cwd / "keel.yaml").read_text() + embeddings)
    suite = {
        "feature": "support",
        "cases": [{"id": "parcel", "input": "Where is my parcel today?"}],
        "defaults": {
            "assert": [
                {"type": "similar", "value": "You said: where is my parcel today", "threshold": 0.5},
                {"type": "not-similar", "value": "bake sourdough bread at home", "threshold": 0.5},
            ]
        },
    }
    (cwd / "similar.yaml").write_text(json.dumps(suite))
    ran = _keel(cwd, "eval", "run", str(cwd / "similar.yaml"), "--json")
    [result] = json.loads(ran.stdout)[0]["results"]
    near, far = result["outcomes"]
    assert result["passed"], result
    assert near["score"] > 0.5 > 1 - far["score"] and fake.stats()["paths"].get("/v1/embeddings", 0) >= 1
