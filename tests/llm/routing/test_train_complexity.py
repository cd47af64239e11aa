"""Training the complexity scorer: the script's output loads, and held-out prompts never shape it."""

from __future__ import annotations

import importlib.util
import json
import random
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest
from routing_helpers import DATA, prompts

from keel.llm.routing import ComplexityModel
from keel.llm.routing.complexity import decode_weights
from keel.llm.routing.train_complexity import main, train

pytestmark = pytest.mark.unit


def _subset(path: Path, *, flip_heldout: bool = False) -> Path:
    """A few hundred prompts of each split, optionally with every held-out label flipped."""
    rng = random.Random(11)
    rows = prompts()
    picked = rng.sample([r for r in rows if r["split"] == "train"], 300)
    picked += rng.sample([r for r in rows if r["split"] == "heldout"], 80)
    with path.open("w", encoding="utf-8") as f:
        for r in picked:
            if flip_heldout and r["split"] == "heldout":
                r = {**r, "label": "small" if r["label"] == "large" else "large"}
            f.write(json.dumps(r) + "\n")
    return path


def test_the_training_script_writes_a_model_the_router_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = _subset(tmp_path / "p.jsonl"), tmp_path / "m.json"
    main(["--data", str(data), "--out", str(out), "--buckets", "4096"])
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and '"heldout_auroc"' in printed
    model = ComplexityModel.load(out)
    metrics = model.info["metrics"]
    assert metrics["max_abs_diff_vs_sklearn"] < 1e-6  # the plain-weights scorer is the trained model
    assert metrics["heldout_n"] == 80 and metrics["train_n"] == 300
    assert metrics["heldout_auroc"] > 0.8
    assert len(model.weights) == 4096 and len(model.quantiles) == 101
    assert model.score("Prove that there are infinitely many primes.") > model.score("hi")


def test_held_out_labels_never_reach_the_weights(tmp_path: Path) -> None:
    plain, flipped = _subset(tmp_path / "a.jsonl"), _subset(tmp_path / "b.jsonl", flip_heldout=True)
    metrics_a = train(plain, tmp_path / "a.json", buckets=4096, c_grid=(10.0,))
    metrics_b = train(flipped, tmp_path / "b.json", buckets=4096, c_grid=(10.0,))
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    for key in ("weights", "hand", "bias", "quantiles"):
        assert a[key] == b[key]
    assert metrics_a["heldout_auroc"] > 0.8 > metrics_b["heldout_auroc"]  # the metrics did see them


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("complexity_build", DATA.parent / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_prompt_set_is_what_its_generator_makes_and_splits_by_template() -> None:
    rows = _build_module().build()
    assert rows == prompts()
    assert len(rows) >= 1000
    splits: dict[str, set[str]] = {}
    for r in rows:
        if r["source"] == "template":
            splits.setdefault(r["template"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits.values())  # no kind of prompt is in both splits
    assert {r["label"] for r in rows if r["split"] == "heldout"} == {"small", "large"}


@pytest.mark.slow
def test_the_shipped_model_is_what_training_on_the_shipped_data_makes(tmp_path: Path) -> None:
    """Guards against changing the features (or the data) without retraining."""
    shipped = json.loads(resources.files("keel.llm.routing").joinpath("complexity_model.json").read_text())
    train(DATA, tmp_path / "m.json", c_grid=(shipped["metrics"]["C"],))
    again = json.loads((tmp_path / "m.json").read_text())
    retrain = "differs: run python -m keel.llm.routing.train_complexity"
    # Close, not bit-equal: another BLAS or scikit-learn release may move the last digits.
    assert decode_weights(again["weights"]) == pytest.approx(decode_weights(shipped["weights"]), abs=1e-3), (
        retrain
    )
    assert again["hand"]["weights"] == pytest.approx(shipped["hand"]["weights"], abs=1e-3), retrain
    assert again["bias"] == pytest.approx(shipped["bias"], abs=1e-3), retrain
    assert again["quantiles"] == pytest.approx(shipped["quantiles"], abs=1e-3), retrain
