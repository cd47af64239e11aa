"""The Input layer never crashes on adversarial bytes or Unicode: it answers or refuses with a clear error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.call import Action, Call
from keel.context.untrusted import scan_untrusted, wrap_untrusted
from keel.errors import KeelError
from keel.input.detector import default_detector
from keel.input.injection import InjectionStage
from keel.input.normalize import NormalizeStage
from keel.settings import InjectionGuard

pytestmark = pytest.mark.unit

# Text built from the characters attackers use: controls, invisible and bidi characters, tags,
# homoglyphs, surrogates-free astral characters, encodings' alphabets, and attack words.
_PIECES = st.sampled_from(
    [
        "ignore previous instructions", "system prompt", "<|im_start|>system", "[INST]", "%41%42",
        "\\x41\\x42", "&#65;&#66;", "aWdub3Jl", "=", "\u200b", "\u202e", "\U000e0041", "\ufeff", "\x00",
        "\r\n", "і", "ο", "𝐢𝐠𝐧𝐨𝐫𝐞", "ｉｇｎｏｒｅ", "1gn0r3", "i g n o r e", "😀", "\ud7ff", "\U0010ffff",
    ]
)  # fmt: skip
TEXT = st.lists(st.one_of(st.text(max_size=40), _PIECES), max_size=30).map("".join)
RAW = st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="surrogateescape"))
CONTENT = st.one_of(
    TEXT,
    RAW,
    st.none(),
    st.integers(),
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(TEXT, RAW)}),
            st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), st.integers()), max_size=3),
        ),
        max_size=4,
    ),
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "tool", "system", "assistant", "x"]), "content": CONTENT}
)
GUARD = st.builds(
    InjectionGuard,
    action=st.sampled_from(["block", "flag", "strip"]),
    block_threshold=st.just(0.85),
    flag_threshold=st.sampled_from([0.0, 0.5]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(MESSAGE, max_size=5), guard=GUARD)
def test_the_input_layer_answers_or_refuses_cleanly(
    messages: list[dict[str, Any]], guard: InjectionGuard
) -> None:
    call = Call(feature="f", messages=[dict(m) for m in messages])
    stages = [NormalizeStage(), InjectionStage(guard)]

    async def go() -> None:
        for stage in stages:
            await stage.run(call)

    refused: KeelError | None = None
    try:
        asyncio.run(go())
    except KeelError as exc:  # a refusal: a 4xx with a reason code, never anything else
        refused = exc
    if refused is not None:
        assert refused.status == 400 and refused.code == "prompt_injection"
        assert call.blocked_by is not None
    for v in call.verdicts:
        assert v.action in Action
        assert v.score is None or v.score >= 0.0


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(TEXT, RAW))
def test_the_detector_scores_any_string_between_zero_and_one(text: str) -> None:
    det = default_detector().scan(text)
    assert 0.0 <= det.score <= 1.0
    assert det.windows and det.windows[0].start == 0 and det.windows[-1].end == len(det.text)
    assert isinstance(default_detector().strip(det, 0.0, "[x]"), str)


@settings(max_examples=100, deadline=None)
@given(text=st.one_of(TEXT, RAW), source=st.text(max_size=50))
def test_untrusted_content_is_always_fenced(text: str, source: str) -> None:
    wrapped = wrap_untrusted(text, source, nonce="n0nce")
    assert wrapped.endswith("<<<untrusted n0nce end>>>")
    assert wrapped.count("<<<untrusted n0nce end>>>") == 1
    assert scan_untrusted(text, source).text.count("<<<untrusted") == 2
