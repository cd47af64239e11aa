"""Managed keys through a real ``keel serve``: made and revoked by the CLI while it runs, scoped, limited."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from keel.testing import FakeUpstream
from tests.gateway import KEEL, Gateway, http
from tests.server.conftest import ledger_rows

pytestmark = pytest.mark.integration

CONFIG = """\
models:
  - {name: small, provider: openai, base_url: "@URL@", price: {input_per_mtok: 1000, output_per_mtok: 1000}}
  - {name: big, provider: openai, base_url: "@URL@"}
features:
  - {name: support, model: small}
  - {name: extract, model: big, fallbacks: [small]}
storage: {path: ledger.db}
ledger: {flush_interval: 0.05}
"""
WINDOW = 10.0  # generous bound on the reload window (2 s), for a loaded machine
HI: Any = [{"role": "user", "content": "hi"}]


def keel(config: Path, *args: str) -> str:
    """Run ``keel keys ...`` against ``config`` and return its stdout."""
    out = subprocess.run(
        [KEEL, "keys", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def eventually(check: Callable[[], bool]) -> bool:
    """True as soon as ``check()`` is, False when it still is not after WINDOW seconds."""
    deadline = time.monotonic() + WINDOW
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def status(gw: Gateway, key: str | None, feature: str = "support", **extra: object) -> int:
    """The status of one chat request with ``key``."""
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    body = json.dumps({"model": feature, "messages": HI, **extra}).encode()
    return http("POST", gw.base_url + "/chat/completions", body, headers).status


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("keys-gw")
    with FakeUpstream() as fake:
        config = tmp / "keel.yaml"
        config.write_text(CONFIG.replace("@URL@", fake.base_url))
        keys = {
            "app": keel(config, "create", "--name", "app", "--features", "support"),
            "small-only": keel(config, "create", "--name", "small-only", "--models", "small"),
            "ops": keel(config, "create", "--name", "ops", "--admin"),
            "capped": keel(config, "create", "--name", "capped", "--budget-usd", "0.5/day"),
        }
        with Gateway(config) as gw:
            yield gw, config, keys


def client(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def test_a_store_key_works_and_is_recorded_by_name(served: tuple[Gateway, Path, dict[str, str]]) -> None:
    gw, _, keys = served
    with client(gw, keys["app"]) as c:
        raw = c.chat.completions.with_raw_response.create(model="support", messages=HI)
    call_id = raw.headers["x-keel-call-id"]
    (row,) = [r for r in ledger_rows(gw, call_id) if r["id"] == call_id]
    assert row["key_id"] == "app"
    assert status(gw, None) == 401 and status(gw, "sk-keel-not-a-key") == 401


def test_a_key_created_while_serving_works_and_stops_working_once_revoked(
    served: tuple[Gateway, Path, dict[str, str]],
) -> None:
    gw, config, _ = served
    late = keel(config, "create", "--name", "late")
    assert eventually(lambda: status(gw, late) == 200)
    keel(config, "revoke", "late")
    assert eventually(lambda: status(gw, late) == 401)
    with client(gw, late) as c, pytest.raises(openai.AuthenticationError, match="invalid API key"):
        c.chat.completions.create(model="support", messages=HI)


def test_feature_and_model_scopes_are_enforced_and_named(
    served: tuple[Gateway, Path, dict[str, str]],
) -> None:
    gw, _, keys = served
    with client(gw, keys["app"]) as c, pytest.raises(openai.PermissionDeniedError) as denied:
        c.chat.completions.create(model="extract", messages=HI)
    assert "may not use feature 'extract'" in str(denied.value)
    with client(gw, keys["small-only"]) as c:
        assert c.chat.completions.create(model="support", messages=HI).choices
        with pytest.raises(openai.PermissionDeniedError) as denied:
            c.chat.completions.create(model="extract", messages=HI)
    assert "may not use model 'big', which feature 'extract' may call" in str(denied.value)


def test_models_lists_only_what_the_key_may_use(served: tuple[Gateway, Path, dict[str, str]]) -> None:
    gw, _, keys = served
    seen = {}
    for name in ("app", "small-only", "ops"):
        with client(gw, keys[name]) as c:
            seen[name] = sorted(m.id for m in c.models.list())
    assert seen == {"app": ["support"], "small-only": ["support"], "ops": ["extract", "support"]}
    with client(gw, keys["app"]) as c, pytest.raises(openai.NotFoundError):
        c.models.retrieve("extract")


def test_metrics_need_an_admin_key(served: tuple[Gateway, Path, dict[str, str]]) -> None:
    gw, _, keys = served
    assert http("GET", gw.url + "/metrics").status == 401
    denied = http("GET", gw.url + "/metrics", headers={"authorization": f"Bearer {keys['app']}"})
    assert denied.status == 403 and "is not an admin key" in denied.json()["error"]["message"]
    ok = http("GET", gw.url + "/metrics", headers={"authorization": f"Bearer {keys['ops']}"})
    assert ok.status == 200 and b"keel_" in ok.body


def test_a_store_keys_budget_is_enforced(served: tuple[Gateway, Path, dict[str, str]]) -> None:
    gw, _, keys = served
    with client(gw, keys["capped"]) as c:
        # A call that may cost more than the whole daily budget ($0.5: up to 1024 output tokens at $1000/M).
        with pytest.raises(openai.RateLimitError) as refused:
            c.chat.completions.create(model="support", messages=HI)
        assert "API key 'capped'" in str(refused.value) and "daily budget" in str(refused.value)
        assert refused.value.code == "budget_exceeded"
        small = c.chat.completions.create(model="support", messages=HI, max_tokens=5)
    assert small.choices


def test_a_rate_limit_on_a_key_created_while_serving_is_enforced(
    served: tuple[Gateway, Path, dict[str, str]],
) -> None:
    gw, config, _ = served
    limited = keel(config, "create", "--name", "limited", "--rpm", "1")
    assert eventually(lambda: status(gw, limited) == 200)
    with client(gw, limited) as c, pytest.raises(openai.RateLimitError) as refused:
        c.chat.completions.create(model="support", messages=HI)
    assert "API key 'limited' allows 1 request per minute" in str(refused.value)


def test_an_open_gateway_closes_once_a_key_exists_and_stays_closed_when_all_are_revoked(
    tmp_path: Path,
) -> None:
    with FakeUpstream() as fake:
        config = tmp_path / "keel.yaml"
        config.write_text(CONFIG.replace("@URL@", fake.base_url))
        with Gateway(config) as gw:
            assert status(gw, None) == 200
            key = keel(config, "create", "--name", "first")
            assert eventually(lambda: status(gw, None) == 401)
            assert status(gw, key) == 200
            keel(config, "revoke", "first")
            assert eventually(lambda: status(gw, key) == 401)
            assert status(gw, None) == 401
