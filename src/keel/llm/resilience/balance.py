"""Several deployments behind one model name, balanced per call.

Policies:
- ``weighted``: at random, in proportion to each deployment's weight;
- ``least_in_flight``: the one with the fewest calls in flight per unit of weight (ties at random);
- ``latency``: the lowest expected wait: moving average (EWMA) of latency (time to first chunk
  for streams) times the calls in flight plus one; a deployment not yet measured is tried
  first, and a small share of calls (``explore``) goes to a weighted-random pick so that a
  deployment that was slow once is measured again.

A deployment whose circuit is known to be open is skipped. When the chosen one fails with a
retryable error (or its breaker refuses the call), another deployment is tried before giving up;
each is tried at most once per call, within the call's deadline.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Any, Literal

from keel.call import Completion
from keel.errors import CircuitOpen, KeelError
from keel.llm.providers.base import Chunk, ModelRequest, Provider
from keel.llm.resilience.classify import is_retryable
from keel.llm.resilience.deadline import Deadline
from keel.llm.resilience.wrapper import (
    Wrapper,
    available,
    close,
    first_chunk,
    give_up,
    mark,
    note_failure,
    note_success,
)

Policy = Literal["weighted", "least_in_flight", "latency"]
POLICIES: tuple[Policy, ...] = ("weighted", "least_in_flight", "latency")


@dataclass(slots=True, eq=False)
class Slot:
    """One deployment and what the balancer knows of it."""

    provider: Provider
    weight: float
    in_flight: int = 0
    latency: float | None = None  # EWMA, seconds


class BalancedProvider(Wrapper):
    """Deployments of one model (``(provider, weight)`` pairs), one picked per call by ``policy``."""

    def __init__(
        self,
        deployments: Sequence[tuple[Provider, float]],
        policy: Policy = "weighted",
        *,
        rng: random.Random | None = None,
        explore: float = 0.05,
        alpha: float = 0.3,
    ) -> None:
        if not deployments:
            raise ValueError("a balanced model needs at least one deployment")
        if policy not in POLICIES:
            raise ValueError(f"unknown balancing policy {policy!r} (expected one of: {', '.join(POLICIES)})")
        if any(w <= 0 for _, w in deployments):
            raise ValueError("deployment weights must be positive")
        super().__init__(deployments[0][0].name, [p for p, _ in deployments])
        self.policy = policy
        self.slots = [Slot(p, float(w)) for p, w in deployments]
        self._rng = rng or random.Random()
        self._explore = explore
        self._alpha = alpha

    async def complete(self, request: ModelRequest) -> Completion:
        """An answer from one deployment, or from another when it failed and may pass elsewhere."""
        deadline, trace = Deadline(request.timeout), request.trace
        start = mark(trace)
        tried: list[Slot] = []
        failed: KeelError | None = None  # the last real failure
        refused: CircuitOpen | None = None  # the last deployment whose breaker refused the call
        attempt = request
        while (slot := self.pick(tried)) is not None:
            tried.append(slot)
            before = mark(trace)
            slot.in_flight += 1
            t0 = monotonic()
            try:
                completion = await slot.provider.complete(attempt)
            except CircuitOpen as exc:
                refused = exc  # not a failure of this call: another deployment may take it
            except KeelError as exc:
                self._observe(slot, monotonic() - t0, ok=False)
                note_failure(trace, self.name, before, exc)
                if not is_retryable(exc):
                    raise
                failed = exc
            else:
                self._observe(slot, monotonic() - t0, ok=True)
                note_success(trace, self.name, before)
                return completion
            finally:
                slot.in_flight -= 1
            left = deadline.left()
            if left is not None and left <= 0:
                break
            attempt = deadline.narrow(request, self.name) if left is not None else request
        raise give_up(self._gave_up(failed, refused), trace, start)

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """A stream from one deployment, or from another when it failed before its first chunk."""
        deadline, trace = Deadline(request.timeout), request.trace
        start = mark(trace)
        tried: list[Slot] = []
        failed: KeelError | None = None
        refused: CircuitOpen | None = None
        attempt = request
        while (slot := self.pick(tried)) is not None:
            tried.append(slot)
            before = mark(trace)
            slot.in_flight += 1
            t0 = monotonic()
            chunks = slot.provider.stream(attempt)
            opened = False
            try:
                first = await first_chunk(chunks)
                opened = True
            except CircuitOpen as exc:
                refused = exc
            except KeelError as exc:
                self._observe(slot, monotonic() - t0, ok=False)
                note_failure(trace, self.name, before, exc)
                if not is_retryable(exc):
                    raise
                failed = exc
            finally:
                if not opened:
                    slot.in_flight -= 1
            if opened:
                self._observe(slot, monotonic() - t0, ok=True)
                note_success(trace, self.name, before)
                try:
                    if first is not None:
                        yield first
                        async for chunk in chunks:
                            yield chunk
                finally:
                    slot.in_flight -= 1
                    await close(chunks)
                return
            left = deadline.left()
            if left is not None and left <= 0:
                break
            attempt = deadline.narrow(request, self.name) if left is not None else request
        raise give_up(self._gave_up(failed, refused), trace, start)

    def pick(self, tried: Sequence[Slot] = ()) -> Slot | None:
        """The deployment for the next call by the policy, among those not ``tried`` and not known open."""
        candidates = [s for s in self.slots if s not in tried and available(s.provider)]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        if self.policy == "least_in_flight":
            return self._fewest_in_flight(candidates)
        if self.policy == "latency":
            fresh = [s for s in candidates if s.latency is None and not s.in_flight]
            if fresh:
                return self._rng.choice(fresh)
            measured = [s for s in candidates if s.latency is not None]
            if measured and self._rng.random() >= self._explore:
                return min(measured, key=_cost)
        return self._weighted(candidates)

    async def health(self) -> dict[str, Any]:
        """Each deployment's breaker, weight, calls in flight and latency average."""
        out: list[dict[str, Any]] = []
        for s in self.slots:
            found = (await s.provider.health())["deployments"] if isinstance(s.provider, Wrapper) else []
            for d in found or [{"name": s.provider.name, "model": s.provider.name, "state": "closed"}]:
                latency = None if s.latency is None else round(s.latency * 1000, 3)
                out.append({**d, "weight": s.weight, "in_flight": s.in_flight, "latency_ms": latency})
        return {"policy": self.policy, "deployments": out}

    # -- policies ------------------------------------------------------------------------------

    def _weighted(self, candidates: list[Slot]) -> Slot:
        r = self._rng.random() * sum(s.weight for s in candidates)
        for s in candidates:
            r -= s.weight
            if r < 0:
                return s
        return candidates[-1]

    def _fewest_in_flight(self, candidates: list[Slot]) -> Slot:
        least = min(s.in_flight / s.weight for s in candidates)
        ties = [s for s in candidates if s.in_flight / s.weight == least]
        return ties[0] if len(ties) == 1 else self._rng.choice(ties)

    def _observe(self, slot: Slot, seconds: float, *, ok: bool) -> None:
        """Fold a call's latency into the deployment's average; a failure weighs as twice as slow."""
        if not ok:
            seconds = max(seconds, 2 * slot.latency) if slot.latency is not None else seconds
        slot.latency = (
            seconds if slot.latency is None else slot.latency + self._alpha * (seconds - slot.latency)
        )

    def _gave_up(self, failed: KeelError | None, refused: CircuitOpen | None) -> KeelError:
        if failed is not None:
            return failed
        if refused is not None:
            return refused
        return CircuitOpen(f"model {self.name!r}: the circuit of every deployment is open")


def _cost(slot: Slot) -> float:
    """Expected wait on a deployment: its latency average times the calls it is already serving
    (Finagle's peak-EWMA cost), so the fastest deployment is not sent every call until it slows."""
    return (slot.latency or 0.0) * (slot.in_flight + 1) / slot.weight
