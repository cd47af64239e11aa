"""``keel audit`` against a real gateway and keel fake-upstream: a config without fallbacks fails, a
complete one passes; ``keel loadtest`` reports percentiles."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.gateway import KEEL, Gateway
from typer.testing import CliRunner, Result

from keel.cli.main import app
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

MODELS = """\
models:
  - {name: main, provider: openai, base_url: "@URL@", price: {input_per_mtok: 1, output_per_mtok: 2}}
  - {name: backup, provider: openai, base_url: "@URL@", price: {input_per_mtok: 1, output_per_mtok: 2}}
storage: {path: keel.db}
ledger: {flush_interval: 0.05}
"""
COMPLETE = """\
  - name: support
    model: main
    fallbacks: [backup]
    budget: {usd_per_day: 5}
    scoring: {sample: 0.5, assert: [{type: regex, value: "^You said: "}]}
"""
BARE = """\
  - name: bare
    model: main
"""
SUITE = {
    "feature": "support",
    "cases": [
        {"input": f"Question number {i}", "assert": [{"type": "contains", "value": f"number {i}"}]}
        for i in range(5)
    ],
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Gateway]]:
    tmp = tmp_path_factory.mktemp("audit")
    with FakeUpstream() as fake:
        models = MODELS.replace("@URL@", fake.base_url)
        (tmp / "keel.yaml").write_text(models + "features:\n" + COMPLETE + BARE)
        (tmp / "complete.yaml").write_text(models + "features:\n" + COMPLETE)
        (tmp / "bare.yaml").write_text(models + "features:\n" + BARE)
        (tmp / "suite.yaml").write_text(json.dumps(SUITE))
        with Gateway(tmp / "keel.yaml") as gw:
            yield tmp, gw


REDTEAM = Path(__file__).parents[2] / "data" / "injection" / "redteam.jsonl"


def _audit(cwd: Path, config: str, url: str, *extra: str) -> Result:
    return CliRunner().invoke(
        app,
        [
            "audit",
            *extra,
            "--config",
            str(cwd / config),
            "--url",
            url,
            "--requests",
            "12",
            "--concurrency",
            "4",
            "--max-p95",
            "5000",
            "--json",
            "--html",
            str(cwd / f"{config}.html"),
        ],
    )


def _answers(result: Result) -> dict[str, tuple[str, str]]:
    [feature] = json.loads(result.stdout)
    return {f["question"]: (f["answer"], f["evidence"]) for f in feature["findings"]}


def test_a_feature_without_fallbacks_fails_the_audit(project: tuple[Path, Gateway]) -> None:
    cwd, gw = project
    result = _audit(cwd, "bare.yaml", gw.url)
    assert result.exit_code == 1
    answers = _answers(result)
    assert answers["fallbacks configured?"] == ("no", "only main: no fallbacks")
    drill = answers["survives an upstream outage?"]
    assert drill[0] == "no" and drill[1].startswith("0/10 calls answered while every call to main got 503")
    assert answers["budgets set?"][0] == "no" and answers["outputs validated?"][0] == "no"
    assert answers["eval pass rate"] == ("no", "no eval run for this feature (keel eval run SUITE)")
    assert answers["p95 under load"][0] == "yes"  # what works is still reported as working
    assert "Not ready" in (cwd / "bare.yaml.html").read_text()


def test_a_complete_feature_passes_the_audit(project: tuple[Path, Gateway]) -> None:
    cwd, gw = project
    ran = CliRunner().invoke(
        app, ["eval", "run", str(cwd / "suite.yaml"), "--config", str(cwd / "complete.yaml")]
    )
    assert ran.exit_code == 0, ran.output
    result = _audit(cwd, "complete.yaml", gw.url)
    answers = _answers(result)
    for question in (
        "outputs validated?",
        "eval pass rate",
        "usage tracked per feature?",
        "budgets set?",
        "p95 under load",
        "fallbacks configured?",
        "survives an upstream outage?",
    ):
        assert answers[question][0] == "yes", (question, answers[question])
    assert answers["eval pass rate"][1].startswith("100.0% of 5 cases")
    assert answers["survives an upstream outage?"][1].endswith("answered by backup")
    assert answers["injection defences on?"][0] == "yes"
    assert answers["injection defences on?"][1].endswith("stage input.injection")
    assert answers["red-team block rate"][0] == "skip"  # no corpus beside this keel.yaml
    assert result.exit_code == 0, result.output
    # The repository's red-team corpus through the gateway: the share refused is measured, and
    # the threshold is the operator's (here below what the shipped detector blocks).
    attacked = _audit(cwd, "complete.yaml", gw.url, "--redteam", str(REDTEAM), "--redteam-limit", "20")
    blocked, sent = map(int, _answers(attacked)["red-team block rate"][1].split()[0].split("/"))
    assert sent == 20 and blocked >= 12
    strict = _audit(
        cwd,
        "complete.yaml",
        gw.url,
        "--redteam",
        str(REDTEAM),
        "--redteam-limit",
        "20",
        "--min-block-rate",
        "1.0",
    )
    assert strict.exit_code == (0 if blocked == 20 else 1)
    html = (cwd / "complete.yaml.html").read_text()
    assert "<svg" in html and "survives an upstream outage?" in html


def test_loadtest_reports_percentiles_and_gates_on_p95(project: tuple[Path, Gateway]) -> None:
    _, gw = project
    run = subprocess.run(
        [KEEL, "loadtest", gw.url, "--feature", "support", "-n", "30", "-c", "5", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)
    assert figures["ok"] == 30 and figures["statuses"] == {"200": 30}
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    gated = CliRunner().invoke(app, ["loadtest", gw.url, "-f", "support", "-n", "5", "--max-p95", "0.001"])
    assert gated.exit_code == 1
    unknown = CliRunner().invoke(app, ["loadtest", gw.url, "-f", "nope", "-n", "3"])
    assert unknown.exit_code == 1 and "statuses 404×3" in unknown.stdout
