"""The checklist's config-only answers, each with its evidence (no traffic needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keel.audit.checks import AuditOptions, accuracy, cost, fallbacks, security
from keel.config import Settings
from keel.evals.store import CaseResult, Run, open_eval_store

pytestmark = pytest.mark.unit

MakeSettings = Callable[..., Settings]
CONFIG = """\
models:
  - {name: a, provider: openai, base_url: "http://127.0.0.1:9/v1", price: {input_per_mtok: 1}}
  - {name: b, provider: openai, base_url: "http://127.0.0.1:9/v1", price: {input_per_mtok: 1}}
features:
  - {name: plain, model: a, input: {injection: {enabled: false}}}
  - name: full
    model: a
    fallbacks: [b]
    budget: {usd_per_day: 3}
    schema: {type: object}
  - {name: cascaded, model: a, routing: {cascade: {models: [a, b]}}, input: {injection: {action: flag}}}
keys:
  - name: k
    hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
    budget: {usd_per_month: 9}
storage: {path: keel.db}
"""


def _save(settings: Settings, prompt: str, passed: list[bool]) -> None:
    results = [CaseResult(f"c{i}", p, float(p), "", 1.0, 0.0, False, None, []) for i, p in enumerate(passed)]
    with open_eval_store(settings.db_path) as store:
        store.save(Run(f"r{len(prompt)}{sum(passed)}", "s", "full", prompt, "a", 0.0, results))


def test_accuracy_needs_validation_and_an_eval_of_the_version_served(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    opts = AuditOptions()
    validated, rate = accuracy(s.feature("full"), False, "support@2", s, opts)
    assert validated.answer == "yes" and validated.evidence == "output schema enforced"
    assert rate.answer == "no" and rate.evidence.startswith("no eval run for this feature")
    _save(s, "support@1", [True] * 10)
    _, rate = accuracy(s.feature("full"), False, "support@2", s, opts)
    assert rate.answer == "no"
    assert (
        rate.evidence
        == "no eval run of the version served (support@2); the latest run tested support@1 (100.0%)"
    )
    _save(s, "support@2", [True] * 8 + [False] * 2)
    _, rate = accuracy(s.feature("full"), False, "support@2", s, opts)
    assert rate.answer == "no" and rate.evidence.startswith("80.0% of 10 cases")
    _, rate = accuracy(s.feature("full"), False, "support@2", s, AuditOptions(min_pass_rate=0.8))
    assert rate.answer == "yes"
    assert accuracy(s.feature("plain"), False, None, s, opts)[0].answer == "no"


def test_cost_security_and_fallback_answers(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    tracked, budget = cost(s.feature("full"), s)
    assert tracked.answer == "yes" and "nothing recorded yet" in tracked.evidence
    assert (budget.answer, budget.evidence) == ("yes", "feature budget $3.0/day")
    assert cost(s.feature("plain"), s)[1].evidence == "every key that may call it has a budget (1)"
    assert security(s.feature("plain")).evidence == "input.injection.enabled is false"
    assert security(s.feature("cascaded")).answer == "no"  # flagging is not defending
    assert security(s.feature("full")).answer == "yes"
    assert fallbacks(s.feature("full")).evidence == "a → b"
    assert fallbacks(s.feature("cascaded")).evidence == "cascade a → b"
    assert fallbacks(s.feature("plain")).answer == "no"
