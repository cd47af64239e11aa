"""The zero-config path on the real local Gemma model: the gateway, the library and the CLI."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from pathlib import Path

import openai
import pytest

from keel import Call, Pipeline
from keel.config import parse_config
from tests.gateway import KEEL, Gateway

pytestmark = pytest.mark.slow

SCHEMA_CONFIG = """\
models: [{name: local, provider: llamacpp}]
features:
  - name: extract
    model: local
    schema:
      type: object
      properties:
        name: {type: string, maxLength: 40}
        age: {type: integer, minimum: 0, maximum: 130}
        role: {type: string, enum: [customer, agent, other]}
      required: [name, age, role]
storage: {path: keel.db}
"""


def test_keel_serve_with_no_config_answers_on_the_local_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with (
        Gateway(None, cwd=tmp_path / "empty") as gw,
        openai.OpenAI(base_url=gw.base_url, api_key="none") as client,
    ):
        raw = client.chat.completions.with_raw_response.create(
            model="default", messages=[{"role": "user", "content": "The capital of France is"}], max_tokens=12
        )
        reply = raw.parse()
        assert raw.headers["x-keel-model"] == "local"
        assert reply.choices[0].message.content
        assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12
        chunks = list(
            client.chat.completions.create(
                model="default",
                messages=[{"role": "user", "content": "One, two,"}],
                max_tokens=8,
                stream=True,
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    db = tmp_path / "empty" / ".keel" / "keel.db"
    deadline = time.monotonic() + 10
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline and len(rows) < 2:
        with sqlite3.connect(db) as con:
            rows = con.execute("select feature, model from calls").fetchall()
        con.close()
        time.sleep(0.1)
    assert rows == [("default", "local"), ("default", "local")]


def test_schema_constrained_generation_parses_and_validates(tmp_path: Path) -> None:
    settings = parse_config(SCHEMA_CONFIG, base_dir=tmp_path)

    async def go() -> list[object]:
        async with Pipeline(settings) as p:
            outputs = []
            for text in ("Maria, 34, is a customer.", "Agent Tom (52) answered the call."):
                r = await p.run(Call(feature="extract", messages=[{"role": "user", "content": text}]))
                outputs.append(r.output)
            return outputs

    for output in asyncio.run(go()):
        assert isinstance(output, dict)
        assert isinstance(output["name"], str) and 0 <= output["age"] <= 130
        assert output["role"] in {"customer", "agent", "other"}


def test_keel_ask_prints_the_answer_and_a_cost_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [KEEL, "ask", "Roses are red, violets are", "--max-tokens", "8"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    summary = proc.stderr.strip().splitlines()[-1]
    assert summary.startswith("feature=default model=local ")
    assert "cost=$0.000000" in summary and "latency=" in summary
    out = subprocess.run(
        [KEEL, "usage", "--format", "json"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)
