"""Policy stages on the answer: banned terms and topics, URL allow-lists, length limits, with reason codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from tests.validate.ledger_rows import last_row

from keel import Call, Pipeline, Settings
from keel.errors import ConfigError, OutputRejected
from keel.testing.scripted import ScriptedProvider
from keel.validate.policy import truncate

pytestmark = pytest.mark.unit

CONFIG = """\
models: [{name: m, provider: scripted}]
features:
  - name: terms
    model: m
    validation:
      policy:
        banned_terms: {terms: [Globex, "secret sauce"]}
  - name: terms-redact
    model: m
    validation:
      policy:
        banned_terms: {terms: [Globex, "secret sauce"], action: redact}
  - name: topics
    model: m
    validation:
      policy:
        banned_topics:
          - {name: medical, keywords: [dosage, mg, prescription, diagnosis], min_keywords: 2}
          - {name: investment, patterns: ['\\b(buy|sell) (stocks?|shares)\\b'], action: flag}
  - name: links
    model: m
    validation:
      policy:
        urls: {allow: [example.com, docs.python.org]}
  - name: links-block
    model: m
    validation:
      policy:
        urls: {allow: [example.com], action: block}
  - name: short
    model: m
    validation:
      policy:
        length: {max_chars: 60, min_chars: 5}
  - name: short-truncate
    model: m
    validation:
      policy:
        length: {max_words: 8, action: truncate}
  - name: with-fallback
    model: m
    validation:
      policy:
        banned_terms: {terms: [Globex]}
      fallback: "Sorry, I cannot answer that."
storage: {path: keel.db}
"""

MakeSettings = Callable[..., Settings]


def _run(settings: Settings, reply: str, feature: str, *, stream: bool = False) -> Any:
    async def go() -> Any:
        async with Pipeline(settings, providers={"m": ScriptedProvider("m", [reply])}) as p:
            call = Call(feature=feature, messages=[{"role": "user", "content": "hi"}])
            if not stream:
                return await p.run(call)
            chunks = [c async for c in await p.open_stream(call)]
            return "".join(
                (c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices")
            )

    return asyncio.run(go())


def _row(settings: Settings) -> dict[str, Any]:
    row = last_row(settings)
    row["verdicts"] = json.loads(row["verdicts"])
    return row


def _refused(settings: Settings, reply: str, feature: str) -> dict[str, Any]:
    with pytest.raises(OutputRejected):
        _run(settings, reply, feature)
    row = _row(settings)
    assert row["status"] == "blocked" and row["http_status"] == 502
    return row


def test_a_banned_term_blocks_the_answer_without_quoting_it(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    row = _refused(s, "Our partner GLOBEX sells it.", "terms")
    [v] = [v for v in row["verdicts"] if v["reason"] == "policy.banned_term"]
    assert v["stage"] == "validation.policy.terms" and "globex" not in json.dumps(v).lower()
    assert row["error_code"] == "policy_banned_term"


def test_banned_terms_match_whole_words_only(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    assert (
        _run(s, "Globexia and the saucepan are fine.", "terms").text == "Globexia and the saucepan are fine."
    )


def test_banned_terms_can_be_redacted_in_a_held_stream(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    text = _run(s, "Ask Globex about the Secret Sauce today.", "terms-redact", stream=True)
    assert text == "Ask [removed] about the [removed] today."
    assert any(v["action"] == "modify" for v in _row(s)["verdicts"])


def test_a_banned_topic_is_found_by_enough_keywords_or_a_pattern(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    assert _run(s, "Take the prescription to a pharmacy.", "topics").text  # one keyword: not enough
    row = _refused(s, "The usual dosage is 200 mg twice a day.", "topics")
    assert any(v["detail"] == "topic 'medical'" for v in row["verdicts"])


def test_a_flagged_topic_is_answered_and_recorded(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    result = _run(s, "You should buy shares now.", "topics")
    assert result.text == "You should buy shares now."
    assert [(v.action, v.reason) for v in result.verdicts if v.reason.startswith("policy")] == [
        ("flag", "policy.banned_topic")
    ]


def test_links_outside_the_allow_list_are_removed(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    reply = (
        "See https://docs.python.org/3/library/re.html, https://api.example.com/x and "
        "http://evil.example.net/login. Also www.phish.io."
    )
    result = _run(s, reply, "links")
    assert result.text == (
        "See https://docs.python.org/3/library/re.html, https://api.example.com/x and "
        "[link removed]. Also [link removed]."
    )
    [v] = [v for v in result.verdicts if v.reason == "policy.url_not_allowed"]
    assert v.detail == "2 link(s) to evil.example.net, www.phish.io"


@pytest.mark.parametrize(
    "link", ["https://example.com.evil.io/", "ftp://example.com/file", "https://notexample.com"]
)
def test_lookalike_hosts_and_other_schemes_are_not_allowed(make_settings: MakeSettings, link: str) -> None:
    s = make_settings(CONFIG)
    row = _refused(s, f"Go to {link} now", "links-block")
    assert row["error_code"] == "policy_url_not_allowed"


def test_length_limits_refuse_too_long_and_too_short_answers(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    row = _refused(s, "word " * 20, "short")
    assert any(v["reason"] == "policy.too_long" for v in row["verdicts"])


def test_a_too_short_answer_is_refused(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    row = _refused(s, " ok ", "short")
    assert any(v["reason"] == "policy.too_short" for v in row["verdicts"])


def test_a_long_answer_is_truncated_at_a_sentence_end(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    reply = "The lamp ships on Monday. It arrives by Friday at the latest."
    assert _run(s, reply, "short-truncate").text == "The lamp ships on Monday."


def test_truncation_falls_back_to_a_word_boundary() -> None:
    assert truncate("alpha beta gamma delta", 13, None) == "alpha beta…"
    assert truncate("one two three four five", None, 2) == "one two…"


def test_the_fallback_answer_replaces_a_refused_one(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    assert _run(s, "Globex, of course.", "with-fallback", stream=True) == "Sorry, I cannot answer that."
    row = _row(s)
    assert row["status"] == "ok"
    reasons = {v["reason"]: v["action"] for v in row["verdicts"]}
    assert reasons == {"policy.banned_term": "flag", "output.fallback": "modify"} | {
        k: v for k, v in reasons.items() if k.startswith("input.")
    }


def test_truncating_a_schema_answer_is_refused_at_load(make_settings: MakeSettings) -> None:
    s = make_settings(
        "models: [{name: m, provider: scripted}]\nfeatures:\n  - name: f\n    model: m\n"
        "    schema: {type: object}\n    validation: {policy: {length: {max_chars: 9, action: truncate}}}\n"
    )
    with pytest.raises(ConfigError, match="truncate would break the JSON"):
        Pipeline(s, providers={"m": ScriptedProvider("m")}, ledger=False)


def test_an_invalid_topic_pattern_fails_at_load(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="invalid regular expression"):
        make_settings(
            "models: [{name: m, provider: scripted}]\nfeatures:\n  - name: f\n    model: m\n"
            "    validation: {policy: {banned_topics: [{name: x, patterns: ['(']}]}}\n"
        )
