"""The system-prompt canary: a secret marker in the system prompt that no answer may repeat.

Each feature has its own token, derived from the guard key (``KEEL_GUARD_SECRET``, see
``keel.input.pseudonyms``) and the feature's name, so it is the same on every call (the exact cache
still hits) and on every replica that shares the key. The stage appends it, as an HTML comment,
to the first system (or developer) message after the prompt is rendered; a call without a system
prompt has nothing to protect and gets none. ``keel.validate.leakage`` blocks an answer that
contains it.
"""

from __future__ import annotations

from keel.call import Call
from keel.input.pseudonyms import keyed
from keel.stage import Layer, Stage

_PREFIX = "keel-canary-"


def canary_token(feature: str, key: bytes | None = None) -> str:
    """The canary token of ``feature`` (with the process's guard key, or ``key``)."""
    return f"{_PREFIX}{keyed('canary', feature, key):016x}"


def marker(token: str) -> str:
    """What is appended to the system prompt."""
    return f"\n\n<!-- {token} -->"


class CanaryStage(Stage):
    """Append the feature's canary to the first system or developer message."""

    name = "llm.canary"
    layer = Layer.LLM

    def __init__(self, token: str) -> None:
        self.token = token
        self.marker = marker(token)

    async def run(self, call: Call) -> None:
        """Add the marker (on a copy of the message: the caller's dicts are never changed)."""
        for i, m in enumerate(call.messages):
            if m.get("role") not in ("system", "developer"):
                continue
            content = m.get("content")
            if isinstance(content, str):
                new = {**m, "content": content + self.marker}
            elif isinstance(content, list):
                new = {**m, "content": [*content, {"type": "text", "text": self.marker}]}
            else:
                continue
            call.messages = [*call.messages[:i], new, *call.messages[i + 1 :]]
            return
