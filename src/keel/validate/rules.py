"""Hybrid pipelines: deterministic rules in front of the model, and deterministic edits after it.

``IntentStage`` answers a call without the model when its last user message matches an intent:
by a pattern, or by embedding similarity to the intent's examples (the feature's embedder). The
answer comes from a fixed text, a table row chosen by a pattern group, or a Python function. The
model that would have answered is recorded as a spend paid by nobody, so the Monitoring layer
counts what the rule saved (``saved_usd``); the ledger's ``route`` says ``intent:<name>``.

``PostprocessStage`` applies regex replacements, functions and stripping to the model's answer
before the Validation layer checks it.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.call import Call, Completion, Spend, Usage
from keel.context.embed import Embedder, Matrix
from keel.errors import ConfigError
from keel.llm.providers import Provider
from keel.llm.tokens import message_text
from keel.stage import Layer, Stage
from keel.validate.answer import rewrite
from keel.validate.imports import import_object
from keel.validate.settings import Intent, PostStep
from keel.validate.structured import NotJSON, OutputSchema, parse

RuleFunction = Callable[..., Any]
"""``fn(call, groups)`` returning the answer text (or an awaitable of it); None: let the model answer."""


@dataclass(slots=True)
class Match:
    """Which intent matched, how (``pattern`` or ``example``), and the pattern's named groups."""

    intent: Intent
    how: str
    groups: dict[str, str]
    score: float = 1.0


class IntentMatcher:
    """Finds the intent of a question: every intent's patterns first, then the nearest example."""

    def __init__(self, intents: list[Intent], embedder: Embedder | None) -> None:
        self.intents = intents
        self.patterns = [(i, [re.compile(p, re.IGNORECASE) for p in i.patterns]) for i in intents]
        self.embedder = embedder
        self.owners = [i for i in intents for _ in i.examples]
        self._examples: Matrix | None = None

    async def match(self, text: str) -> Match | None:
        """The matching intent, or None."""
        for intent, patterns in self.patterns:
            for p in patterns:
                m = p.search(text)
                if m:
                    groups = {k: v for k, v in m.groupdict().items() if v is not None}
                    return Match(intent, "pattern", groups)
        if not self.owners or self.embedder is None or not text.strip():
            return None
        if self._examples is None:
            self._examples = await self.embedder.embed([e for i in self.intents for e in i.examples])
        query = await self.embedder.embed([text])
        scores = self._examples @ query[0]
        best = int(np.argmax(scores))
        intent, score = self.owners[best], float(scores[best])
        return Match(intent, "example", {}, score) if score >= intent.threshold else None


class IntentStage(Stage):
    """Answer from a rule when the question matches an intent; the model is not called."""

    name = "llm.rules"
    layer = Layer.LLM

    def __init__(
        self,
        matcher: IntentMatcher,
        functions: dict[str, RuleFunction],
        provider: Provider,
        model: str,
        schema: OutputSchema | None = None,
    ) -> None:
        self.schema = schema  # a rule's answer to a schema feature must satisfy it too
        self.matcher = matcher
        self.functions = functions
        self.provider = provider  # counts the tokens the model would have been paid for
        self.model = model

    async def run(self, call: Call) -> None:
        """Set ``call.completion`` when a rule answers."""
        if call.completion is not None or call.params.get("tools"):
            return  # answered already, or the caller wants tool calls: only the model can do that
        user = next((m for m in reversed(call.messages) if m.get("role") == "user"), None)
        if user is None:
            return
        found = await self.matcher.match(message_text(user))
        if found is None:
            return
        text = await self._answer(call, found)
        if text is None:
            return
        if self.schema is not None and not valid_json(text, self.schema):
            call.count("rules.invalid_answer")  # a function's answer that breaks the schema: ask the model
            return
        intent = found.intent
        call.completion = Completion(
            choices=[
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            model=f"rules:{intent.name}",
            id=f"chatcmpl-rules-{call.id}",
            created=int(time.time()),
        )
        would = Usage(
            input_tokens=self.provider.count_messages(call.messages),
            output_tokens=self.provider.count_tokens(text),
            estimated=True,
        )
        call.spend.append(Spend(self.model, would, cached=True))  # saved: no one paid for it
        call.route = f"intent:{intent.name}"
        call.count(f"rules.intent.{intent.name}")
        call.count(f"rules.matched_by_{found.how}")

    async def _answer(self, call: Call, found: Match) -> str | None:
        intent = found.intent
        if intent.answer is not None:
            try:
                return intent.answer.format(**found.groups)
            except (KeyError, IndexError, ValueError):
                return intent.answer
        if intent.table is not None:
            key = found.groups.get(intent.key, "").strip().lower()
            table = {k.lower(): v for k, v in intent.table.items()}
            return table.get(key)  # an unknown key: the model answers
        result = self.functions[intent.name](call, found.groups)
        if inspect.isawaitable(result):
            result = await result
        return None if result is None else str(result)


class PostprocessStage(Stage):
    """Deterministic edits of the answer, in order, before the other checks."""

    name = "validation.postprocess"
    layer = Layer.VALIDATION

    def __init__(self, steps: list[PostStep], functions: dict[int, Callable[[str], str]]) -> None:
        self.steps = [(s, re.compile(s.replace) if s.replace is not None else None) for s in steps]
        self.functions = functions

    async def run(self, call: Call) -> None:
        """Apply the steps to the answer text; a changed answer is a new completion."""
        if call.completion is None or call.completion.message.get("tool_calls"):
            return
        before = text = call.text
        for i, (step, pattern) in enumerate(self.steps):
            if pattern is not None:
                text = pattern.sub(step.with_, text)
            elif step.strip:
                text = text.strip()
            else:
                text = str(self.functions[i](text))
        if text != before:
            rewrite(call, text)
            call.count("validation.postprocessed")


def valid_json(text: str, schema: OutputSchema) -> bool:
    """True when ``text`` is JSON valid against ``schema``."""
    try:
        return not schema.errors(parse(text, repair=False).value)
    except NotJSON:
        return False


def check_answers(intents: list[Intent], schema: OutputSchema, *, where: str) -> None:
    """ConfigError when a fixed answer or table row of a schema feature is not valid against it."""
    for i, intent in enumerate(intents):
        texts = [intent.answer] if intent.answer is not None else list((intent.table or {}).values())
        for text in texts:
            if text is not None and not valid_json(text, schema):
                raise ConfigError(
                    f"{where}.intents[{i}]: the answer {text[:60]!r} is not JSON valid against the schema"
                )


def intent_functions(intents: list[Intent], *, where: str) -> dict[str, RuleFunction]:
    """The Python functions the intents name, imported once at load."""
    out: dict[str, RuleFunction] = {}
    for i, intent in enumerate(intents):
        if intent.function is not None:
            fn = import_object(intent.function, where=f"{where}.intents[{i}].function", what="a function")
            out[intent.name] = _callable(fn, intent.function, f"{where}.intents[{i}].function")
    return out


def post_functions(steps: list[PostStep], *, where: str) -> dict[int, Callable[[str], str]]:
    """The post-processing functions, imported once at load."""
    out: dict[int, Callable[[str], str]] = {}
    for i, step in enumerate(steps):
        if step.function is not None:
            fn = import_object(step.function, where=f"{where}.postprocess[{i}].function", what="a function")
            out[i] = _callable(fn, step.function, f"{where}.postprocess[{i}].function")
    return out


def _callable(fn: Any, path: str, where: str) -> Any:
    if not callable(fn):
        raise ConfigError(f"{where}: {path} is not callable")
    return fn
