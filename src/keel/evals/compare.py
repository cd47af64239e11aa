"""Compare two runs of a suite case by case: what regressed, what got fixed, and by how much overall.

Deltas are paired (the same case in both runs), with 95 % confidence intervals from a seeded
bootstrap over cases, so the same two runs always give the same interval. A comparison is a
regression when the pass rate drops by more than ``max_drop`` (or the mean score by more than
``max_score_drop``); ``keel eval compare`` then exits 1, which is what gates a CI job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from keel.errors import ConfigError
from keel.evals.store import CaseResult, Run

_RESAMPLES = 2000
_SEED = 20261129


@dataclass(frozen=True, slots=True)
class Delta:
    """B minus A, with a 95 % interval (None when there are too few cases)."""

    a: float
    b: float
    low: float | None
    high: float | None

    @property
    def change(self) -> float:
        """B minus A."""
        return self.b - self.a


@dataclass(frozen=True, slots=True)
class CaseChange:
    """One case in both runs."""

    case_id: str
    a: CaseResult
    b: CaseResult

    @property
    def status(self) -> str:
        """``regressed``, ``fixed``, ``still failing``, ``passing`` or ``score changed``."""
        if self.a.passed and not self.b.passed:
            return "regressed"
        if not self.a.passed and self.b.passed:
            return "fixed"
        if not self.b.passed:
            return "still failing"
        return "score changed" if abs(self.b.score - self.a.score) > 1e-9 else "passing"


@dataclass(slots=True)
class Comparison:
    """Everything ``keel eval compare`` prints and the HTML report draws."""

    a: Run
    b: Run
    cases: list[CaseChange]
    pass_rate: Delta
    score: Delta
    cost_usd: Delta  # mean per case, as if nothing were cached
    latency_ms: Delta  # mean per case
    p95_ms: tuple[float, float]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    max_drop: float = 0.0
    max_score_drop: float | None = None

    @property
    def regressed(self) -> list[CaseChange]:
        """Cases that passed in A and fail in B."""
        return [c for c in self.cases if c.status == "regressed"]

    @property
    def fixed(self) -> list[CaseChange]:
        """Cases that failed in A and pass in B."""
        return [c for c in self.cases if c.status == "fixed"]

    @property
    def is_regression(self) -> bool:
        """True when B is worse than A beyond the thresholds."""
        if self.pass_rate.change < -self.max_drop - 1e-12:
            return True
        return self.max_score_drop is not None and self.score.change < -self.max_score_drop - 1e-12


def _interval(diffs: np.ndarray) -> tuple[float | None, float | None]:
    if len(diffs) < 2:
        return None, None
    rng = np.random.default_rng(_SEED)
    picks = rng.integers(0, len(diffs), size=(_RESAMPLES, len(diffs)))
    means = diffs[picks].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _paired(a: list[float], b: list[float]) -> Delta:
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    low, high = _interval(vb - va)
    return Delta(float(va.mean()), float(vb.mean()), low, high)


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else 0.0


def compare(a: Run, b: Run, *, max_drop: float = 0.0, max_score_drop: float | None = None) -> Comparison:
    """Pair the runs' cases by id and measure what changed from A to B."""
    by_a = {r.case_id: r for r in a.results}
    by_b = {r.case_id: r for r in b.results}
    shared = [cid for cid in by_a if cid in by_b]
    if not shared:
        raise ConfigError(f"runs {a.id} and {b.id} have no case in common: compare runs of the same suite")
    pairs = [CaseChange(cid, by_a[cid], by_b[cid]) for cid in shared]
    ra = [by_a[c] for c in shared]
    rb = [by_b[c] for c in shared]
    return Comparison(
        a=a,
        b=b,
        cases=pairs,
        pass_rate=_paired([float(r.passed) for r in ra], [float(r.passed) for r in rb]),
        score=_paired([r.score for r in ra], [r.score for r in rb]),
        cost_usd=_paired([r.cost_usd for r in ra], [r.cost_usd for r in rb]),
        latency_ms=_paired([r.latency_ms for r in ra], [r.latency_ms for r in rb]),
        p95_ms=(_p95([r.latency_ms for r in ra]), _p95([r.latency_ms for r in rb])),
        only_a=[c for c in by_a if c not in by_b],
        only_b=[c for c in by_b if c not in by_a],
        max_drop=max_drop,
        max_score_drop=max_score_drop,
    )
