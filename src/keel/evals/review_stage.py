"""Sampling answered calls into the review queue: two stages of one sampler.

``ReviewSnapshotStage`` is the Input layer's last stage: it draws the sample and copies the
messages as the Input layer left them (cleaned, and redacted when a guard redacts), before the
feature's prompt is added. ``ReviewRecordStage`` runs in the Monitoring layer and queues the
sampled call with its answer when it was answered; refused and failed calls are not queued.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from typing import Any

from keel.call import Call, Status
from keel.evals.review import ReviewItem, ReviewQueue
from keel.stage import Layer, Stage

MAX_IN_FLIGHT = 10_000  # snapshots of calls still running; older ones are forgotten


class ReviewSampler:
    """Draws ``sample`` of a feature's calls for review and hands them to ``queue``."""

    def __init__(self, queue: ReviewQueue, sample: float, *, rng: random.Random | None = None) -> None:
        self.queue = queue
        self.sample = sample
        self.rng = rng or random.Random()
        self.in_flight: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.snapshot = ReviewSnapshotStage(self)
        self.record = ReviewRecordStage(self)

    def take(self, call: Call) -> None:
        """Copy the call's messages when it falls in the sample and the queue has room."""
        if self.rng.random() >= self.sample or not self.queue.accepting:
            return
        self.in_flight[call.id] = json.loads(json.dumps(call.messages, default=str))
        while len(self.in_flight) > MAX_IN_FLIGHT:
            self.in_flight.popitem(last=False)

    def finish(self, call: Call) -> None:
        """Queue the call's snapshot with its answer, if it was sampled and answered."""
        messages = self.in_flight.pop(call.id, None)
        if messages is None or call.status is not Status.OK or call.completion is None:
            return
        message = call.completion.message
        answer = call.completion.text
        if not answer and message.get("tool_calls"):
            answer = json.dumps(message["tool_calls"], default=str)
        self.queue.offer(
            ReviewItem(
                call_id=call.id,
                ts=call.started_at,
                feature=call.feature,
                messages=messages,
                answer=answer,
                key_id=call.key_id,
                model=call.model,
                prompt_version=call.prompt_version,
                variables=dict(call.variables),
            )
        )


class ReviewSnapshotStage(Stage):
    """Draw the review sample and keep the sampled call's messages (Input layer, last)."""

    name = "input.review_sample"
    layer = Layer.INPUT

    def __init__(self, sampler: ReviewSampler) -> None:
        self.sampler = sampler

    async def run(self, call: Call) -> None:
        """Snapshot the messages of a sampled call (no I/O)."""
        self.sampler.take(call)


class ReviewRecordStage(Stage):
    """Queue a sampled, answered call for review (Monitoring layer; the write happens off the path)."""

    name = "monitoring.review"
    layer = Layer.MONITORING

    def __init__(self, sampler: ReviewSampler) -> None:
        self.sampler = sampler

    async def run(self, call: Call) -> None:
        """Hand the call to the review queue."""
        self.sampler.finish(call)
