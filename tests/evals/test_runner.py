"""The runner in process: one run per model, a judge model for llm-rubric, failures that stay failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from keel.config import Settings
from keel.errors import ConfigError, UpstreamError
from keel.evals.runner import Runner, targets
from keel.evals.store import SQLiteEvalStore
from keel.evals.suite import load_suite
from keel.llm.providers import ModelRequest
from keel.llm.providers.base import Provider
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

MakeSettings = Callable[..., Settings]
CONFIG = """\
models:
  - {name: small, provider: scripted, price: {input_per_mtok: 1, output_per_mtok: 1}}
  - {name: large, provider: scripted, price: {input_per_mtok: 5, output_per_mtok: 5}, retry: {attempts: 1}}
  - {name: judge, provider: scripted, price: {input_per_mtok: 1, output_per_mtok: 1}}
features:
  - {name: support, model: small, prompt: support}
storage: {path: keel.db}
"""
PROMPT = "system: 'Be kind.'\n"
SUITE = {
    "feature": "support",
    "judge": "judge",
    "cases": [{"id": "hello", "input": "hello"}, {"id": "boom", "input": "boom"}],
    "defaults": {"assert": [{"type": "llm-rubric", "value": "The answer greets the user"}]},
}


def _providers(calls: list[str]) -> dict[str, Provider]:
    def answer(model: str) -> Callable[[ModelRequest], str | UpstreamError]:
        def reply(req: ModelRequest) -> str | UpstreamError:
            calls.append(model)
            text = req.messages[-1]["content"]
            return UpstreamError("upstream down") if text == "boom" else f"{model} says hi"

        return reply

    def grade(req: ModelRequest) -> str:
        calls.append("judge")
        ok = "large says hi" in req.messages[-1]["content"]
        return json.dumps(
            {"pass": ok, "score": 0.9 if ok else 0.1, "reason": "greets" if ok else "too short"}
        )

    return {
        "small": ScriptedProvider("small", answer("small")),
        "large": ScriptedProvider("large", answer("large")),
        "judge": ScriptedProvider("judge", grade),
    }


def test_one_run_per_model_graded_by_the_judge_and_cached(
    make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(CONFIG, {"support": PROMPT})
    (tmp_path / "suite.yaml").write_text(json.dumps(SUITE))
    suite = load_suite(tmp_path / "suite.yaml")
    calls: list[str] = []
    providers = _providers(calls)
    import keel.evals.runner as runner_module

    real = runner_module.Pipeline
    monkeypatch.setattr(runner_module, "Pipeline", lambda s: real(s, providers=providers))
    with SQLiteEvalStore(settings.db_path) as store:
        runner = Runner(suite, settings, store, concurrency=2)
        runs = [
            asyncio.run(runner.run(t))
            for t in targets(suite, settings, prompt=None, models=["small", "large"])
        ]
        small, large = ({r.case_id: r for r in run.results} for run in runs)
        assert small["hello"].passed is False and small["hello"].outcomes[0]["reason"] == "judge: too short"
        assert large["hello"].passed is True and large["hello"].score == 0.9
        assert large["boom"].passed is False and "upstream down" in (large["boom"].error or "")
        assert runs[1].prompt is not None and runs[1].prompt.startswith("support@")
        before = len(calls)
        again = asyncio.run(runner.run(targets(suite, settings, prompt=None, models=["large"])[0]))
        assert [r.cached for r in again.results] == [True, False]  # a failed call is not cached
        assert calls[before:] == [
            "large"
        ]  # only the failed case was asked again; the judge's verdict was cached


def test_unknown_feature_model_or_judge_are_clear_errors(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings(CONFIG, {"support": PROMPT})
    (tmp_path / "s.yaml").write_text(json.dumps({**SUITE, "feature": "nope"}))
    with pytest.raises(ConfigError, match="feature 'nope' is not in"):
        targets(load_suite(tmp_path / "s.yaml"), settings, prompt=None, models=[])
    (tmp_path / "s.yaml").write_text(json.dumps(SUITE))
    with pytest.raises(ConfigError, match="model 'huge' is not in"):
        targets(load_suite(tmp_path / "s.yaml"), settings, prompt=None, models=["huge"])
