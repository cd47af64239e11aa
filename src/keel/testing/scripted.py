"""A scripted provider: answers from a list or a function, records what it was asked.

Use it in your own tests to run a real ``Pipeline`` without a model or a socket::

    provider = ScriptedProvider("upstream", ["Hello!", UpstreamTimeout("slow")])
    pipeline = Pipeline(settings, providers={"upstream": provider})
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, ClassVar

from keel.call import Completion, Usage
from keel.errors import KeelError
from keel.llm.providers.base import Chunk, ModelRequest, Provider

Reply = str | dict[str, Any] | Completion | KeelError
"""Text, an assistant message dict (e.g. with tool_calls), a whole Completion, or an error to raise."""


class ScriptedProvider(Provider):
    """Replies in order (the last one repeats), or computed by ``script(request)``."""

    kind: ClassVar[str] = "scripted"

    def __init__(
        self,
        name: str = "scripted",
        script: Iterable[Reply] | Callable[[ModelRequest], Reply] = ("ok",),
        *,
        usage: bool = True,
    ) -> None:
        super().__init__(name)
        self._fn = script if callable(script) else None
        self._replies: list[Reply] = [] if callable(script) else list(script)
        self.usage = usage
        self.requests: list[ModelRequest] = []

    def _next(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        if self._fn is not None:
            reply = self._fn(request)
        else:
            reply = self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]
        if isinstance(reply, KeelError):
            raise reply
        if isinstance(reply, Completion):
            return reply
        message = {"role": "assistant", "content": reply} if isinstance(reply, str) else reply
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        usage = None
        if self.usage:
            out = self.count_tokens(str(message.get("content") or ""))
            usage = Usage(input_tokens=self.count_messages(request.messages), output_tokens=out)
        return Completion(
            choices=[{"index": 0, "message": message, "finish_reason": finish}],
            model=self.name,
            usage=usage,
            id=f"chatcmpl-scripted-{len(self.requests)}",
            created=int(time.time()),
        )

    async def complete(self, request: ModelRequest) -> Completion:
        """The next scripted reply."""
        return self._next(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """The next scripted reply, word by word, then a usage chunk."""
        comp = self._next(request)
        base = {
            "id": comp.id,
            "object": "chat.completion.chunk",
            "created": comp.created,
            "model": comp.model,
        }
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
        words = comp.text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            yield {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": comp.finish_reason}]}
        if comp.usage is not None:
            yield {**base, "choices": [], "usage": comp.usage.to_openai()}
