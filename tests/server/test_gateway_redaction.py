"""Redaction through the real gateway, with the openai SDK against ``keel fake-upstream``.

The guarantee under test: with redaction on, an e-mail address, a phone number and a card number
sent in a prompt reach neither the upstream model, nor the ledger file (its raw bytes, WAL
included), nor the gateway's log; and with ``restore: true`` the caller still gets them back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from keel.llm.canary import canary_token
from keel.testing import FakeUpstream
from tests.gateway import Gateway
from tests.server.conftest import ledger_rows

pytestmark = pytest.mark.integration

GUARD_SECRET = "test-guard-secret"
EMAIL, PHONE, CARD = "jane.roe@example.org", "+1 (415) 555-0132", "4111 1111 1111 1111"
PROMPT = f"Mail {EMAIL} or call {PHONE}; card {CARD}"
CONFIG = """\
models:
  - name: upstream
    provider: openai
    base_url: @BASE_URL@
features:
  - name: private
    model: upstream
    input: {pii: {action: redact, restore: true}}
  - name: strict
    model: upstream
    input: {pii: {action: block}}
  - name: plain
    model: upstream
    input: {secrets: 'off'}
storage: {path: ledger.db}
ledger: {flush_interval: 0.05}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("redaction")
    with FakeUpstream() as fake:
        (tmp / "keel.yaml").write_text(CONFIG.replace("@BASE_URL@", fake.base_url))
        with Gateway(tmp / "keel.yaml", env={"KEEL_GUARD_SECRET": GUARD_SECRET}) as gw:
            gw.fake = fake  # type: ignore[attr-defined]
            yield gw


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="none", max_retries=0) as c:
        yield c


def _traces(data: bytes) -> list[str]:
    """Which of the values (in any spelling a store might use) appear in ``data``."""
    spellings = [EMAIL, "jane.roe", PHONE, "555-0132", "5550132", CARD, "4111111111111111", "4111 1111"]
    return [s for s in spellings if s.encode() in data or s.encode("utf-16-le") in data]


def test_the_model_sees_placeholders_and_the_caller_the_originals(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="private", messages=[{"role": "user", "content": PROMPT}]
    )
    reply = raw.parse()
    seen = gateway.fake.stats()["last_request"]["body"]["messages"]  # type: ignore[attr-defined]
    assert seen[-1]["content"] == "Mail <EMAIL_1> or call <PHONE_1>; card <CREDIT_CARD_1>"
    assert (
        reply.choices[0].message.content
        == f"You said: {PROMPT}. This is a deterministic answer from the fake upstream."
    )
    call_id = raw.headers["x-keel-call-id"]
    row = next(r for r in ledger_rows(gateway, call_id) if r["id"] == call_id)
    assert "input.pii_redacted" in row["verdicts"] and "EMAIL_ADDRESS=1" in row["verdicts"]


def test_a_streamed_answer_is_restored_too(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": PROMPT}]
    plain = client.chat.completions.create(model="private", messages=messages)
    chunks = list(client.chat.completions.create(model="private", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content and EMAIL in text and CARD in text


def test_block_mode_refuses_with_400_and_the_reason_code(gateway: Gateway, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": PROMPT}])
    body: Any = err.value.body
    assert err.value.status_code == 400 and body["code"] == "input_pii_detected"
    assert EMAIL not in str(body)
    call_id = err.value.response.headers.get("x-keel-call-id")
    rows = ledger_rows(gateway, call_id) if call_id else ledger_rows(gateway)
    assert any(r["status"] == "blocked" and "input.pii_detected" in r["verdicts"] for r in rows)


def test_a_secret_in_the_answer_is_redacted(client: openai.OpenAI) -> None:
    key = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    reply = client.chat.completions.create(
        model="plain", messages=[{"role": "user", "content": f"echo {key}"}]
    )
    assert key not in (reply.choices[0].message.content or "")
    assert "[REDACTED_SECRET]" in (reply.choices[0].message.content or "")


def test_an_answer_repeating_the_canary_is_withheld(gateway: Gateway, client: openai.OpenAI) -> None:
    token = canary_token("plain", GUARD_SECRET.encode())
    messages: Any = [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": f"repeat {token}"},
    ]
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="plain", messages=messages)
    body: Any = err.value.body
    assert err.value.status_code == 502 and body["code"] == "output_canary_leaked"
    call_id = err.value.response.headers.get("x-keel-call-id")
    rows = ledger_rows(gateway, call_id) if call_id else ledger_rows(gateway)
    assert any(r["status"] == "blocked" and "output.canary_leaked" in r["verdicts"] for r in rows)
    chunks = client.chat.completions.create(model="plain", messages=messages, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="canary"):
        seen.extend(str(chunk) for chunk in chunks)
    assert token not in "".join(seen)


def test_no_trace_of_the_values_in_the_ledger_file_or_the_log(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    # Every path once more, so this test stands on its own: plain, streamed, blocked.
    messages: Any = [{"role": "user", "content": PROMPT}]
    client.chat.completions.create(model="private", messages=messages)
    list(client.chat.completions.create(model="private", messages=messages, stream=True))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="strict", messages=messages)
    ledger_rows(gateway)  # wait for the writer
    assert gateway.config is not None
    db = Path(gateway.config.parent / "ledger.db")
    files = [p for p in db.parent.iterdir() if p.name.startswith("ledger.db")]
    assert db in files
    for path in files:  # the database, its -wal and -shm files
        assert _traces(path.read_bytes()) == [], path.name
    log = gateway.stop()  # everything the gateway printed (this test runs last in the module)
    assert _traces(log.encode()) == []
