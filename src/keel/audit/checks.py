"""The production-readiness checklist, answered per feature with the evidence behind each answer.

    Accuracy     are outputs validated?            a schema or live scoring on the feature
                 eval pass rate                    the feature's latest ``keel eval run``
    Cost         is usage tracked per feature?     the ledger is on (and what it recorded)
                 budgets set?                      a feature budget, or a budget on every key that may use it
    Latency      p95 under load                    ``keel loadtest`` against ``--url``
    Security     injection defences on?            ``input.injection`` enabled and blocking
                 red-team block rate               the red-team corpus sent through ``--url``
    Reliability  fallbacks configured?             ``fallbacks`` or a cascade
                 survives an upstream outage?      a fault-injection run through ``keel fake-upstream``

An answer is ``yes``, ``no`` or ``skip`` (not applicable here, e.g. no red-team corpus); any
``no`` makes ``keel audit`` exit 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from keel.errors import KeelError
from keel.evals.store import eval_store_target, open_eval_store
from keel.monitor.open import describe, is_missing, ledger_target, open_ledger
from keel.settings import FeatureConfig, Settings

Answer = Literal["yes", "no", "skip"]
AREAS = ("Accuracy", "Cost", "Latency", "Security", "Reliability")


@dataclass(frozen=True, slots=True)
class Finding:
    """One checklist question for one feature."""

    area: str
    question: str
    answer: Answer
    evidence: str


@dataclass(slots=True)
class FeatureAudit:
    """Every finding for one feature."""

    feature: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """True when no answer is ``no``."""
        return all(f.answer != "no" for f in self.findings)


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """Thresholds and what to measure against."""

    url: str | None = None
    api_key: str | None = None
    concurrency: int = 8
    requests: int = 40
    max_p95_ms: float = 2000.0
    min_pass_rate: float = 0.9
    min_block_rate: float = 0.9
    redteam: Path | None = None
    redteam_limit: int = 40
    fault_calls: int = 10


def accuracy(
    fc: FeatureConfig, prompt_schema: bool, served: str | None, settings: Settings, opts: AuditOptions
) -> list[Finding]:
    """Outputs validated? and the pass rate of the latest eval run of what the feature serves.

    ``served`` is the prompt version the feature serves now (``support@7``); a run of another
    version says nothing about it.
    """
    checks = []
    if fc.output_schema is not None or prompt_schema:
        checks.append("output schema enforced")
    if fc.scoring is not None:
        checks.append(
            f"{fc.scoring.sample:.0%} of calls scored live by {len(fc.scoring.asserts)} assertion(s)"
        )
    validated = Finding(
        "Accuracy",
        "outputs validated?",
        "yes" if checks else "no",
        "; ".join(checks) if checks else "no output schema and no live scoring (schema:, scoring:)",
    )
    runs = []
    target = eval_store_target(settings)
    if not isinstance(target, Path) or target.exists():
        with open_eval_store(target) as store:
            runs = [r for r in store.runs(limit=200) if r["feature"] == fc.name]
    of_served = [r for r in runs if served is None or r["prompt"] == served]
    if not runs:
        rate = Finding(
            "Accuracy", "eval pass rate", "no", "no eval run for this feature (keel eval run SUITE)"
        )
    elif not of_served:
        rate = Finding(
            "Accuracy",
            "eval pass rate",
            "no",
            f"no eval run of the version served ({served}); the latest run tested {runs[0]['prompt']} "
            f"({runs[0]['pass_rate']:.1%})",
        )
    else:
        r = of_served[0]
        ok = r["pass_rate"] >= opts.min_pass_rate
        rate = Finding(
            "Accuracy",
            "eval pass rate",
            "yes" if ok else "no",
            f"{r['pass_rate']:.1%} of {r['cases']} cases (run {r['id']}, suite {r['suite']}, "
            f"{r['prompt'] or 'no prompt'}, model {r['model']}, {_age(r['created_at'])}); "
            f"needs ≥ {opts.min_pass_rate:.0%}",
        )
    return [validated, rate]


def cost(fc: FeatureConfig, settings: Settings) -> list[Finding]:
    """Usage tracked per feature? Budgets set?"""
    if not settings.ledger.enabled:
        tracked = Finding("Cost", "usage tracked per feature?", "no", "ledger.enabled is false")
    else:
        target = ledger_target(settings)
        recorded = "nothing recorded yet"
        if not is_missing(target):
            try:
                with open_ledger(target) as ledger:
                    rows = ledger.summarize(since=time.time() - 30 * 86400, by="feature")
            except KeelError as exc:
                return [Finding("Cost", "usage tracked per feature?", "no", f"ledger unreadable: {exc}")]
            mine = next((s for s in rows if s.group == fc.name), None)
            if mine is not None:
                recorded = f"{mine.calls} calls, ${mine.cost_usd:.4f} in the last 30 days"
        tracked = Finding(
            "Cost", "usage tracked per feature?", "yes", f"ledger at {describe(target)}: {recorded}"
        )
    keys = [k for k in settings.keys if k.features is None or fc.name in k.features]
    if fc.budget is not None:
        b = fc.budget
        limits = [
            f"${v}/{p}" for p, v in (("day", b.usd_per_day), ("month", b.usd_per_month)) if v is not None
        ]
        budget = Finding("Cost", "budgets set?", "yes", f"feature budget {', '.join(limits)}")
    elif keys and all(k.budget is not None for k in keys):
        budget = Finding(
            "Cost", "budgets set?", "yes", f"every key that may call it has a budget ({len(keys)})"
        )
    else:
        budget = Finding(
            "Cost", "budgets set?", "no", "no feature budget (budget.usd_per_day / usd_per_month)"
        )
    return [tracked, budget]


def security(fc: FeatureConfig) -> Finding:
    """Injection defences on?"""
    guard = fc.input.injection
    if not guard.enabled:
        return Finding("Security", "injection defences on?", "no", "input.injection.enabled is false")
    if guard.action == "flag":
        return Finding(
            "Security", "injection defences on?", "no", "injections are only flagged (action: flag)"
        )
    return Finding(
        "Security",
        "injection defences on?",
        "yes",
        f"input.injection: {guard.action} at score ≥ {guard.block_threshold} "
        f"on roles {', '.join(guard.roles)}",
    )


def fallbacks(fc: FeatureConfig) -> Finding:
    """Fallbacks configured?"""
    if fc.fallbacks:
        return Finding(
            "Reliability", "fallbacks configured?", "yes", f"{fc.model} → {' → '.join(fc.fallbacks)}"
        )
    if fc.routing is not None and fc.routing.cascade is not None:
        models = " → ".join(fc.routing.cascade.models)
        return Finding("Reliability", "fallbacks configured?", "yes", f"cascade {models}")
    return Finding("Reliability", "fallbacks configured?", "no", f"only {fc.model}: no fallbacks")


def _age(ts: float) -> str:
    hours = (time.time() - ts) / 3600
    return f"{hours:.1f} h ago" if hours < 48 else f"{hours / 24:.0f} days ago"
