"""Grounding: answers checked sentence by sentence against the sources the Context layer packed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from tests.validate.ledger_rows import last_row

from keel import Call, Pipeline, Settings
from keel.context.embed import HashEmbedder
from keel.errors import OutputRejected
from keel.testing.scripted import ScriptedProvider
from keel.validate.grounding import GroundingScorer, lexical_support, split_sentences

pytestmark = pytest.mark.unit

SOURCE = (
    "The assert statement is removed when Python runs with the -O flag. "
    "The built-in variable __debug__ is True under normal circumstances. "
    "Assignments to __debug__ are illegal."
)
SUPPORTED = (
    "Assert statements are removed when Python runs with -O [1]. "
    "Under normal circumstances __debug__ is True."
)
CHANGED = "Under normal circumstances __debug__ is False, and assert statements are kept with -O."
ADDED = "Assert statements are removed with -O. They also cost 40 nanoseconds each in CPython 3.12."

CONFIG = """\
models: [{name: m, provider: scripted}]
features:
  - name: flag
    model: m
    retrieval: {mode: keyword}
    validation: {grounding: {weight: 0}}
  - name: idk
    model: m
    retrieval: {mode: keyword}
    validation: {grounding: {weight: 0, action: idk}}
  - name: reask
    model: m
    retrieval: {mode: keyword}
    validation: {grounding: {weight: 0, action: reask, reasks: 1}}
storage: {path: keel.db}
"""

MakeSettings = Callable[..., Settings]


def test_sentences_are_split_without_citation_markers() -> None:
    assert split_sentences("It is removed [1]. It is True [2, 3]! Done?") == [
        "It is removed.",
        "It is True!",
        "Done?",
    ]


def test_a_changed_number_or_name_lowers_lexical_support() -> None:
    vocabulary = {"python", "3.11", "removes", "assert", "__debug__"}
    assert lexical_support("Python 3.11 removes assert", vocabulary) == 1.0
    assert lexical_support("Python 3.12 removes assert", vocabulary) < 0.8
    assert lexical_support("Yes.", vocabulary) == 1.0


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_supported_answers_score_above_changed_and_added_ones(weight: float) -> None:
    scorer = GroundingScorer(HashEmbedder() if weight else None, weight)

    async def go() -> list[float]:
        return [await scorer.score(a, [SOURCE]) for a in (SUPPORTED, CHANGED, ADDED)]

    supported, changed, added = asyncio.run(go())
    assert supported > 0.5 > added
    assert supported > changed


def _ask(settings: Settings, feature: str, replies: list[str]) -> tuple[Any, ScriptedProvider]:
    provider = ScriptedProvider("m", replies)

    async def go() -> Any:
        async with Pipeline(settings, providers={"m": provider}) as p:
            call = Call(
                feature=feature,
                messages=[{"role": "user", "content": "Is assert removed with -O?"}],
                chunks=[{"id": "assert", "title": "The assert statement", "text": SOURCE}],
            )
            return await p.run(call)

    return asyncio.run(go()), provider


def test_a_supported_answer_passes_without_a_verdict(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    result, _ = _ask(s, "flag", [SUPPORTED])
    assert result.text == SUPPORTED
    assert not [v for v in result.verdicts if v.reason == "grounding.unsupported"]


def test_an_unsupported_answer_is_flagged_with_its_weakest_sentence(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    result, _ = _ask(s, "flag", [ADDED])
    assert result.text == ADDED
    [v] = [v for v in result.verdicts if v.reason == "grounding.unsupported"]
    assert v.action == "flag" and v.score is not None and v.score < 0.5
    assert "40 nanoseconds" in (v.detail or "")


def test_idk_replaces_an_unsupported_answer_with_the_sources(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    result, _ = _ask(s, "idk", [ADDED])
    assert result.text.startswith("I don't know") and "[1] The assert statement" in result.text


def test_reask_asks_again_for_an_answer_from_the_sources_only(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    result, provider = _ask(s, "reask", [ADDED, SUPPORTED])
    assert result.text == SUPPORTED
    assert "using only facts stated in the sources" in provider.requests[1].messages[-1]["content"]
    assert json.loads(last_row(s)["counters"])["validation.grounding.reasks"] == 1


def test_reasks_are_bounded(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    with pytest.raises(OutputRejected, match="not supported by the retrieved sources"):
        _ask(s, "reask", [ADDED])
    assert last_row(s)["error_code"] == "grounding_unsupported"


def test_a_judge_catches_a_changed_detail_that_the_score_lets_through(make_settings: MakeSettings) -> None:
    s = make_settings(
        "models: [{name: m, provider: scripted}, {name: judge, provider: scripted}]\n"
        "features:\n  - name: judged\n    model: m\n    retrieval: {mode: keyword}\n"
        "    validation: {grounding: {weight: 0, threshold: 0.3, judge: judge, action: idk}}\n"
        "storage: {path: keel.db}\n"
    )
    judge = ScriptedProvider("judge", ["UNSUPPORTED"])

    async def go() -> Any:
        async with Pipeline(s, providers={"m": ScriptedProvider("m", [CHANGED]), "judge": judge}) as p:
            call = Call(
                feature="judged",
                messages=[{"role": "user", "content": "Is __debug__ True?"}],
                chunks=[{"id": "assert", "title": "The assert statement", "text": SOURCE}],
            )
            return await p.run(call)

    result = asyncio.run(go())
    assert result.text.startswith("I don't know")
    assert "UNSUPPORTED" in judge.requests[0].messages[0]["content"]
    assert CHANGED in judge.requests[0].messages[1]["content"]
    [v] = [v for v in result.verdicts if v.reason == "grounding.unsupported"]
    assert v.detail is not None and v.detail.startswith("judge judge: unsupported")
