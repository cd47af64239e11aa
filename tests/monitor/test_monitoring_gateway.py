"""The Monitoring layer seen from outside a real ``keel serve``: /metrics as Prometheus scrapes it,
spans at a real OTLP/HTTP receiver, alerts at a real webhook, prices from the built-in table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families
from receivers import Received, Receiver
from tests.gateway import Gateway, http

from keel.keys import hash_key
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

KEY = "sk-monitoring-team-a"
ADMIN = "sk-monitoring-ops"
SECRET = "the launch code is 0000-1111"  # message content: must not reach traces
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
CONFIG = """\
models:
  - name: small
    provider: openai
    base_url: {fake}
    model: gpt-4o-mini                                # priced from the built-in table
  - name: big
    provider: openai
    base_url: {fake}
    model: gpt-4o
    price: {{input_per_mtok: 5, output_per_mtok: 20}}   # overrides the built-in 2.50 / 10.00
features:
  - name: support
    model: small
    limits: {{max_input_chars: 200}}
    cache: {{exact: {{}}}}
    routing: {{rules: [{{when: {{pattern: "(?i)contract"}}, model: big}}]}}
    budget: {{usd_per_day: 5}}
keys:
  - {{name: team-a, hash: "{key}"}}
  - {{name: ops, hash: "{admin}", admin: true}}
storage: {{path: keel.db}}
ledger: {{flush_interval: 0.1}}
tracing: {{endpoint: "{otlp}/v1/traces"}}
alerts:
  interval: 0.2
  webhooks: ["{hook}/hooks/s3cret-token"]
  rules:
    - {{name: support-spend, metric: cost_usd, feature: support, window: 1h, warn: 0.0000001, alert: 100}}
    - {{name: blocks, metric: guard_blocks, window: 1h, alert: 1}}
"""


@dataclass
class Served:
    gateway: Gateway
    client: openai.OpenAI
    otlp: Receiver
    hook: Receiver
    costs: dict[str, float]  # what the gateway charged per question, from x-keel-cost-usd
    usage: dict[str, Any]


def _ask(client: openai.OpenAI, text: str, **kw: Any) -> tuple[float, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model="support", messages=[{"role": "user", "content": text}], temperature=0, **kw
    )
    return float(raw.headers["x-keel-cost-usd"]), raw.parse().usage


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("monitoring")
    otlp = Receiver(reply=ExportTraceServiceResponse().SerializeToString())
    hook = Receiver()
    with FakeUpstream() as fake, otlp, hook:
        (tmp / "keel.yaml").write_text(
            CONFIG.format(
                fake=fake.base_url, key=hash_key(KEY), admin=hash_key(ADMIN), otlp=otlp.url, hook=hook.url
            )
        )
        with (
            Gateway(tmp / "keel.yaml", env={"OPENAI_API_KEY": "unused"}) as gw,
            openai.OpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0) as client,
        ):
            costs: dict[str, float] = {}
            usage: dict[str, Any] = {}
            headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
            costs["plain"], usage["plain"] = _ask(client, f"hello, {SECRET}", extra_headers=headers)
            costs["cached"], usage["cached"] = _ask(client, f"hello, {SECRET}")
            costs["routed"], usage["routed"] = _ask(client, "please review this contract")
            with pytest.raises(openai.APIStatusError):
                _ask(client, "x" * 500)  # over max_input_chars: blocked by the Input layer
            yield Served(gw, client, otlp, hook, costs, usage)


def _scrape(served: Served) -> dict[str, list[tuple[dict[str, str], float]]]:
    reply = http("GET", served.gateway.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"})
    assert reply.status == 200
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def _value(samples: list[tuple[dict[str, str], float]], **labels: str) -> float:
    return sum(v for lab, v in samples if all(lab.get(k) == want for k, want in labels.items()))


# -- prices ----------------------------------------------------------------------------------------


def test_a_model_without_a_price_is_charged_from_the_built_in_table_and_a_configured_price_wins(
    served: Served,
) -> None:
    plain, routed = served.usage["plain"], served.usage["routed"]
    assert served.costs["plain"] == pytest.approx(
        (plain.prompt_tokens * 0.15 + plain.completion_tokens * 0.60) / 1e6, rel=1e-4
    )
    assert served.costs["routed"] == pytest.approx(
        (routed.prompt_tokens * 5 + routed.completion_tokens * 20) / 1e6, rel=1e-4
    )
    assert served.costs["cached"] == 0.0


# -- metrics ---------------------------------------------------------------------------------------


def test_metrics_use_the_genai_names_and_keel_names_with_feature_model_and_key_labels(
    served: Served,
) -> None:
    m = _scrape(served)
    genai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "feature": "support"}
    tokens = m["gen_ai_client_token_usage_count"]
    assert (
        _value(tokens, **genai, gen_ai_request_model="small", gen_ai_token_type="input", key_id="team-a") == 1
    )
    assert _value(tokens, **genai, gen_ai_request_model="big", gen_ai_token_type="output") == 1
    assert _value(
        m["gen_ai_client_token_usage_sum"], gen_ai_request_model="small", gen_ai_token_type="input"
    ) == (served.usage["plain"].prompt_tokens)
    assert _value(m["gen_ai_client_operation_duration_seconds_count"], **genai) == 3  # the cache answered too
    assert _value(m["keel_cost_usd_total"], feature="support", model="small") == pytest.approx(
        served.costs["plain"]
    )
    assert _value(m["keel_cache_hits_total"], feature="support", kind="exact") == 1
    assert _value(m["keel_saved_usd_total"], feature="support", by="cache") == pytest.approx(
        served.costs["plain"]
    )
    assert _value(m["keel_routes_total"], feature="support", model="big") == 1
    assert _value(m["keel_calls_total"], feature="support", status="blocked", key_id="team-a") == 1
    blocks = [lab for lab, v in m["keel_verdicts_total"] if lab["action"] == "block" and v == 1]
    assert [(b["stage"], b["reason"]) for b in blocks] == [("input.limits", "input.too_long")]
    assert _value(m["keel_circuit_state"], model="small", deployment="small") == 0.0
    spent = sum(served.costs.values())
    remaining = _value(m["keel_budget_remaining_usd"], scope="feature", name="support", period="day")
    assert remaining == pytest.approx(5 - spent, abs=1e-9)


def test_many_different_calls_add_no_series(served: Served) -> None:
    def series() -> dict[str, int]:
        return {name: len(samples) for name, samples in _scrape(served).items()}

    served.hook.wait_for(lambda posts: len(posts) >= 2)  # both alert rules evaluated: their series exist
    before = series()
    for i in range(15):
        _ask(served.client, f"question number {i} about something else entirely", user=f"user-{i}")
    assert series() == before


def test_alert_levels_are_exported_as_a_gauge(served: Served) -> None:
    served.hook.wait_for(lambda posts: len(posts) >= 2)
    m = _scrape(served)
    assert _value(m["keel_alert_level"], rule="support-spend", feature="support") == 1.0  # warn
    assert _value(m["keel_alert_level"], rule="blocks", feature="support") == 2.0  # alert


# -- alerts ----------------------------------------------------------------------------------------


def test_crossed_thresholds_are_posted_once_to_the_webhook(served: Served) -> None:
    posts = served.hook.wait_for(lambda p: len(p) >= 2)
    events = {e["rule"]: e for e in (orjson.loads(p.body) for p in posts)}
    assert set(events) == {"support-spend", "blocks"}
    spend, blocks = events["support-spend"], events["blocks"]
    assert (spend["feature"], spend["level"], spend["previous"], spend["metric"]) == (
        "support",
        "warn",
        "ok",
        "cost_usd",
    )
    assert spend["value"] > 0 and spend["warn"] == 0.0000001 and spend["window_seconds"] == 3600
    assert (blocks["feature"], blocks["level"], blocks["value"]) == ("support", "alert", 1.0)
    assert "above the alert threshold 1.0" in blocks["message"]
    assert all(p.path == "/hooks/s3cret-token" for p in posts)
    assert all(p.headers["content-type"] == "application/json" for p in posts)
    time.sleep(1.0)  # five more evaluations, with the levels unchanged
    assert len(served.hook.received) == 2, "a level that did not change was posted again"


# -- traces ----------------------------------------------------------------------------------------


def _spans(posts: list[Received]) -> list[Any]:
    spans = []
    for p in posts:
        request = ExportTraceServiceRequest.FromString(p.body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    return spans


def _attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


def test_spans_reach_an_otlp_receiver_continuing_the_callers_trace_without_message_content(
    served: Served,
) -> None:
    posts = served.otlp.wait_for(lambda p: any(s.name == "chat big" for s in _spans(p)))
    assert all(
        p.path == "/v1/traces" and p.headers["content-type"] == "application/x-protobuf" for p in posts
    )
    spans = _spans(posts)
    root = next(s for s in spans if s.trace_id.hex() == TRACE_ID and s.name == "chat small")
    assert root.parent_span_id.hex() == PARENT_ID
    a = _attrs(root)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "small"
    assert a["gen_ai.response.model"].startswith("gpt-4o-mini")
    assert a["gen_ai.usage.input_tokens"] == served.usage["plain"].prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == served.usage["plain"].completion_tokens
    assert a["keel.key_id"] == "team-a"
    children = {s.name for s in spans if s.trace_id == root.trace_id and s.parent_span_id == root.span_id}
    layers = {"keel.input", "keel.context", "keel.llm", "keel.validation", "keel.monitoring"}
    assert {*layers, "keel.llm.model"} <= children
    assert all(SECRET.encode() not in p.body for p in posts)
