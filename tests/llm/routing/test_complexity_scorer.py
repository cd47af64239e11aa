"""The shipped complexity scorer: obvious cases, held-out quality, determinism, loading errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from routing_helpers import DATA, auroc, prompts

from keel.errors import ConfigError
from keel.llm.routing import ComplexityModel, shipped_model

pytestmark = pytest.mark.unit

# Written for this test, not taken from the data set.
OBVIOUSLY_SMALL = [
    "hi there",
    "thanks a lot!",
    "What is the capital of Italy?",
    "Who wrote Hamlet?",
    "Translate 'good night' into Spanish.",
    "Is this review positive or negative? 'Terrible service, never again.'",
    "Extract the email address from: write to sales@example.com today",
    "Sort these words alphabetically: pear apple mango",
    "What does CPU stand for?",
    "How many days are in a week?",
]
OBVIOUSLY_LARGE = [
    "Prove that there are infinitely many prime numbers.",
    "Write a Python function that merges overlapping intervals, with unit tests.",
    "Design a distributed rate limiter that handles 100,000 requests per second; describe failure modes.",
    "Compare and contrast PostgreSQL and Cassandra in terms of consistency, latency and operations.",
    "Explain step by step why the seasons change.",
    "Solve for x: x^2 - 7x + 10 = 0, showing your work.",
    "Here is my code:\n```\nfor i in range(len(xs)):\n    xs.pop(i)\n```\nWhy does it skip elements? Fix it.",
    "Write a 1,000-word persuasive essay arguing that cities should be car-free.",
    "Analyze the likely impact of a carbon tax on manufacturing jobs over the next decade.",
    "Implement Dijkstra's shortest path algorithm in Rust.",
]


def test_obvious_prompts_land_on_the_right_side() -> None:
    model = shipped_model()
    small = {p: model.score(p) for p in OBVIOUSLY_SMALL}
    large = {p: model.score(p) for p in OBVIOUSLY_LARGE}
    assert all(s < 0.5 for s in small.values()), small
    assert all(s > 0.5 for s in large.values()), large
    assert max(small.values()) < min(large.values())


def test_the_shipped_model_separates_held_out_prompts_it_never_saw() -> None:
    model = shipped_model()
    held = prompts("heldout")
    labels = [r["label"] == "large" for r in held]
    scores = [model.score(r["text"]) for r in held]
    accuracy = sum((s > 0.5) == y for s, y in zip(scores, labels, strict=True)) / len(held)
    assert len(held) >= 300
    assert auroc(labels, scores) >= 0.95
    assert accuracy >= 0.9
    hand = [i for i, r in enumerate(held) if r["source"] == "hand"]
    assert auroc([labels[i] for i in hand], [scores[i] for i in hand]) >= 0.85  # the hardest part of it


def test_the_shipped_model_was_trained_on_the_shipped_data() -> None:
    info = shipped_model().info
    assert info["training"]["data_sha256"] == hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert info["metrics"]["heldout_auroc"] >= 0.95


def test_scores_are_probabilities_for_any_text() -> None:
    model = shipped_model()
    for text in ["", " ", "?", "é" * 10, "word " * 50_000, "```\n" + "x = 1;\n" * 5000 + "```"]:
        assert 0.0 <= model.score(text) <= 1.0


def test_scores_do_not_depend_on_the_process_and_need_no_training_stack() -> None:
    text = "Write a Go function that detects cycles in a directed graph."
    code = (
        "import sys\n"
        "from keel.llm.routing import shipped_model\n"
        f"print(repr(shipped_model().score({text!r})))\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'torch') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert float(out[0]) == shipped_model().score(text)
    assert out[1] == "[]"


def test_thresholds_for_a_larger_share_are_lower() -> None:
    model = shipped_model()
    shares = [0.0, 0.1, 0.3, 0.5, 0.9, 1.0]
    thresholds = [model.threshold_for(s) for s in shares]
    assert thresholds == sorted(thresholds, reverse=True)
    assert thresholds[0] == model.quantiles[-1] and thresholds[-1] == model.quantiles[0]


def test_an_unusable_model_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=r"nope\.json"):
        ComplexityModel.load(missing)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "something-else/9"}))
    with pytest.raises(ConfigError, match=r"wrong\.json.*something-else/9"):
        ComplexityModel.load(wrong)
    broken = tmp_path / "broken.json"
    data = json.loads(resources.files("keel.llm.routing").joinpath("complexity_model.json").read_text())
    data["quantiles"] = [0.9, 0.1]
    broken.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="non-decreasing"):
        ComplexityModel.load(broken)
