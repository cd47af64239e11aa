"""Property tests: redaction never crashes, restores exactly, and streams the same as it answers whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.call import Call
from keel.input.pii import PIIDetector
from keel.input.redact import Masker
from keel.input.restore import StreamReplacer, restore_text
from keel.input.secrets import SecretDetector
from keel.validate.leakage import LeakageStage, Scanner, redact
from keel.validate.stream_guard import StreamGuard, guard_for

pytestmark = pytest.mark.unit

PII = PIIDetector()
SECRETS = SecretDetector()
VALUES = [
    "jane.roe@example.org",
    "+1 (415) 555-0132",
    "4111 1111 1111 1111",
    "DE89370400440532013000",
    "10.0.0.7",
    "536-22-1234",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "<EMAIL_1>",
]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
texts = st.lists(st.one_of(st.text(max_size=40), st.sampled_from(VALUES)), max_size=8).map(" ".join)


def _splits(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@FAST
@given(texts, st.sampled_from(["redact", "pseudonymize"]))
def test_redaction_never_crashes_and_restores_exactly(text: str, mode: str) -> None:
    vault: dict[str, str] = {}
    masker = Masker(mode, vault, taken={"<EMAIL_1>"} if "<EMAIL_1>" in text else set())  # type: ignore[arg-type]
    redacted = masker.apply(text, PII.find(text))
    redacted = masker.apply(redacted, SECRETS.find(redacted))
    for value in VALUES[:-1]:
        if value in text and value not in redacted:
            assert value in vault.values()
    assert restore_text(redacted, vault) == text


@FAST
@given(st.text(max_size=30), st.lists(st.integers(0, 200), max_size=6))
def test_stream_restore_matches_whole_restore_at_any_split(filler: str, cuts: list[int]) -> None:
    vault = {"<EMAIL_1>": "jane.roe@example.org", "<PHONE_1>": "+1 415 555 0132", "<EMAIL_12>": "x@y.io"}
    text = f"Dear <EMAIL_1>{filler}<PHONE_1> <EMAIL_12><EMAIL_1"
    rep = StreamReplacer(vault)
    out = "".join(rep.feed(piece) for piece in _splits(text, cuts)) + rep.end()
    assert out == restore_text(text, vault)


@FAST
@given(
    st.sampled_from(VALUES[6:8]),
    st.text(alphabet=" abcdefg.\n", max_size=60),
    st.lists(st.integers(0, 300), max_size=8),
)
def test_a_streamed_secret_never_goes_out_whatever_the_chunking(
    secret: str, filler: str, cuts: list[int]
) -> None:
    text = f"{filler} your key {secret} {filler}"
    stage = LeakageStage(None, None, [Scanner("secret", "redact", SECRETS.find)], live=True)
    guard = guard_for(Call(feature="f", messages=[]), stage, live=True)
    assert isinstance(guard, StreamGuard)
    out = []
    for piece in _splits(text, cuts):
        chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        out.append(guard.apply(chunk)["choices"][0]["delta"].get("content") or "")
    tail = guard.finish(None)
    if tail is not None:
        out.append(tail["choices"][0]["delta"]["content"])
    joined = "".join(out)
    assert secret not in joined and secret[:12] not in joined
    assert joined == redact(text, SECRETS.find(text))


parts = st.one_of(
    st.text(max_size=30),
    st.builds(lambda t: {"type": "text", "text": t}, texts),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, st.text(max_size=10)),
    st.integers(),
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant", "tool"])},
        optional={
            "content": st.one_of(st.none(), texts, st.lists(parts, max_size=3)),
            "tool_calls": st.lists(
                st.one_of(
                    st.builds(
                        lambda a: {"id": "1", "type": "function", "function": {"name": "f", "arguments": a}},
                        texts,
                    ),
                    st.text(max_size=5),
                ),
                max_size=2,
            ),
        },
    ),
    max_size=4,
)


@FAST
@given(messages, st.sampled_from(["redact", "pseudonymize", "block"]))
def test_the_input_stages_never_crash_on_odd_messages_and_restore_exactly(
    msgs: list[dict[str, Any]], action: str
) -> None:
    from keel.errors import InputRejected
    from keel.input.redact import PIIStage, SecretsStage, texts
    from keel.settings import PIIGuard

    call = Call(feature="f", messages=msgs)
    secrets = SecretsStage.for_action("redact")
    pii = PIIStage.for_guard(PIIGuard.model_validate({"action": action, "restore": True}))
    assert secrets is not None and pii is not None
    asyncio.run(secrets.run(call))
    before = list(texts(call.messages))
    try:
        asyncio.run(pii.run(call))
    except InputRejected as exc:
        refused: InputRejected | None = exc
    else:
        refused = None
    if refused is not None:
        assert action == "block" and refused.code == "input_pii_detected"
        return
    after = list(texts(call.messages))
    assert [(i, w) for i, w, _ in after] == [(i, w) for i, w, _ in before]
    assert [restore_text(t, call.vault) for *_, t in after] == [t for *_, t in before]
