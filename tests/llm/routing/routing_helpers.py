"""Shared by the routing tests: requests, the labelled prompt set, providers that remember calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keel.llm.providers.base import ModelRequest
from keel.settings import RouteRule, RouteWhen

DATA = Path(__file__).resolve().parents[3] / "data" / "complexity" / "prompts.jsonl"


def request(text: str, *, tokens: int | None = None, feature: str = "f", **extra: Any) -> ModelRequest:
    """A one-user-message request."""
    return ModelRequest(
        messages=[{"role": "user", "content": text}], input_tokens=tokens, feature=feature, **extra
    )


def rule(model: str, **when: Any) -> RouteRule:
    """A routing rule sending to ``model`` when every condition in ``when`` holds."""
    return RouteRule(when=RouteWhen(**when), model=model)


def prompts(split: str | None = None) -> list[dict[str, Any]]:
    """The labelled prompts (of one split, if given)."""
    with DATA.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


def auroc(labels: list[bool], scores: list[float]) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))
