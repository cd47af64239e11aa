"""Quality of the injection detector on the held-out split and the red-team corpus.

    .venv/bin/python bench/injection_detection.py

Held-out split of ``data/injection/prompts.jsonl`` (templates, documents and hand-written
prompts that training never saw; see data/injection/README.md) and the red-team corpus
``data/injection/redteam.jsonl`` (never trained on). In one run, on the same texts:

- keel's detector (``keel.input.detector``: views, signatures, the shipped classifier), at the
  default flag threshold (0.5) and block threshold (0.85);
- the reference: the signature families alone (an attack when any family matches any view), the
  keyword filter a detector has to beat.

Precision, recall, F1 and the false-positive rate on benign prompts; recall per attack family.
Prints Markdown tables.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from keel.input.detector import default_detector, read

DATA = Path(__file__).resolve().parents[1] / "data" / "injection"


def load(name: str) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file in data/injection."""
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line.strip()]


def rates(labels: list[bool], flagged: list[bool]) -> dict[str, float]:
    """Precision, recall, F1 and false-positive rate."""
    tp = sum(f and y for y, f in zip(labels, flagged, strict=True))
    fp = sum(f and not y for y, f in zip(labels, flagged, strict=True))
    fn = sum(y and not f for y, f in zip(labels, flagged, strict=True))
    negatives = sum(not y for y in labels)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fp / negatives if negatives else 0.0}


def signatures_only(text: str) -> bool:
    """The reference: any signature family matches any view of the text."""
    return bool(read(text)[1])


def main() -> None:
    """Score both sets and print the tables."""
    detector = default_detector()
    held = [r for r in load("prompts.jsonl") if r["split"] == "heldout"]
    red = load("redteam.jsonl")
    t = time.perf_counter()
    held_scores = [detector.score(r["text"]) for r in held]
    red_scores = [detector.score(r["text"]) for r in red]
    per_text = (time.perf_counter() - t) / (len(held) + len(red)) * 1000
    held_sig = [signatures_only(r["text"]) for r in held]
    red_sig = [signatures_only(r["text"]) for r in red]

    print(f"Held-out split: {len(held)} prompts, {sum(r['label'] == 'injection' for r in held)} attacks")
    print(f"Red-team corpus: {len(red)} prompts, {sum(r['label'] == 'injection' for r in red)} attacks")
    print(f"Mean scoring time {per_text:.2f} ms per text\n")
    print("| set | detector | precision | recall | F1 | benign FPR |")
    print("|---|---|---:|---:|---:|---:|")
    for set_name, rows, scores, sig in (
        ("held-out", held, held_scores, held_sig),
        ("red team", red, red_scores, red_sig),
    ):
        y = [r["label"] == "injection" for r in rows]
        for name, flagged in (
            ("keel, flag ≥ 0.5", [s >= 0.5 for s in scores]),
            ("keel, block ≥ 0.85", [s >= 0.85 for s in scores]),
            ("signatures alone (reference)", sig),
        ):
            m = rates(y, flagged)
            print(
                f"| {set_name} | {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                f"{m['fpr']:.1%} |"
            )

    print("\nRecall per attack family (held-out; red team), at 0.5 / 0.85:\n")
    print("| set | family | n | flagged ≥ 0.5 | blocked ≥ 0.85 | signatures alone |")
    print("|---|---|---:|---:|---:|---:|")
    for set_name, rows, scores, sig, key in (
        ("held-out", held, held_scores, held_sig, "family"),
        ("red team", red, red_scores, red_sig, "category"),
    ):
        fam: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        for r, s, g in zip(rows, scores, sig, strict=True):
            if r["label"] == "injection":
                fam[r[key]].append((s, g))
        for f, pairs in sorted(fam.items()):
            n = len(pairs)
            print(
                f"| {set_name} | {f} | {n} | {sum(s >= 0.5 for s, _ in pairs) / n:.0%} | "
                f"{sum(s >= 0.85 for s, _ in pairs) / n:.0%} | {sum(g for _, g in pairs) / n:.0%} |"
            )


if __name__ == "__main__":
    main()
