"""Bad input gets a 4xx with OpenAI's error JSON, never a 500, and no half-written ledger row."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.gateway import KEEL, Gateway, HTTPReply, http
from tests.server.conftest import KEY_ALL, KEY_EXTRACT, ledger_rows

pytestmark = pytest.mark.integration

GOOD = {"model": "support", "messages": [{"role": "user", "content": "hi"}]}
LEDGER_COLUMNS_NEVER_NULL = (
    "id",
    "ts",
    "feature",
    "status",
    "http_status",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
)


def post(gateway: Gateway, body: bytes, key: str | None = KEY_ALL, **headers: str) -> HTTPReply:
    h = {"content-type": "application/json", **headers}
    if key is not None:
        h["authorization"] = f"Bearer {key}"
    return http("POST", gateway.base_url + "/chat/completions", body, h)


def assert_openai_error(reply: HTTPReply, status: int, code: str | None = None) -> dict[str, object]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        (b"{not json", 400, "invalid_request", "not valid JSON"),
        (
            b'{"model": "support", "messages": [{"role": "user", "content": "caf\xe9"}]}',
            400,
            "invalid_request",
            "UTF-8",
        ),
        (b'["a", "list"]', 400, "invalid_request", "JSON object"),
        (json.dumps({"model": "support"}).encode(), 400, "invalid_request", "messages"),
        (
            json.dumps({"model": "support", "messages": []}).encode(),
            400,
            "invalid_request",
            "at least 1 item",
        ),
        (
            json.dumps({"model": "support", "messages": [{"role": "robot", "content": "x"}]}).encode(),
            400,
            "invalid_request",
            "messages.0.role",
        ),
        (
            json.dumps({"model": "support", "messages": [{"role": "user", "content": 42}]}).encode(),
            400,
            "invalid_request",
            "messages.0.content",
        ),
        (json.dumps({**GOOD, "stream": "yes"}).encode(), 400, "invalid_request", "stream"),
        (json.dumps({**GOOD, "keel": {"variabels": {}}}).encode(), 400, "invalid_request", "keel.variabels"),
        (
            json.dumps({**GOOD, "model": "no-such-feature"}).encode(),
            404,
            "model_not_found",
            "no-such-feature",
        ),
        (
            json.dumps({**GOOD, "messages": [{"role": "user", "content": "x" * 6000}]}).encode(),
            413,
            "input_too_long",
            "5000",
        ),
        (
            json.dumps({**GOOD, "messages": [{"role": "user", "content": "y" * 30000}]}).encode(),
            413,
            "payload_too_large",
            "max_body_bytes",
        ),
    ],
    ids=[
        "invalid-json",
        "invalid-utf8",
        "not-an-object",
        "missing-messages",
        "empty-messages",
        "bad-role",
        "bad-content",
        "bad-stream",
        "bad-keel-option",
        "unknown-feature",
        "input-too-long",
        "body-too-large",
    ],
)
def test_bad_request_bodies_get_clear_4xx_errors(
    gateway: Gateway, body: bytes, status: int, code: str, words: str
) -> None:
    error = assert_openai_error(post(gateway, body), status, code)
    assert words in str(error["message"])


def test_unknown_feature_in_header_is_404(gateway: Gateway) -> None:
    reply = post(gateway, json.dumps(GOOD).encode(), **{"X-Keel-Feature": "nope"})
    assert_openai_error(reply, 404, "model_not_found")


@pytest.mark.parametrize(
    ("key", "words"), [(None, "missing API key"), ("sk-wrong", "invalid API key"), ("", "missing API key")]
)
def test_missing_or_wrong_api_key_is_401(gateway: Gateway, key: str | None, words: str) -> None:
    reply = post(gateway, json.dumps(GOOD).encode(), key=key)
    error = assert_openai_error(reply, 401, "invalid_api_key")
    assert words in str(error["message"])
    assert_openai_error(http("GET", gateway.base_url + "/models"), 401, "invalid_api_key")


def test_a_key_cannot_reach_another_feature(gateway: Gateway) -> None:
    reply = post(gateway, json.dumps(GOOD).encode(), key=KEY_EXTRACT)
    error = assert_openai_error(reply, 403, "permission_denied")
    assert "support" in str(error["message"])


def test_unknown_route_and_wrong_method_use_openai_errors(gateway: Gateway) -> None:
    assert_openai_error(http("GET", gateway.base_url + "/nothing-here"), 404)
    assert_openai_error(http("GET", gateway.base_url + "/chat/completions"), 405)


def test_bad_input_never_leaves_a_half_written_ledger_row(gateway: Gateway) -> None:
    for body in (b"{", json.dumps({**GOOD, "messages": [{"role": "user", "content": "x" * 6000}]}).encode()):
        post(gateway, body)
    ok = post(gateway, json.dumps(GOOD).encode())
    rows = ledger_rows(gateway, ok.headers["x-keel-call-id"])
    for row in rows:
        assert all(row[c] is not None for c in LEDGER_COLUMNS_NEVER_NULL), row
    too_long = [r for r in rows if r["error_code"] == "input_too_long"]
    assert too_long and all(r["status"] == "blocked" and r["http_status"] == 413 for r in too_long)
    assert all(r["input_tokens"] == 0 and r["cost_usd"] == 0 for r in too_long)


def test_a_config_with_a_typo_fails_at_start_with_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text(
        "models:\n  - name: m\n    provider: openai\n    base_url: http://127.0.0.1:1/v1\n"
        "features:\n  - name: f\n    modle: m\n"
    )
    proc = subprocess.run(
        [KEEL, "serve", "--config", str(cfg), "--port", "0"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    first = f"keel: error: {cfg}:7: features[0].modle: unknown key; did you mean 'model'? "
    assert lines[0].startswith(first)
    assert "(expected one of: budget, cache, coalesce, deadline, description, fallbacks," in lines[0]
