"""What a detector found: a typed span of text with a score, never copied anywhere but the call.

PII and secret detectors both return ``Finding`` lists; ``resolve`` keeps the best of overlapping
ones, and ``windows`` narrows an expensive recogniser to the parts of a text that could hold a
match (a phone number needs digits, an e-mail address an ``@``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Finding:
    """``text[start:end]`` looks like ``entity`` with confidence ``score`` (0..1)."""

    entity: str
    start: int
    end: int
    score: float


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: of two that overlap, the higher score (then longer) wins."""
    ranked = sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for f in ranked:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


_SPACE = re.compile(r"\s")


def windows(text: str, trigger: re.Pattern[str], margin: int) -> list[tuple[int, int]]:
    """Merged ``(start, end)`` ranges around each ``trigger`` match, ``margin`` wide, cut at whitespace.

    A range starts and ends at whitespace (or the text's ends) when there is some within another
    ``margin``, so a word is not cut in two and a ``\\b`` at a range's edge is a real word boundary.
    """
    spans: list[tuple[int, int]] = []
    n = len(text)
    for m in trigger.finditer(text):
        start = max(m.start() - margin, 0)
        end = min(m.end() + margin, n)
        if spans and start <= spans[-1][1]:
            start = spans[-1][0]
        else:  # back to the whitespace before, looking at most ``margin`` further
            lo = max(start - margin, 0)
            before = text[lo:start]
            k = max(before.rfind(" "), before.rfind("\n"), before.rfind("\t"))
            start = lo + k + 1 if k >= 0 else lo
        ws = _SPACE.search(text, end, min(end + margin, n))
        end = ws.start() if ws is not None else min(end + margin, n)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings of each entity type (what verdicts and counters record: never the values)."""
    out: dict[str, int] = {}
    for f in findings:
        out[f.entity] = out.get(f.entity, 0) + 1
    return out


def describe(by_entity: dict[str, int]) -> str:
    """``EMAIL_ADDRESS=2 PHONE_NUMBER=1``: counts for a verdict's detail."""
    return " ".join(f"{k}={v}" for k, v in sorted(by_entity.items()))
