"""Train the injection classifier: ``python -m keel.input.train_injection [--data ...] [--out ...]``.

Reads the labelled prompts (``data/injection/prompts.jsonl``: text, label injection|benign,
split train|heldout, template, family), picks the regularisation by cross-validation grouped
by template (so it rewards generalising to phrasings it has not seen), fits a logistic
regression with scikit-learn on the train split only, and writes plain weights and the held-out
metrics to the model file. The held-out split is never read before the final model is fixed;
its metrics are measured with the run-time ``Detector`` itself, so they are of what ships.
scikit-learn is needed here only, never at run time.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.input.classifier import FORMAT, SHIPPED, InjectionModel, features
from keel.input.detector import Detector, read
from keel.llm.routing.complexity import encode_weights
from keel.trained import training_cli

BUCKETS = 1 << 17
C_GRID = (1.0, 3.0, 10.0, 30.0)
FOLDS = 5
CV_SLACK = 0.002


@dataclass
class Example:
    """One labelled prompt."""

    text: str
    injection: bool
    split: str
    group: str
    family: str


def load_examples(path: Path) -> list[Example]:
    """The labelled prompts in a JSON-lines file."""
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                group = d["template"] if d.get("source") != "hand" else f"hand:{d['id']}"
                out.append(Example(d["text"], d["label"] == "injection", d["split"], group, d["family"]))
    return out


def design(examples: list[Example], buckets: int) -> Any:
    """The hashed features of each example as a CSR matrix (the scorer's own ``features``)."""
    from scipy.sparse import csr_matrix  # type: ignore[import-untyped,unused-ignore]

    indptr, indices, values = [0], [], []
    for ex in examples:
        vs, hits, toks = read(ex.text)
        feats, flags = features(vs.views, hits, toks)
        v = 1.0 / math.sqrt(len(feats)) if feats else 0.0
        for h in feats:
            indices.append(h & (buckets - 1))
            values.append(v)
        for h in flags:
            indices.append(h & (buckets - 1))
            values.append(1.0)
        indptr.append(len(indices))
    x = csr_matrix((values, indices, indptr), shape=(len(examples), buckets), dtype=np.float64)
    x.sum_duplicates()  # colliding hashes add up, as the scorer's sum does
    return x


def _fit(x: Any, y: NDArray[np.bool_], c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    model.fit(x, y)
    return model


def metrics_at(y: NDArray[np.bool_], scores: NDArray[np.float64], threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and benign false-positive rate when ``scores >= threshold`` flag injection."""
    pred = scores >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / int(np.sum(~y)) if np.any(~y) else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fpr, 4),
        "fp": fp,
        "fn": fn,
    }


def evaluate(detector: Detector, examples: list[Example]) -> dict[str, Any]:
    """Held-out metrics of the run-time detector at the default flag (0.5) and block (0.85) thresholds."""
    y = np.array([e.injection for e in examples])
    scores = np.array([detector.score(e.text) for e in examples])
    fams = np.array([e.family for e in examples])
    recall_by_family = {
        str(f): round(float(np.mean(scores[(fams == f) & y] >= 0.5)), 3)
        for f in sorted(set(fams[y].tolist()))
    }
    fpr_by_family = {
        str(f): round(float(np.mean(scores[(fams == f) & ~y] >= 0.5)), 3)
        for f in sorted(set(fams[~y].tolist()))
    }
    return {
        "n": len(examples),
        "injections": int(y.sum()),
        "at_0.5": metrics_at(y, scores, 0.5),
        "at_0.85": metrics_at(y, scores, 0.85),
        "recall_by_family_at_0.5": recall_by_family,
        "fpr_by_family_at_0.5": fpr_by_family,
    }


def train(data: Path, out: Path, *, buckets: int = BUCKETS, seed: int = 0) -> dict[str, Any]:
    """Fit on the train split, write the model file, and return its held-out metrics."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    examples = load_examples(data)
    train_ex = [e for e in examples if e.split == "train"]
    held_ex = [e for e in examples if e.split == "heldout"]
    if not train_ex or not held_ex:
        raise SystemExit(f"{data}: needs both a train and a heldout split")
    x = design(train_ex, buckets)
    y = np.array([e.injection for e in train_ex])
    groups = np.array([e.group for e in train_ex])
    folds = list(GroupKFold(n_splits=FOLDS).split(x, y, groups))
    cv: dict[float, float] = {}
    for c in C_GRID:
        oof = np.zeros(len(train_ex))
        for tr, te in folds:
            oof[te] = _fit(x[tr], y[tr], c, seed).predict_proba(x[te])[:, 1]
        cv[c] = float(roc_auc_score(y, oof))
    # The most regularised C within CV_SLACK AUROC of the best: steadier scores, same ranking.
    best_c = min(c for c in C_GRID if cv[c] >= max(cv.values()) - CV_SLACK)
    model = _fit(x, y, best_c, seed)
    file: dict[str, Any] = {
        "format": FORMAT,
        "buckets": buckets,
        "weights": encode_weights([float(w) for w in model.coef_[0]]),
        "bias": float(model.intercept_[0]),
    }
    detector = Detector(InjectionModel.from_json(file))
    metrics = {
        "heldout": evaluate(detector, held_ex),
        "train_n": len(train_ex),
        "cv_auroc_by_C": {str(c): round(v, 4) for c, v in cv.items()},
        "C": best_c,
    }
    file["metrics"] = metrics
    file["training"] = {
        "data": data.name,
        "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "seed": seed,
        "model": "sklearn LogisticRegression(class_weight=balanced, lbfgs)",
    }
    out.write_text(json.dumps(file, separators=(",", ":")) + "\n", encoding="utf-8")
    return metrics


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    training_cli(
        argv,
        prog="python -m keel.input.train_injection",
        description=__doc__,
        data="injection/prompts.jsonl",
        out=Path(__file__).with_name(SHIPPED),
        buckets=BUCKETS,
        train=train,
    )


if __name__ == "__main__":
    main()
