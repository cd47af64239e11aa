"""Live scoring: a sample of a feature's successful calls checked by its ``scoring`` assertions.

Each scored call gets a verdict ``eval.live`` (allow when it passes, flag when it fails, with the
weighted score), which the ledger records and ``alerts`` rules on ``eval_score`` watch; and two
Prometheus series per feature and prompt version: ``keel_live_checks_total`` (by assertion and
result) and the ``keel_live_score`` histogram.
"""

from __future__ import annotations

import random
import time
import weakref
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram

from keel.call import Action, Call, Status, Verdict
from keel.context.citations import sources_of
from keel.evals.assertions import Observed, Services, check, combine
from keel.evals.settings import LiveScoring
from keel.evals.suite import Case
from keel.llm.tokens import message_text
from keel.stage import Layer, Stage

STAGE = "eval.live"
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, LiveMetrics] = weakref.WeakKeyDictionary()


class LiveMetrics:
    """The live-scoring series, once per metrics registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "keel_live_checks",
            "Live-scored assertions by feature, prompt version, assertion and result",
            ["feature", "prompt_version", "assertion", "result"],
            registry=registry,
        )
        self.score = Histogram(
            "keel_live_score",
            "Weighted assertion score of live-scored calls (0..1)",
            ["feature", "prompt_version"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> LiveMetrics:
        """The series registered in ``registry`` (created on first use)."""
        found = _BY_REGISTRY.get(registry)
        if found is None:
            found = _BY_REGISTRY[registry] = cls(registry)
        return found


class LiveScoreStage(Stage):
    """Monitoring stage: score a sample of answered calls; never changes or fails the call."""

    name = STAGE
    layer = Layer.MONITORING

    def __init__(
        self, config: LiveScoring, registry: CollectorRegistry, base_dir: Path, *, seed: int | None = None
    ) -> None:
        self.config = config
        self.metrics = LiveMetrics.of(registry)
        self.services = Services(base_dir)
        self._random = random.Random(seed)

    async def run(self, call: Call) -> None:
        """Score the call when it answered and the draw says so."""
        if (
            call.status is not Status.OK
            or call.completion is None
            or self._random.random() >= self.config.sample
        ):
            return
        user = next((m for m in reversed(call.messages) if m.get("role") == "user"), None)
        case = Case(id=call.id, input=message_text(user) if user else "")
        seen = Observed(
            case,
            call.text,
            (time.time() - call.started_at) * 1000,
            call.usage.cost_usd,
            sources=[s.chunk.text for s in sources_of(call.chunks)],
        )
        outcomes = [await check(spec, seen, self.services) for spec in self.config.asserts]
        passed, score = combine(outcomes)
        version = call.prompt_version or ""
        for o in outcomes:
            self.metrics.checks.labels(call.feature, version, o.type, "pass" if o.passed else "fail").inc()
        self.metrics.score.labels(call.feature, version).observe(score)
        failed = [f"{o.type}: {o.reason}" for o in outcomes if not o.passed]
        call.verdicts.append(
            Verdict(
                STAGE,
                Action.ALLOW if passed else Action.FLAG,
                "live_pass" if passed else "live_fail",
                score=round(score, 4),
                detail="; ".join(failed)[:300] or None,
            )
        )
