"""The ``review`` part of keel.yaml: which answered calls are queued for people to review.

Plain pydantic with no imports from the rest of keel, so ``keel.settings`` can use it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReviewSettings(BaseModel):
    """A sample of answered calls, kept with their (redacted) messages and answer for human review.

    Off unless ``sample`` is above 0: the review queue is the one place keel keeps what was asked
    and answered, so it is opt-in, per feature if ``features`` is given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: float = Field(0.0, ge=0, le=1)  # share of answered calls queued (0: off, 1: every call)
    features: list[str] | None = None  # None: every feature
    max_pending: int = Field(1000, gt=0)  # while this many wait for review, no more are queued
    # postgresql://user@host/db[?schema=name] for replicas sharing one queue, or a SQLite file path;
    # None: the SQLite file at storage.path
    store: str | None = None

    def samples(self, feature: str) -> bool:
        """True when calls of ``feature`` may be queued."""
        return self.sample > 0 and (self.features is None or feature in self.features)
