"""What a real ``keel serve`` process keeps in its ledger when it stops: everything on a graceful
stop, everything but the last flush window after ``kill -9``; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from tests.gateway import KEEL, Gateway
from tests.pg_schema import fresh_schema

from keel.monitor.ledger import Ledger
from keel.monitor.open import open_ledger
from keel.testing import FakeUpstream

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # real processes, seconds each

CONFIG = """\
models:
  - name: upstream
    provider: openai
    base_url: {base_url}
    model: gpt-4o-mini
features:
  - name: support
    model: upstream
storage: {{path: keel.db}}
ledger:
  url: {ledger}
  flush_interval: {flush}
  batch_size: 100000
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as f:
        yield f


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
    else:
        with fresh_schema() as url:
            yield url


def _serve(tmp_path: Path, fake: FakeUpstream, ledger: str, flush: float) -> Gateway:
    config = tmp_path / "keel.yaml"
    config.write_text(CONFIG.format(base_url=fake.base_url, ledger=ledger, flush=flush))
    return Gateway(config, env={"OPENAI_API_KEY": "unused"})


def _ask(client: openai.OpenAI, i: int) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="support", messages=[{"role": "user", "content": f"question {i}"}]
    )
    return raw.headers["x-keel-call-id"]


def _stored(ledger_url: str) -> set[str]:
    with open_ledger(ledger_url) as ledger:
        return _ids(ledger)


def _ids(ledger: Ledger) -> set[str]:
    return {r.id for r in ledger.rows(limit=1_000_000)}


def test_a_graceful_stop_writes_every_call_still_waiting_in_the_queue(
    tmp_path: Path, fake: FakeUpstream, ledger_url: str
) -> None:
    gw = _serve(tmp_path, fake, ledger_url, flush=60)  # nothing is written before the stop
    try:
        with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as client:
            answered = {_ask(client, i) for i in range(40)}
        assert _stored(ledger_url) == set(), "rows were written before the stop: the test proves nothing"
    finally:
        log = gw.stop()  # SIGTERM, as a process manager stops it
    assert gw.proc.returncode in (0, -15), log  # uvicorn re-raises SIGTERM once it has shut down
    assert _stored(ledger_url) == answered
    report = subprocess.run(
        [KEEL, "usage", "--config", str(gw.config), "--format", "json"], capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    (support,) = json.loads(report.stdout)["groups"]
    assert (support["feature"], support["calls"], support["errors"]) == ("support", 40, 0)
    assert support["cost_usd"] > 0  # gpt-4o-mini: the built-in price


def test_after_kill_9_only_calls_from_the_last_flush_window_are_missing(
    tmp_path: Path, fake: FakeUpstream, ledger_url: str
) -> None:
    flush = 1.0  # the default flush window
    gw = _serve(tmp_path, fake, ledger_url, flush=flush)
    answered_at: dict[str, float] = {}
    try:
        with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as client:
            start = time.monotonic()
            i = 0
            while time.monotonic() - start < 5 * flush:
                answered_at[_ask(client, i)] = time.monotonic()
                i += 1
        gw.proc.kill()  # SIGKILL: no shutdown hook runs
        killed_at = time.monotonic()
        gw.proc.wait()
    finally:
        gw.stop()
    stored = _stored(ledger_url)
    assert stored <= set(answered_at), "the ledger holds calls nobody made"
    # A row waits at most one flush window in the queue, then its batch takes a moment to commit
    # (allowed as long again: on a loaded 2-core machine a commit can take most of a second).
    # Anything answered before that is on disk; anything lost was answered within it.
    grace = 2 * flush
    old = {cid for cid, at in answered_at.items() if at < killed_at - grace}
    assert old, "the test ran too briefly to have calls older than the flush window"
    lost_ages = sorted(round(killed_at - answered_at[cid], 2) for cid in set(answered_at) - stored)
    assert old <= stored, f"lost calls answered this many seconds before the kill: {lost_ages[-5:]}"
