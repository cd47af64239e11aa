"""Reassemble a streamed answer into a ``Completion`` as the chunks go by."""

from __future__ import annotations

from typing import Any

from keel.call import Completion, Usage
from keel.llm.providers.base import Chunk


class StreamAccumulator:
    """Collects OpenAI chunk dicts; ``completion()`` is the answer they add up to."""

    __slots__ = ("_choices", "created", "id", "model", "usage")

    def __init__(self) -> None:
        self._choices: dict[int, dict[str, Any]] = {}
        self.id: str | None = None
        self.model = ""
        self.created: int | None = None
        self.usage: Usage | None = None

    def add(self, chunk: Chunk) -> None:
        """Fold one chunk into the answer."""
        if self.id is None:
            self.id = chunk.get("id")
            self.model = chunk.get("model") or ""
            self.created = chunk.get("created")
        usage = chunk.get("usage")
        if usage:
            details = usage.get("prompt_tokens_details") or {}
            self.usage = Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
                cached_input_tokens=int(details.get("cached_tokens") or 0),
            )
        for choice in chunk.get("choices") or ():
            state = self._choices.setdefault(
                int(choice.get("index", 0)),
                {"content": [], "tool_calls": {}, "role": "assistant", "finish": None},
            )
            delta = choice.get("delta") or {}
            if delta.get("role"):
                state["role"] = delta["role"]
            if delta.get("content"):
                state["content"].append(delta["content"])
            for tc in delta.get("tool_calls") or ():
                self._add_tool_delta(state["tool_calls"], tc)
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]

    @staticmethod
    def _add_tool_delta(calls: dict[int, dict[str, Any]], tc: dict[str, Any]) -> None:
        entry = calls.setdefault(
            int(tc.get("index", 0)), {"id": None, "type": "function", "name": "", "args": []}
        )
        if tc.get("id"):
            entry["id"] = tc["id"]
        if tc.get("type"):
            entry["type"] = tc["type"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            entry["name"] += fn["name"]
        if fn.get("arguments"):
            entry["args"].append(fn["arguments"])

    @property
    def text(self) -> str:
        """The first choice's text so far."""
        state = self._choices.get(0)
        return "".join(state["content"]) if state else ""

    def completion(self) -> Completion:
        """The whole answer as a non-streamed completion."""
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: dict[str, Any] = {"role": state["role"], "content": "".join(state["content"]) or None}
            if state["tool_calls"]:
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": c["type"],
                        "function": {"name": c["name"], "arguments": "".join(c["args"])},
                    }
                    for _, c in sorted(state["tool_calls"].items())
                ]
            elif message["content"] is None:
                message["content"] = ""
            choices.append({"index": index, "message": message, "finish_reason": state["finish"]})
        return Completion(
            choices=choices, model=self.model, usage=self.usage, id=self.id, created=self.created
        )
