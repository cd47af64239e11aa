"""A gateway with traffic for the dashboard tests: features, keys, a cache, routes, refusals, errors."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from keel.keys import hash_key
from keel.monitor.ledger import LedgerRow
from keel.monitor.sqlite_ledger import SQLiteLedger
from keel.testing import FakeUpstream
from tests.gateway import Gateway, http

PROMPT = "system: 'You are the support bot of {{ product }}.'\nvariables: {product: {default: Acme}}\n"
EMAIL = "jane.doe@example.com"
KEY_WEB = "sk-dash-web"
KEY_BATCH = "sk-dash-batch"
KEY_ADMIN = "sk-dash-admin"
CONFIG = """\
models:
  - name: large
    provider: openai
    base_url: @FAKE@
    model: gpt-4o
    price: {input_per_mtok: 2.5, output_per_mtok: 10.0}
  - name: small
    provider: openai
    base_url: @FAKE@
    model: gpt-4o-mini
    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}
  - name: broken
    provider: openai
    base_url: @BROKEN@
    retry: {attempts: 1}
    breaker: {failures: 1000}
features:
  - name: support
    model: large
    prompt: support
    cache: {exact: {}}
    routing: {rules: [{when: {pattern: "(?i)^quick"}, model: small}]}
    budget: {usd_per_day: 0.05}
    limits: {max_input_chars: 400}
    input: {pii: {action: redact, restore: true}}
  - name: extract
    model: small
    schema:
      type: object
      properties: {city: {type: string}, nights: {type: integer, minimum: 1}}
      required: [city, nights]
  - name: flaky
    model: broken
keys:
  - name: web
    hash: @HASH_WEB@
  - name: batch
    hash: @HASH_BATCH@
    features: [extract]
    budget: {usd_per_month: 1.0}
  - name: ops
    hash: @HASH_ADMIN@
    admin: true
storage: {path: ledger.db}
ledger: {flush_interval: 0.05}
review: {sample: 1.0, features: [support]}
alerts:
  interval: 0.2
  rules:
    - {name: upstream-failing, metric: error_rate, feature: flaky, window: 1h, warn: 0.1, alert: 0.5}
    - {name: daily-spend, metric: cost_usd, window: 1d, warn: 100, alert: 500}
"""


@dataclass
class Traffic:
    """What the test sent: calls per feature and per key, as the dashboard must count them."""

    calls: dict[str, int]
    keys: dict[str, int]

    @property
    def total(self) -> int:
        """Every call made."""
        return sum(self.calls.values())


def admin_get(gw: Gateway, path: str, key: str | None = KEY_ADMIN) -> Any:
    """GET ``path`` with ``key`` as the bearer key; the HTTP reply."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return http("GET", gw.url + path, headers=headers)


def send_traffic(gw: Gateway) -> Traffic:
    """Real calls through the openai SDK: answered, cached, routed, refused and failed ones."""
    calls = {"support": 0, "extract": 0, "flaky": 0}
    keys = {"web": 0, "batch": 0}
    with (
        openai.OpenAI(base_url=gw.base_url, api_key=KEY_WEB, max_retries=0) as web,
        openai.OpenAI(base_url=gw.base_url, api_key=KEY_BATCH, max_retries=0) as batch,
    ):
        for i in range(4):
            web.chat.completions.create(
                model="support", messages=[{"role": "user", "content": f"How do I reset my password? ({i})"}]
            )
        for _ in range(3):  # the same deterministic request: answered once, then from the cache
            web.chat.completions.create(
                model="support", temperature=0, messages=[{"role": "user", "content": "Where is my order?"}]
            )
        for i in range(3):  # routed to the small model by a rule
            web.chat.completions.create(
                model="support", messages=[{"role": "user", "content": f"quick question number {i}"}]
            )
        reply = web.chat.completions.create(  # the model sees <EMAIL_1>; the caller gets the address back
            model="support", messages=[{"role": "user", "content": f"My e-mail is {EMAIL}, any news?"}]
        )
        assert EMAIL in (reply.choices[0].message.content or "")
        calls["support"] += 11
        keys["web"] += 11
        with pytest.raises(openai.APIStatusError) as refused:
            web.chat.completions.create(model="support", messages=[{"role": "user", "content": "x" * 500}])
        assert refused.value.status_code == 413
        calls["support"] += 1
        keys["web"] += 1
        with pytest.raises(openai.APIStatusError) as failed:
            web.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "hello"}])
        assert failed.value.status_code == 502
        calls["flaky"] += 1
        keys["web"] += 1
        for i in range(3):
            batch.chat.completions.create(
                model="extract",
                messages=[{"role": "user", "content": f"Book {i + 2} nights in Lisbon"}],
            )
        calls["extract"] += 3
        keys["batch"] += 3
    return Traffic(calls, keys)


def wait_for_calls(gw: Gateway, n: int) -> dict[str, Any]:
    """The overview once the ledger holds ``n`` calls (the writer flushes every 50 ms)."""
    deadline = time.monotonic() + 15
    while True:
        reply = admin_get(gw, "/dashboard/api/overview?range=1h")
        assert reply.status == 200, reply.body
        data: dict[str, Any] = reply.json()
        if data["totals"]["calls"] >= n or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def wait_for_alert(gw: Gateway, rule: str, feature: str, level: str) -> None:
    """Until the alert monitor (evaluating every 0.2 s on its own thread) puts ``rule`` at ``level``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        alerts = admin_get(gw, "/dashboard/api/overview?range=1h").json()["alerts"]
        if any((a["rule"], a["feature"], a["level"]) == (rule, feature, level) for a in alerts):
            return
        time.sleep(0.1)
    raise AssertionError(f"alert {rule} for {feature} did not reach {level}: {alerts}")


@dataclass
class DashboardGateway:
    """The running gateway and the traffic sent through it."""

    gw: Gateway
    traffic: Traffic
    history: dict[str, int]  # earlier calls per feature seeded into the ledger, all older than an hour


def seed_history(db: Path, *, now: float, hours: int = 24, seed: int = 7) -> dict[str, int]:
    """Earlier traffic written through the Ledger API: a day shaped like office hours, ending an hour ago.

    Real calls all land in the same minute; these give the time charts a history to draw.
    Returns how many rows were written per feature.
    """
    rng = random.Random(seed)
    prices = {"large": (2.5, 10.0), "small": (0.15, 0.60)}
    rows: list[LedgerRow] = []
    for hour in range(1, hours):
        start_ts = now - (hour + 1) * 3600
        local = time.localtime(start_ts).tm_hour
        busy = 4 + int(14 * max(0.0, math.sin((local - 6) / 16 * math.pi)))
        for _ in range(busy):
            ts = start_ts + rng.uniform(0, 3600)
            feature = rng.choices(["support", "extract", "flaky"], weights=[6, 3, 1])[0]
            model = {"support": rng.choice(["large", "large", "small"]), "extract": "small"}.get(feature)
            tin, tout = rng.randint(40, 900), rng.randint(20, 400)
            llm = rng.lognormvariate(5.6, 0.5)
            row = LedgerRow(
                id=f"history-{len(rows)}",
                ts=ts,
                feature=feature,
                key_id="batch" if feature == "extract" else "web",
                model=model or "broken",
                input_tokens=tin,
                output_tokens=tout,
                latency_ms=llm + 3,
                t_input_ms=rng.uniform(0.05, 0.6),
                t_llm_ms=llm,
                t_validation_ms=rng.uniform(0.02, 0.4),
                route="rule:0" if feature == "support" and model == "small" else None,
            )
            if model in prices:
                pin, pout = prices[model]
                row.cost_usd = (tin * pin + tout * pout) / 1e6
            if feature == "support" and rng.random() < 0.2:
                row.cache, row.saved_usd, row.cost_usd = "exact", row.cost_usd, 0.0
                row.latency_ms, row.t_llm_ms = rng.uniform(0.2, 1.0), None
            if feature == "flaky":
                row.status, row.http_status, row.error_code = "error", 502, "upstream_error"
                row.cost_usd, row.input_tokens, row.output_tokens = 0.0, 0, 0
            elif feature == "support" and rng.random() < 0.05:
                row.status, row.http_status, row.error_code = "blocked", 400, "input_rejected"
                row.verdicts = [
                    {"stage": "input.injection", "action": "block", "reason": "injection.signature"}
                ]
                row.cost_usd, row.output_tokens = 0.0, 0
            rows.append(row)
    with SQLiteLedger(db) as ledger:
        ledger.write(rows)
    return {f: sum(r.feature == f for r in rows) for f in ("support", "extract", "flaky")}


def start(tmp: Path, *, history: bool = False) -> Iterator[DashboardGateway]:
    """A gateway over a fake upstream (and an always-failing one) with the traffic already sent.

    ``history``: the ledger also holds a day of earlier calls (see ``seed_history``).
    """
    seeded = seed_history(tmp / "ledger.db", now=time.time()) if history else {}
    with FakeUpstream() as fake, FakeUpstream(error_rate=1.0, error_status=500) as broken:
        text = (
            CONFIG.replace("@FAKE@", fake.base_url)
            .replace("@BROKEN@", broken.base_url)
            .replace("@HASH_WEB@", hash_key(KEY_WEB))
            .replace("@HASH_BATCH@", hash_key(KEY_BATCH))
            .replace("@HASH_ADMIN@", hash_key(KEY_ADMIN))
        )
        (tmp / "keel.yaml").write_text(text)
        (tmp / "prompts").mkdir(exist_ok=True)
        (tmp / "prompts" / "support.yaml").write_text(PROMPT)
        with Gateway(tmp / "keel.yaml") as gw:
            traffic = send_traffic(gw)
            wait_for_calls(gw, traffic.total)
            wait_for_alert(gw, "upstream-failing", "flaky", "alert")
            yield DashboardGateway(gw, traffic, seeded)
