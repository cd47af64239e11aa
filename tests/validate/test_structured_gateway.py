"""Structured output through `keel serve` with the official openai SDK, over an upstream breaking JSON."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from tests.gateway import Gateway

from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "nights": {"type": "integer", "minimum": 1, "maximum": 30},
        "rooms": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"kind": {"enum": ["single", "double"]}, "guests": {"type": "integer"}},
                "required": ["kind", "guests"],
            },
        },
    },
    "required": ["city", "nights", "rooms"],
}
CONFIG = f"""\
models:
  - name: upstream
    provider: openai
    base_url: @URL@
    retry: {{attempts: 1}}
features:
  - name: booking
    model: upstream
    schema: {json.dumps(SCHEMA)}
    validation:
      structured: {{reasks: 4}}
storage: {{path: ledger.db}}
ledger: {{flush_interval: 0.05}}
"""
ASK: Any = [{"role": "user", "content": "Two nights in Oslo, one double room for two."}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, FakeUpstream]]:
    tmp = tmp_path_factory.mktemp("structured")
    with FakeUpstream(malformed_rate=0.5, seed=11) as fake:
        (tmp / "keel.yaml").write_text(CONFIG.replace("@URL@", fake.base_url))
        with Gateway(tmp / "keel.yaml") as gw:
            yield gw, fake


@pytest.fixture
def client(served: tuple[Gateway, FakeUpstream]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=served[0].base_url, api_key="unused", max_retries=0) as c:
        yield c


def _counters(config: Path, n: int) -> dict[str, int]:
    """Rung counters summed over the ledger (waiting until ``n`` rows are there)."""
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(config.parent / "ledger.db") as db:
            rows = [r[0] for r in db.execute("select counters from calls")]
        db.close()
        if len(rows) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    total: dict[str, int] = {}
    for raw in rows:
        for k, v in json.loads(raw).items():
            total[k] = total.get(k, 0) + v
    return total


def test_streamed_and_plain_answers_are_schema_valid_though_the_upstream_breaks_half_of_them(
    served: tuple[Gateway, FakeUpstream], client: openai.OpenAI
) -> None:
    gateway, fake = served
    texts = []
    for i in range(24):
        if i % 2:
            stream = client.chat.completions.create(model="booking", messages=ASK, stream=True)
            texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        else:
            reply = client.chat.completions.create(model="booking", messages=ASK)
            texts.append(reply.choices[0].message.content or "")
    for text in texts:
        jsonschema.validate(json.loads(text), SCHEMA)
    assert fake.stats()["outcomes"]["malformed"] >= 6  # the upstream did break answers
    counters = _counters(gateway.config, 24)  # type: ignore[arg-type]
    rungs = {k.rsplit(".", 1)[1]: v for k, v in counters.items() if k.startswith("validation.schema.")}
    assert rungs.get("repaired", 0) > 0 and rungs.get("reasked", 0) > 0
    assert (
        rungs.get("validated", 0) == 0
    )  # the model was asked for json_schema: valid answers were constrained
    assert rungs["constrained"] + rungs["repaired"] + rungs["reasked"] == 24
