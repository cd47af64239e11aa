"""Train the complexity scorer: ``python -m keel.llm.routing.train_complexity [--data ...] [--out ...]``.

Reads the labelled prompts (``data/complexity/prompts.jsonl``: text, label small|large, split
train|heldout, template), picks the regularisation by cross-validation grouped by template (so
it rewards generalising to kinds of prompt it has not seen), fits a logistic regression with
scikit-learn on the train split only, and writes plain weights, the score quantiles of
out-of-fold training predictions (the shipped calibration) and the held-out metrics to the
model file. scikit-learn is needed here only, never at run time.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.llm.routing.complexity import (
    FORMAT,
    HAND_FEATURES,
    SHIPPED,
    ComplexityModel,
    encode_weights,
    featurize,
)
from keel.trained import training_cli

BUCKETS = 1 << 14
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
FOLDS = 5
CV_SLACK = 0.002
QUANTILES = 101


@dataclass
class Example:
    """One labelled prompt."""

    text: str
    large: bool
    split: str
    group: str
    category: str


def load_examples(path: Path) -> list[Example]:
    """The labelled prompts in a JSON-lines file."""
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                group = d["template"] if d.get("source") != "hand" else f"hand:{d['id']}"
                out.append(Example(d["text"], d["label"] == "large", d["split"], group, d["category"]))
    return out


def design_rows(examples: list[Example], buckets: int) -> tuple[Any, NDArray[np.float64]]:
    """(hashed features as a CSR matrix, raw hand features) — the same features the scorer computes."""
    from scipy.sparse import csr_matrix  # type: ignore[import-untyped,unused-ignore]

    indptr, indices, values = [0], [], []
    hand = []
    for ex in examples:
        feats, signals = featurize(ex.text)
        v = 1.0 / math.sqrt(len(feats)) if feats else 0.0
        for h in feats:
            indices.append(h & (buckets - 1))
            values.append(v)
        indptr.append(len(indices))
        hand.append(signals)
    hashed = csr_matrix((values, indices, indptr), shape=(len(examples), buckets), dtype=np.float64)
    hashed.sum_duplicates()  # colliding hashes add up, as the scorer's sum does
    return hashed, np.asarray(hand, dtype=np.float64)


def _design(hashed: Any, hand: NDArray[np.float64], mean: Any, scale: Any) -> Any:
    from scipy.sparse import csr_matrix, hstack

    return hstack([hashed, csr_matrix((hand - mean) / scale)], format="csr")


def _fit(x: Any, y: NDArray[np.bool_], c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    model.fit(x, y)
    return model


def _auroc(y: NDArray[np.bool_], p: NDArray[np.float64]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def train(
    data: Path,
    out: Path,
    *,
    buckets: int = BUCKETS,
    seed: int = 0,
    c_grid: tuple[float, ...] = C_GRID,
) -> dict[str, Any]:
    """Fit, evaluate on the held-out split and write the model file; returns the metrics."""
    from sklearn.model_selection import GroupKFold

    examples = load_examples(data)
    train_ex = [e for e in examples if e.split == "train"]
    held_ex = [e for e in examples if e.split == "heldout"]
    if not train_ex or not held_ex:
        raise SystemExit(f"{data}: needs both a train and a heldout split")
    hashed, hand = design_rows(train_ex, buckets)
    y = np.array([e.large for e in train_ex])
    groups = np.array([e.group for e in train_ex])
    mean = hand.mean(axis=0)
    scale = hand.std(axis=0)
    scale[scale == 0] = 1.0
    x = _design(hashed, hand, mean, scale)

    folds = list(GroupKFold(n_splits=FOLDS).split(x, y, groups))
    cv: dict[float, float] = {}
    oof_by_c: dict[float, NDArray[np.float64]] = {}
    for c in c_grid:
        oof = np.zeros(len(train_ex))
        for tr, te in folds:
            oof[te] = _fit(x[tr], y[tr], c, seed).predict_proba(x[te])[:, 1]
        cv[c] = _auroc(y, oof)
        oof_by_c[c] = oof
    # The most regularised C within 0.002 AUROC of the best: steadier scores, same ranking.
    best_c = min(c for c in c_grid if cv[c] >= max(cv.values()) - CV_SLACK)
    model = _fit(x, y, best_c, seed)
    coef = model.coef_[0]
    weights = [float(w) for w in coef[:buckets]]
    hand_w = [float(w) for w in coef[buckets:]]
    quantiles = np.quantile(oof_by_c[best_c], np.linspace(0, 1, QUANTILES)).tolist()

    file: dict[str, Any] = {
        "format": FORMAT,
        "buckets": buckets,
        "weights": encode_weights(weights),
        "hand": {
            "names": list(HAND_FEATURES),
            "weights": hand_w,
            "mean": mean.tolist(),
            "scale": scale.tolist(),
        },
        "bias": float(model.intercept_[0]),
        "quantiles": [round(q, 6) for q in quantiles],
    }
    scorer = ComplexityModel.from_json(file)

    # Held out: scored by the run-time scorer itself, so the metrics are of what ships.
    held_y = np.array([e.large for e in held_ex])
    held_p = np.array([scorer.score(e.text) for e in held_ex])
    h_hashed, h_hand = design_rows(held_ex, buckets)
    sk_p = model.predict_proba(_design(h_hashed, h_hand, mean, scale))[:, 1]
    agreement = float(np.max(np.abs(sk_p - held_p)))
    t30 = scorer.threshold_for(0.3)
    right = (held_p > 0.5) == held_y
    cats = np.array([e.category for e in held_ex])
    per_category = {str(c): round(float(right[cats == c].mean()), 3) for c in sorted(set(cats.tolist()))}
    hand = np.array([e.group.startswith("hand:") for e in held_ex])
    metrics = {
        "heldout_n": len(held_ex),
        "heldout_large": int(held_y.sum()),
        "heldout_accuracy": round(float(right.mean()), 4),
        "heldout_auroc": round(_auroc(held_y, held_p), 4),
        "heldout_accuracy_by_category": per_category,
        "heldout_hand_written_n": int(hand.sum()),
        "heldout_hand_written_accuracy": round(float(right[hand].mean()), 4),
        "heldout_hand_written_auroc": round(_auroc(held_y[hand], held_p[hand]), 4),
        "heldout_large_share_at_target_0.3": round(float(np.mean(held_p > t30)), 4),
        "train_n": len(train_ex),
        "cv_auroc_by_C": {str(c): round(v, 4) for c, v in cv.items()},
        "C": best_c,
        "max_abs_diff_vs_sklearn": agreement,
    }
    file["metrics"] = metrics
    file["training"] = {
        "data": data.name,
        "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "seed": seed,
        "model": "sklearn LogisticRegression(class_weight=balanced, lbfgs)",
    }
    out.write_text(json.dumps(file, separators=(",", ":")) + "\n", encoding="utf-8")
    metrics["score_us_median"] = _time_scoring(scorer, [e.text for e in held_ex])
    return metrics


def _time_scoring(scorer: ComplexityModel, texts: list[str]) -> float:
    """Median microseconds per prompt of the run-time scorer (machine-dependent, so printed, not stored)."""
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for text in texts:
            scorer.score(text)
        runs.append((time.perf_counter() - t) / len(texts) * 1e6)
    return round(statistics.median(runs), 1)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    training_cli(
        argv,
        prog="python -m keel.llm.routing.train_complexity",
        description=__doc__,
        data="complexity/prompts.jsonl",
        out=Path(__file__).with_name(SHIPPED),
        buckets=BUCKETS,
        train=train,
    )


if __name__ == "__main__":
    main()
