"""Run the readiness audit over every feature of a configuration."""

from __future__ import annotations

from collections.abc import Callable

from keel.audit.checks import AuditOptions, FeatureAudit, Finding, accuracy, cost, fallbacks, security
from keel.audit.measure import fault_run, latency, redteam
from keel.pipeline import Pipeline
from keel.settings import Settings
from keel.stage import Layer


async def audit(
    settings: Settings, opts: AuditOptions, *, progress: Callable[[str], None] | None = None
) -> list[FeatureAudit]:
    """Every feature's findings, in configuration order."""
    # Built, not started: what the features really run (stages, prompt schemas), without loading models.
    built = Pipeline(settings, ledger=False).features
    out = []
    for fc in settings.features:
        if progress is not None:
            progress(fc.name)
        feature = built[fc.name]
        prompt_schema = feature.prompt is not None and feature.prompt.schema is not None
        served = None
        if feature.prompt is not None and feature.prompt_source is not None:
            served = f"{feature.prompt.name}@{feature.prompt.served_version}"
        findings = [*accuracy(fc, prompt_schema, served, settings, opts), *cost(fc, settings)]
        findings.append(await latency(fc.name, opts))
        guard = security(fc)
        running = [s.name for s in feature.stages.get(Layer.INPUT, []) if "injection" in s.name]
        if guard.answer == "yes" and not running:
            guard = Finding(
                guard.area, guard.question, "no", "input.injection is configured but no injection stage runs"
            )
        elif running:
            guard = Finding(guard.area, guard.question, guard.answer, f"{guard.evidence}; stage {running[0]}")
        findings += [
            guard,
            await redteam(fc.name, opts),
            fallbacks(fc),
            await fault_run(settings, fc.name, opts),
        ]
        out.append(FeatureAudit(fc.name, findings))
    return out
