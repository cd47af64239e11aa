"""Faults injected into a real upstream reach the client as clear OpenAI errors, and are recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from keel.testing import FakeUpstream
from tests.gateway import Gateway
from tests.server.conftest import KEY_ALL, ledger_rows

pytestmark = pytest.mark.integration

HI: Any = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def faulty(gateway: Gateway) -> Iterator[FakeUpstream]:
    fake: FakeUpstream = gateway.faulty  # type: ignore[attr-defined]
    yield fake
    fake.configure(
        error_rate=0.0, error_status=500, timeout_rate=0.0, malformed_rate=0.0, stream_error_after=None
    )


def _status_error(client: openai.OpenAI, **kw: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="flaky", messages=HI, **kw)
    return info.value


@pytest.mark.parametrize(
    ("knobs", "status", "code"),
    [
        ({"error_rate": 1.0, "error_status": 500}, 502, "upstream_error"),
        ({"error_rate": 1.0, "error_status": 503}, 502, "upstream_error"),
        ({"error_rate": 1.0, "error_status": 401}, 502, "upstream_error"),
        ({"error_rate": 1.0, "error_status": 400}, 400, "upstream_error"),
        ({"timeout_rate": 1.0}, 504, "upstream_timeout"),
        ({"malformed_rate": 1.0}, 502, "upstream_malformed"),
    ],
    ids=["500", "503", "401-is-keels-problem", "400-is-the-callers", "timeout", "malformed"],
)
def test_upstream_faults_become_openai_errors(
    gateway: Gateway,
    client: openai.OpenAI,
    faulty: FakeUpstream,
    knobs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    faulty.configure(**knobs)
    err = _status_error(client)
    assert err.status_code == status
    body: Any = err.body
    assert body["code"] == code and body["message"]
    assert "upstream-secret" not in str(body)
    call_id = err.response.headers["x-keel-call-id"]
    row = next(r for r in ledger_rows(gateway, call_id) if r["id"] == call_id)
    assert (row["status"], row["http_status"], row["error_code"]) == ("error", status, code)


def test_upstream_429_is_passed_on_with_retry_after(client: openai.OpenAI, faulty: FakeUpstream) -> None:
    faulty.configure(error_rate=1.0, error_status=429)
    err = _status_error(client)
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "1"


def test_a_stream_that_fails_before_its_first_chunk_is_a_plain_http_error(
    client: openai.OpenAI, faulty: FakeUpstream
) -> None:
    faulty.configure(error_rate=1.0, error_status=500)
    err = _status_error(client, stream=True)
    assert err.status_code == 502
    assert err.response.headers["content-type"].startswith("application/json")


def test_a_stream_that_fails_midway_ends_with_an_error_event(
    gateway: Gateway, client: openai.OpenAI, faulty: FakeUpstream
) -> None:
    faulty.configure(stream_error_after=2)
    received: list[Any] = []
    raw = client.chat.completions.with_raw_response.create(model="flaky", messages=HI, stream=True)
    call_id = raw.headers["x-keel-call-id"]
    with pytest.raises(openai.APIError):
        received.extend(raw.parse())  # keeps the chunks that arrived before the error
    assert any(c.choices and c.choices[0].delta.content for c in received)
    row = next(r for r in ledger_rows(gateway, call_id) if r["id"] == call_id)
    assert row["status"] == "error" and row["stream"] == 1


def test_a_healthy_upstream_after_faults_answers_again(client: openai.OpenAI, faulty: FakeUpstream) -> None:
    faulty.configure(error_rate=1.0)
    _status_error(client)
    faulty.configure(error_rate=0.0)
    reply = client.chat.completions.create(model="flaky", messages=HI)
    assert reply.choices[0].message.content


def test_keys_and_models_are_unaffected(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=gateway.base_url, api_key=KEY_ALL) as c:
        assert "flaky" in [m.id for m in c.models.list()]
