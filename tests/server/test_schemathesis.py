"""schemathesis against a real ``keel serve``: every operation of its /openapi.json, with and without keys.

Cases are generated from the gateway's own OpenAPI document, valid ones (positive) and ones that
break the schema (negative), and sent over HTTP. Whatever comes in, the gateway must never answer
with a server error (a 502 for an answer the Validation layer refused aside: see
``no_server_error``), and every refusal of an API endpoint must be OpenAI-style error JSON. With
keys, a request without a valid key must be refused on every operation the document marks as
needing one (schemathesis' ``ignored_auth`` check). Examples per operation are bounded so the whole
module stays well under a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, GenerationMode
from schemathesis import Case as AnyCase
from schemathesis.checks import CheckContext, CheckFunction, ignored_auth, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response

from keel.keys import hash_key
from keel.testing import FakeUpstream
from tests.gateway import Gateway, http

pytestmark = pytest.mark.integration

ADMIN = "sk-keel-schemathesis-admin"
SCOPED = "sk-keel-schemathesis-scoped"
CONFIG = """\
models:
  - {name: up, provider: openai, base_url: "@URL@", price: {input_per_mtok: 1, output_per_mtok: 2}}
  - {name: spare, provider: openai, base_url: "@URL@"}
features:
  - {name: chat, model: up, fallbacks: [spare], limits: {max_output_tokens: 64}}
  - name: extract
    model: up
    schema: {type: object, properties: {city: {type: string}}, required: [city]}
  - name: agent
    model: up
    tools:
      - {name: get_weather, parameters: {type: object, properties: {city: {type: string}}, required: [city]}}
      - {name: send_email, side_effects: true, confirm: true, parameters: {type: object}}
storage: {path: ledger.db}
ledger: {flush_interval: 0.05}
server: {max_body_bytes: 20000}
"""
KEYS = f"""\
keys:
  - {{name: ops, hash: "{hash_key(ADMIN)}", admin: true}}
  - {{name: app, hash: "{hash_key(SCOPED)}", features: [chat], models: [up, spare]}}
"""
Operation = APIOperation[Any, Any, Any, Any]
Case = AnyCase[Any]
CHAT = "POST /v1/chat/completions"
# Cases per operation and generation mode: the hot path gets the most. Generating a chat body
# costs about 0.1-0.2 s of CPU (sending it, a few ms), so these bound the module's time.
CHAT_EXAMPLES = 25
OTHER_EXAMPLES = 6
DERANDOMIZE = True  # the same cases every run, so a failure reproduces; False for a local hunt


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def serve(tmp: Path, upstream: FakeUpstream, *, keys: bool) -> Gateway:
    config = tmp / "keel.yaml"
    config.write_text(CONFIG.replace("@URL@", upstream.base_url) + (KEYS if keys else ""))
    return Gateway(config)


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Gateway]:
    gw = serve(tmp_path_factory.mktemp("st-open"), upstream, keys=False)
    yield gw
    assert "Traceback" not in gw.stop()


@pytest.fixture(scope="module")
def keyed_gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Gateway]:
    gw = serve(tmp_path_factory.mktemp("st-keys"), upstream, keys=True)
    yield gw
    assert "Traceback" not in gw.stop()


def operations(gw: Gateway) -> list[Operation]:
    """Every operation of the gateway's OpenAPI document."""
    schema = schemathesis.openapi.from_url(gw.url + "/openapi.json")
    ops = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid OpenAPI
        ops.append(result.ok())
    assert {CHAT, "GET /v1/models", "GET /metrics", "GET /healthz"} <= {op.label for op in ops}
    return ops


def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis' ``not_a_server_error``, except a 502 ``invalid_response_error``: the upstream
    answered, but the Validation layer could not accept the answer (e.g. JSON for a schema cut
    off by the request's own ``max_completion_tokens: 1``). That is the gateway doing its job,
    documented as 502 ``output_rejected``/``output_not_json``/``tool_refused``; every other
    status >= 500, an internal error above all, fails."""
    if response.status_code == 502 and _error_type(response.content) == "invalid_response_error":
        return None
    return not_a_server_error(ctx, response, case)


def _error_type(body: bytes) -> str | None:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("type") if isinstance(error, dict) else None


def openai_error(case: Case, status: int, body: bytes) -> None:
    """A refusal from an API endpoint is OpenAI's error JSON: {"error": {"message", "type", ...}}."""
    if status < 400 or (case.path.startswith("/dashboard") and not case.path.startswith("/dashboard/api")):
        return
    error = json.loads(body).get("error")
    assert isinstance(error, dict), f"{case.method} {case.path} -> {status}: {body[:300]!r}"
    assert isinstance(error.get("message"), str) and isinstance(error.get("type"), str)


def fuzz(
    gw: Gateway, headers: dict[str, str], checks: list[CheckFunction], *, scale: float = 1.0
) -> dict[str, int]:
    """Run every operation's generated cases against ``gw``; the number of cases sent per operation."""
    sent: dict[str, int] = {}
    for op in operations(gw):
        examples = max(1, round(scale * (CHAT_EXAMPLES if op.label == CHAT else OTHER_EXAMPLES)))
        for mode in GenerationMode:
            try:
                run_cases(gw, op, mode, examples, headers, checks, sent)
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing in this operation can be made invalid
    return sent


def run_cases(
    gw: Gateway,
    op: Operation,
    mode: GenerationMode,
    examples: int,
    headers: dict[str, str],
    checks: list[CheckFunction],
    sent: dict[str, int],
) -> None:
    """Send ``op``'s generated cases of one mode, checking every answer."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=op.as_strategy(mode))
    def run(case: Case) -> None:
        response = case.call_and_validate(base_url=gw.url, headers=headers, checks=checks)
        openai_error(case, response.status_code, response.content)
        sent[op.label] = sent.get(op.label, 0) + 1

    run()


def test_an_open_gateway_never_answers_a_generated_request_with_a_server_error(open_gateway: Gateway) -> None:
    sent = fuzz(open_gateway, {}, [no_server_error])
    assert sent[CHAT] >= CHAT_EXAMPLES  # the hot path really was exercised


# The admin key reaches every operation; the scoped one (feature chat, not admin) is refused by
# most, so it gets fewer cases.
@pytest.mark.parametrize(("key", "scale"), [(ADMIN, 1.0), (SCOPED, 0.4)], ids=["admin", "scoped"])
def test_a_gateway_with_keys_never_answers_a_generated_request_with_a_server_error_or_ignores_auth(
    keyed_gateway: Gateway, key: str, scale: float
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    sent = fuzz(keyed_gateway, headers, [no_server_error, ignored_auth], scale=scale)
    assert sent[CHAT] >= CHAT_EXAMPLES * scale


def test_the_document_declares_bearer_auth_on_every_operation_but_health(open_gateway: Gateway) -> None:
    doc: dict[str, Any] = schemathesis.openapi.from_url(open_gateway.url + "/openapi.json").raw_schema
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            expected: list[dict[str, list[str]]] = [] if path == "/healthz" else [{"bearer": []}]
            assert op.get("security") == expected, f"{method.upper()} {path}"


def test_a_review_item_id_beyond_sqlite_integers_is_a_400_not_a_500(keyed_gateway: Gateway) -> None:
    """Found by this module's fuzzing: the id overflowed inside the review store (500)."""
    auth = {"authorization": f"Bearer {ADMIN}"}
    for method, body in (("GET", None), ("POST", b"{}")):
        reply = http(method, keyed_gateway.url + f"/dashboard/api/review/items/{2**64}", body, auth)
        assert reply.status == 400 and reply.json()["error"]["param"] == "path.item_id", reply.body
