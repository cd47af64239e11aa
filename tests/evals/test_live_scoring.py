"""Live scoring: a running gateway scores a sample of calls; results reach /metrics and the ledger."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import openai
import pytest
from prometheus_client import CollectorRegistry
from tests.gateway import Gateway, http

from keel.call import Call, Completion, Status
from keel.config import load_config
from keel.context.chunk import Chunk
from keel.context.citations import Source
from keel.errors import ConfigError
from keel.evals.live import LiveScoreStage
from keel.evals.settings import LiveScoring
from keel.testing import FakeUpstream

CONFIG = """\
models:
  - name: up
    provider: openai
    base_url: "@URL@"
    price: {input_per_mtok: 1, output_per_mtok: 1}
features:
  - name: support
    model: up
    scoring:
      sample: 1.0
      assert:
        - {type: regex, value: "^You said: "}
        - {type: contains, value: parcel, weight: 3}
storage: {path: keel.db}
ledger: {flush_interval: 0.05}
"""


@pytest.mark.integration
def test_sampled_calls_are_scored_into_metrics_and_the_ledger(tmp_path: Path) -> None:
    with FakeUpstream() as fake:
        (tmp_path / "keel.yaml").write_text(CONFIG.replace("@URL@", fake.base_url))
        with (
            Gateway(tmp_path / "keel.yaml") as gw,
            openai.OpenAI(base_url=gw.base_url, api_key="x") as client,
        ):
            for text in ("Where is my parcel?", "Where is my parcel now?", "Can I get a refund?"):
                client.chat.completions.create(model="support", messages=[{"role": "user", "content": text}])
            metrics = http("GET", gw.url + "/metrics").body.decode()
            deadline = time.monotonic() + 10
            rows: list[tuple[str]] = []
            while len(rows) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
                with sqlite3.connect(tmp_path / "keel.db") as db:
                    rows = db.execute("select verdicts from calls").fetchall()
    assert (
        'keel_live_checks_total{assertion="contains",feature="support",prompt_version="",result="pass"} 2.0'
        in metrics
    )
    assert (
        'keel_live_checks_total{assertion="contains",feature="support",prompt_version="",result="fail"} 1.0'
        in metrics
    )
    assert (
        'keel_live_checks_total{assertion="regex",feature="support",prompt_version="",result="pass"} 3.0'
        in metrics
    )
    assert 'keel_live_score_count{feature="support",prompt_version=""} 3.0' in metrics
    live = [v for (raw,) in rows for v in json.loads(raw) if v["stage"] == "eval.live"]
    assert sorted((v["action"], v["score"]) for v in live) == [("allow", 1.0), ("allow", 1.0), ("flag", 0.25)]
    assert "missing 'parcel'" in next(v["detail"] for v in live if v["action"] == "flag")


@pytest.mark.unit
def test_only_the_sampled_share_of_answered_calls_is_scored() -> None:
    config = LiveScoring.model_validate({"sample": 0.25, "assert": [{"type": "is-json"}]})
    stage = LiveScoreStage(config, CollectorRegistry(), Path("."), seed=7)

    def call(status: Status = Status.OK) -> Call:
        c = Call(feature="f", messages=[{"role": "user", "content": "hi"}])
        c.completion = Completion(
            choices=[{"index": 0, "message": {"role": "assistant", "content": "{}"}}], model="m"
        )
        c.status = status
        return c

    answered = [call() for _ in range(800)]
    failed = [call(Status.ERROR) for _ in range(50)]

    async def go() -> None:
        for c in answered + failed:
            await stage.run(c)

    asyncio.run(go())
    scored = sum(bool(c.verdicts) for c in answered)
    assert 150 < scored < 250  # 25 % of 800 expected
    assert not any(c.verdicts for c in failed)


@pytest.mark.unit
def test_model_backed_assertions_are_refused_for_live_scoring(tmp_path: Path) -> None:
    (tmp_path / "keel.yaml").write_text(
        "models: [{name: m, provider: openai, base_url: 'http://127.0.0.1:9/v1', "
        "price: {input_per_mtok: 1}}]\n"
        "features: [{name: f, model: m, scoring: {assert: [{type: llm-rubric, value: polite}]}}]\n"
    )
    with pytest.raises(ConfigError, match="'llm-rubric' needs a model call"):
        load_config(tmp_path / "keel.yaml")


@pytest.mark.unit
def test_live_grounded_checks_answers_against_the_sources_the_call_retrieved() -> None:
    config = LiveScoring.model_validate({"sample": 1.0, "assert": [{"type": "grounded", "threshold": 0.6}]})
    stage = LiveScoreStage(config, CollectorRegistry(), Path("."), seed=1)
    chunk = Chunk(source="refunds.md", ordinal=0, text="Refunds are paid within 14 days of the return.")

    def call(answer: str) -> Call:
        c = Call(feature="f", messages=[{"role": "user", "content": "How long do refunds take?"}])
        c.chunks = [Source(n=1, chunk=chunk)]
        c.completion = Completion(
            choices=[{"index": 0, "message": {"role": "assistant", "content": answer}}], model="m"
        )
        c.status = Status.OK
        return c

    good, bad = call("Refunds are paid within 14 days [1]."), call("Refunds are paid within 90 days [1].")
    asyncio.run(stage.run(good))
    asyncio.run(stage.run(bad))
    assert good.verdicts[-1].reason == "live_pass"
    assert bad.verdicts[-1].reason == "live_fail" and "grounded" in (bad.verdicts[-1].detail or "")
