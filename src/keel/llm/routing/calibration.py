"""The complexity threshold, calibrated so that a target share of calls goes to the large model.

Scores are not probabilities you can trust on someone else's traffic, but their order is. So
the threshold is a quantile: the (1 − share) quantile of the scores of recent calls, kept in a
rolling window per feature. Until the window has seen ``warmup`` calls, the quantile comes
from the model's shipped score distribution (out-of-fold scores of its training prompts).
The window lives in the process: each gateway replica calibrates on the traffic it sees,
which for a load-balanced fleet is the same distribution.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class ShareCalibrator:
    """A threshold above which about ``share`` of recently observed scores fall."""

    def __init__(
        self,
        share: float,
        fallback: Callable[[float], float],
        *,
        window: int = 1000,
        warmup: int = 200,
        refresh: int = 20,
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be between 0 and 1")
        if not 1 <= warmup <= window or refresh < 1:
            raise ValueError("need 1 <= warmup <= window and refresh >= 1")
        self.share = share
        self.warmup = warmup
        self.refresh = refresh  # re-sort the window every this many scores: cheap, and close enough
        self._scores: deque[float] = deque(maxlen=window)
        self._since = 0
        self._shipped = fallback(share)
        self._threshold = self._shipped

    @property
    def threshold(self) -> float:
        """The current threshold (the shipped one until the window is warm)."""
        return self._threshold

    @property
    def warm(self) -> bool:
        """True once the threshold comes from observed traffic."""
        return len(self._scores) >= self.warmup

    def observe(self, score: float) -> float:
        """Record one call's score and return the threshold to decide it with."""
        self._scores.append(score)
        self._since += 1
        if self.warm and (self._since >= self.refresh or len(self._scores) == self.warmup):
            self._since = 0
            self._threshold = _upper_share_cut(sorted(self._scores), self.share)
        return self._threshold

    def is_large(self, score: float) -> bool:
        """Record ``score`` and say whether it falls in the large share."""
        if self.share >= 1.0:
            return True
        if self.share <= 0.0:
            return False
        return score > self.observe(score)


def _upper_share_cut(ordered: list[float], share: float) -> float:
    """A value with about ``share`` of ``ordered`` strictly above it."""
    n = len(ordered)
    above = round(share * n)
    if above <= 0:
        return ordered[-1]
    if above >= n:
        return ordered[0] - 1e-12
    return ordered[n - above - 1]
