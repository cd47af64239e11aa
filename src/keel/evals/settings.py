"""A feature's ``scoring`` section: live calls sampled and scored by assertions, off nothing but the call.

scoring:
  sample: 0.1                       # share of successful calls scored
  assert:
    - {type: not-icontains, value: "as an AI"}
    - {type: latency, value: 2000, weight: 0.5}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keel.evals.suite import AssertionSpec

LIVE_KINDS = frozenset(
    {
        "equals",
        "contains",
        "icontains",
        "regex",
        "is-json",
        "json-schema",
        "grounded",
        "latency",
        "cost",
        "python",
    }
)


class LiveScoring(BaseModel):
    """Which share of a feature's calls is scored, and by which assertions (no model-backed ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sample: float = Field(0.1, gt=0, le=1)
    asserts: list[AssertionSpec] = Field(alias="assert", min_length=1)

    @field_validator("asserts")
    @classmethod
    def _cheap_only(cls, v: list[AssertionSpec]) -> list[AssertionSpec]:
        for spec in v:
            if spec.kind not in LIVE_KINDS:
                raise ValueError(
                    f"{spec.type!r} needs a model call, which live scoring does not make; "
                    f"use it in an eval suite (live: {', '.join(sorted(LIVE_KINDS))})"
                )
        return v


class EvalsSettings(BaseModel):
    """Where eval runs and the output cache live."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str | None = None  # postgresql://user@host/db[?schema=name], a SQLite path, or None: storage.path
