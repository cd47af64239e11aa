"""Shared by the gateway tests: one ``keel serve`` over three ``keel fake-upstream`` servers per session."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from keel.keys import hash_key
from keel.testing import FakeUpstream
from tests.gateway import Gateway

KEY_ALL = "sk-test-all-features"
KEY_EXTRACT = "sk-test-extract-only"
KEY_ADMIN = "sk-test-admin"
CONFIG = """\
models:
  - name: upstream
    provider: openai
    base_url: @BASE_URL@
    api_key_env: UPSTREAM_API_KEY
    model: gpt-4o-mini
    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}
  - name: upstream-nousage
    provider: openai
    base_url: @NOUSAGE_URL@
    price: {input_per_mtok: 1.0, output_per_mtok: 1.0}
  - name: faulty
    provider: openai
    base_url: @FAULTY_URL@
    timeout: 1
    retry: {attempts: 1}        # these tests look at how one failure is reported
    breaker: {failures: 1000}
features:
  - name: support
    model: upstream
    prompt: support
    limits: {max_input_chars: 5000}
  - name: extract
    model: upstream
    schema:
      type: object
      properties: {city: {type: string}, nights: {type: integer, minimum: 1}}
      required: [city, nights]
  - name: counted
    model: upstream-nousage
  - name: flaky
    model: faulty
keys:
  - name: all
    hash: @HASH_ALL@
  - name: extract-only
    hash: @HASH_EXTRACT@
    features: [extract]
  - name: ops
    hash: @HASH_ADMIN@
    admin: true
storage: {path: ledger.db}
ledger: {flush_interval: 0.05}
server: {max_body_bytes: 20000}
"""


def write_config(path: Path, base_url: str, nousage_url: str, faulty_url: str) -> None:
    """The test gateway's keel.yaml, pointing at the fake upstreams."""
    text = (
        CONFIG.replace("@BASE_URL@", base_url)
        .replace("@NOUSAGE_URL@", nousage_url)
        .replace("@FAULTY_URL@", faulty_url)
        .replace("@HASH_ALL@", hash_key(KEY_ALL))
        .replace("@HASH_EXTRACT@", hash_key(KEY_EXTRACT))
        .replace("@HASH_ADMIN@", hash_key(KEY_ADMIN))
    )
    path.write_text(text)


PROMPT = "system: 'You are the support bot of {{ product }}.'\nvariables: {product: {default: Acme}}\n"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gw")
    (tmp / "prompts").mkdir()
    (tmp / "prompts" / "support.yaml").write_text(PROMPT)
    with FakeUpstream() as fake, FakeUpstream(no_usage=True) as nousage, FakeUpstream(hang_ms=5000) as faulty:
        write_config(tmp / "keel.yaml", fake.base_url, nousage.base_url, faulty.base_url)
        with Gateway(tmp / "keel.yaml", env={"UPSTREAM_API_KEY": "upstream-secret"}) as gw:
            gw.fake = fake  # type: ignore[attr-defined]
            gw.faulty = faulty  # type: ignore[attr-defined]
            yield gw


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=KEY_ALL, max_retries=0) as c:
        yield c


def ledger_rows(gateway: Gateway, call_id: str | None = None, wait: bool = True) -> list[dict[str, Any]]:
    """Rows of the gateway's ledger (waiting for the batch writer to flush ``call_id``)."""
    deadline = time.monotonic() + 10
    while True:
        db = sqlite3.connect(gateway.config.parent / "ledger.db")
        try:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("select * from calls order by ts")]
        except sqlite3.OperationalError:
            rows = []
        finally:
            db.close()
        if (
            not wait
            or call_id is None
            or any(r["id"] == call_id for r in rows)
            or time.monotonic() > deadline
        ):
            return rows
        time.sleep(0.05)
