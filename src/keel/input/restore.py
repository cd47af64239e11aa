"""Putting the originals back: the caller sees its own values where the model saw stand-ins.

Restoring happens at the very end, when the answer is handed over (``Pipeline.run`` after the
Monitoring layer, and chunk by chunk in a stream), so the ledger, metrics and traces only ever see
the redacted answer. In a stream a placeholder can arrive split across chunks (``<EMA`` + ``IL_1>``):
``StreamReplacer`` holds back a tail that could still become a stand-in and releases it as soon
as it cannot.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from keel.call import Completion, Result


def _pattern(mapping: dict[str, str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))


def restore_text(text: str, vault: dict[str, str]) -> str:
    """``text`` with every stand-in in ``vault`` replaced by its original."""
    if not vault or not text:
        return text
    return _pattern(vault).sub(lambda m: vault[m.group()], text)


class StreamReplacer:
    """Replace the keys of ``mapping`` in text that arrives in pieces; ``feed`` then ``end``."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self._re = _pattern(mapping)
        self._prefixes = {k[:i] for k in mapping for i in range(1, len(k))}
        self._longest = max(map(len, mapping))
        self._pending = ""

    def feed(self, text: str) -> str:
        """What can be released now that ``text`` arrived."""
        pending = self._pending + text
        done = self._re.sub(lambda m: self.mapping[m.group()], pending)
        # Hold the longest tail that is the start of a key (it may complete with the next piece).
        hold = 0
        for k in range(min(len(done), self._longest - 1), 0, -1):
            if done[-k:] in self._prefixes:
                hold = k
                break
        self._pending = done[len(done) - hold :] if hold else ""
        return done[: len(done) - hold]

    def end(self) -> str:
        """The rest, at the end of the stream."""
        rest, self._pending = self._pending, ""
        return rest


def restore_completion(completion: Completion, vault: dict[str, str]) -> Completion:
    """A copy of ``completion`` with originals in its text and tool-call arguments."""
    in_json = {k: json.dumps(v)[1:-1] for k, v in vault.items()}  # inside a JSON string
    choices = []
    for choice in completion.choices:
        msg = dict(choice.get("message") or {})
        if isinstance(msg.get("content"), str):
            msg["content"] = restore_text(msg["content"], vault)
        if msg.get("tool_calls"):
            msg["tool_calls"] = [_restore_call(tc, in_json) for tc in msg["tool_calls"]]
        choices.append({**choice, "message": msg})
    return dataclasses.replace(completion, choices=choices)


def _restore_call(tc: Any, in_json: dict[str, str]) -> Any:
    fn = tc.get("function") if isinstance(tc, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
        return tc
    return {**tc, "function": {**fn, "arguments": restore_text(fn["arguments"], in_json)}}


def _restore_value(value: Any, vault: dict[str, str]) -> Any:
    if isinstance(value, str):
        return restore_text(value, vault)
    if isinstance(value, list):
        return [_restore_value(v, vault) for v in value]
    if isinstance(value, dict):
        return {k: _restore_value(v, vault) for k, v in value.items()}
    return value


def restore_result(result: Result, vault: dict[str, str]) -> Result:
    """``result`` as the caller gets it: originals in the text, the message and the parsed output."""
    if not vault or result.completion is None:
        return result
    completion = restore_completion(result.completion, vault)
    return dataclasses.replace(
        result,
        text=restore_text(result.text, vault),
        output=_restore_value(result.output, vault),
        message=completion.message,
        completion=completion,
    )
