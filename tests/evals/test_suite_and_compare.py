"""Suite files (inline, CSV, JSONL) and the statistics of a comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import ConfigError
from keel.evals.compare import compare
from keel.evals.report import render_html
from keel.evals.store import CaseResult, Run
from keel.evals.suite import load_suite

pytestmark = pytest.mark.unit


def test_datasets_inline_csv_and_jsonl_load_into_cases(tmp_path: Path) -> None:
    (tmp_path / "cases.csv").write_text(
        "id,input,expected,product,assert\n"
        'c1,Hi there,hello,Acme,"[{""type"": ""contains"", ""value"": ""hi""}]"\n'
    )
    (tmp_path / "more.jsonl").write_text('{"input": "Bye", "vars": {"product": "Beta"}}\n\n')
    (tmp_path / "a.yaml").write_text("feature: support\ndataset: cases.csv\ncases: [{input: inline one}]\n")
    (tmp_path / "b.yaml").write_text("feature: support\ndataset: more.jsonl\n")
    a = load_suite(tmp_path / "a.yaml")
    assert a.name == "a" and [c.id for c in a.cases] == ["case-1", "c1"]
    csv_case = a.cases[1]
    assert csv_case.vars == {"product": "Acme"} and csv_case.expected == "hello"
    assert csv_case.asserts[0].type == "contains"
    b = load_suite(tmp_path / "b.yaml")
    assert b.cases[0].vars == {"product": "Beta"} and b.cases[0].chat() == [
        {"role": "user", "content": "Bye"}
    ]


@pytest.mark.parametrize(
    ("text", "files", "message"),
    [
        ("feature: support\n", {}, "the suite has no cases"),
        ("feature: support\ndataset: x.jsonl\n", {"x.jsonl": "{bad\n"}, r"x\.jsonl:1: invalid JSON"),
        ("feature: support\ndataset: x.txt\n", {"x.txt": "hi"}, r"a dataset is a \.csv or \.jsonl file"),
        (
            "feature: support\ncases: [{id: a, input: x}, {id: a, input: y}]\n",
            {},
            "two cases share the id 'a'",
        ),
        ("feature: support\ncases: [{vars: {}}]\n", {}, "exactly one of 'input' or 'messages'"),
        ("cases: [{input: x}]\n", {}, r"feature: Field required"),
    ],
)
def test_bad_suites_are_one_clear_error(
    tmp_path: Path, text: str, files: dict[str, str], message: str
) -> None:
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(tmp_path / "s.yaml")


def _run(run_id: str, passed: list[bool], latency: float = 10.0, cost: float = 0.001) -> Run:
    results = [
        CaseResult(f"c{i}", p, 1.0 if p else 0.2, f"out {i}", latency, cost, False, None, [])
        for i, p in enumerate(passed)
    ]
    return Run(run_id, "s", "support", "support@1", "m", 0.0, results)


def test_paired_deltas_with_a_bootstrap_interval_and_a_threshold() -> None:
    a = _run("a", [True] * 20)
    b = _run("b", [True] * 16 + [False] * 4, latency=30.0, cost=0.002)
    cmp = compare(a, b)
    assert cmp.pass_rate.change == pytest.approx(-0.2) and len(cmp.regressed) == 4
    assert cmp.pass_rate.low is not None and cmp.pass_rate.high is not None
    assert cmp.pass_rate.low < -0.2 < cmp.pass_rate.high <= 0.0
    assert cmp.latency_ms.change == pytest.approx(20.0) and cmp.cost_usd.change == pytest.approx(0.001)
    assert cmp.is_regression
    assert not compare(a, b, max_drop=0.25).is_regression
    assert compare(a, b, max_drop=0.25, max_score_drop=0.1).is_regression  # the score fell 0.16
    assert compare(a, b).pass_rate.low == cmp.pass_rate.low  # seeded: the same runs, the same interval
    html = render_html(cmp)
    assert html.count("<svg") == 4 and "c16" in html and "<script" not in html


def test_runs_without_common_cases_cannot_be_compared() -> None:
    other = Run("x", "s", "support", None, "m", 0.0, [CaseResult("zz", True, 1.0, "", 1, 0, False, None, [])])
    with pytest.raises(ConfigError, match="no case in common"):
        compare(_run("a", [True]), other)


def test_a_yaml_mistake_is_one_line_naming_where(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("feature: support\ncases:\n  - {input: Where is it?, expected: x}\n")
    with pytest.raises(ConfigError) as err:
        load_suite(tmp_path / "s.yaml")
    assert "\n" not in str(err.value) and "s.yaml: invalid YAML: line 3, column " in str(err.value)
