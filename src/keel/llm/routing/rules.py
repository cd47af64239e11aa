"""Routing rules: send a call to a named model when its input size or wording matches.

Rules are tried in order and the first whose every condition holds wins. Input tokens are
the request's pre-counted ``input_tokens`` when the pipeline has them, otherwise counted
here, offline and once per call, and only when some rule asks about tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from keel.call import Message
from keel.llm.providers.base import ModelRequest
from keel.llm.tokens import message_text
from keel.settings import RouteRule

CountMessages = Callable[[list[Message]], int]


def last_user_text(messages: Sequence[Message]) -> str:
    """The text of the last user message ('' when there is none)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return message_text(m)
    return ""


class Rules:
    """An ordered list of routing rules, compiled once."""

    def __init__(self, rules: Sequence[RouteRule], count_tokens: CountMessages) -> None:
        self.rules = list(rules)
        self.count_tokens = count_tokens
        self._patterns = [re.compile(r.when.pattern) if r.when.pattern is not None else None for r in rules]
        self._wants_tokens = any(
            r.when.input_tokens_over is not None or r.when.input_tokens_under is not None for r in rules
        )

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, request: ModelRequest) -> int | None:
        """The index of the first rule that holds for ``request``, or None."""
        if not self.rules:
            return None
        tokens = None
        if self._wants_tokens:
            tokens = request.input_tokens
            if tokens is None:
                tokens = self.count_tokens(request.messages)
        text: str | None = None
        for i, rule in enumerate(self.rules):
            when = rule.when
            if tokens is not None:
                if when.input_tokens_over is not None and not tokens > when.input_tokens_over:
                    continue
                if when.input_tokens_under is not None and not tokens < when.input_tokens_under:
                    continue
            pattern = self._patterns[i]
            if pattern is not None:
                if text is None:
                    text = last_user_text(request.messages)
                if pattern.search(text) is None:
                    continue
            return i
        return None
