"""``grounded`` in an eval run: a RAG feature answers from the documents a case brings, and the
Validation layer's grounding score tells a faithful answer from one that changed a fact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from keel.config import Settings
from keel.context.embed import HashEmbedder
from keel.evals.runner import Runner, targets
from keel.evals.store import SQLiteEvalStore
from keel.evals.suite import load_suite
from keel.llm.providers import ModelRequest
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

CONFIG = """\
models:
  - {name: m, provider: scripted, price: {input_per_mtok: 1, output_per_mtok: 1}}
features:
  - {name: rag, model: m, retrieval: {documents: true, k: 2, mode: keyword}}
embeddings: {provider: openai, base_url: "http://127.0.0.1:9/v1"}
storage: {path: keel.db}
"""
DOCS = [
    {"id": "refunds", "text": "Refunds are paid within 14 days of the return.", "source": "refunds.md"},
    {"id": "hours", "text": "The Lyon shop opens at nine on weekdays.", "source": "hours.md"},
]
SUITE = {
    "feature": "rag",
    "cases": [
        {"id": "faithful", "input": "How fast are refunds paid?", "documents": DOCS},
        {"id": "changed", "input": "When do refunds arrive?", "documents": DOCS},
    ],
    "defaults": {"assert": [{"type": "grounded", "threshold": 0.7}]},
}


def test_grounded_scores_answers_against_the_sources_packed_for_the_call(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(CONFIG)
    (tmp_path / "suite.yaml").write_text(json.dumps(SUITE))
    suite = load_suite(tmp_path / "suite.yaml")
    seen_prompts: list[str] = []

    def answer(req: ModelRequest) -> str:
        seen_prompts.append(str(req.messages[0]["content"]))
        if "fast" in str(req.messages[-1]["content"]):
            return "Refunds are paid within 14 days of the return [1]."
        return "Refunds are paid within 45 days by bank transfer [1]."

    import keel.evals.runner as runner_module

    real = runner_module.Pipeline
    provider = ScriptedProvider("m", answer)
    monkeypatch.setattr(runner_module, "Pipeline", lambda s: real(s, providers={"m": provider}))
    with SQLiteEvalStore(settings.db_path) as store:
        runner = Runner(suite, settings, store, embedder=HashEmbedder())
        target = targets(suite, settings, prompt=None, models=[])[0]
        for attempt in range(2):  # the second run is served from the cache, sources included
            run = asyncio.run(runner.run(target))
            by_id = {r.case_id: r for r in run.results}
            assert by_id["faithful"].passed, by_id["faithful"].outcomes
            assert not by_id["changed"].passed
            reason = by_id["changed"].outcomes[0]["reason"]
            assert "45 days" in reason and "threshold 0.7" in reason
            assert [r.cached for r in run.results] == [attempt == 1] * 2
    assert len(seen_prompts) == 2 and all("Refunds are paid within 14 days" in p for p in seen_prompts)
