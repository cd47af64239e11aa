"""A whole completion as stream chunks: how a held stream is sent once validation changed its answer.

A stage that rewrites the answer (tool calls removed or held for confirmation) makes the
chunks the provider sent wrong; these are the chunks of the answer as it now stands, in
OpenAI's order: the role, the content, each tool call, the finish reason, then usage.
"""

from __future__ import annotations

from typing import Any

from keel.call import Completion, Usage
from keel.llm.providers.base import Chunk


def completion_chunks(completion: Completion, usage: Usage | None = None) -> list[Chunk]:
    """``completion`` as chunks; ``usage`` (when given) as a last chunk with no choices."""
    base: dict[str, Any] = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
    }
    chunks: list[Chunk] = []
    for choice in completion.choices:
        index = choice.get("index", 0)
        message = choice.get("message") or {}

        def delta(d: dict[str, Any], finish: str | None = None, index: int = index) -> Chunk:
            return {**base, "choices": [{"index": index, "delta": d, "finish_reason": finish}]}

        chunks.append(delta({"role": message.get("role") or "assistant"}))
        content = message.get("content")
        if isinstance(content, str) and content:
            chunks.append(delta({"content": content}))
        for i, tc in enumerate(message.get("tool_calls") or ()):
            chunks.append(delta({"tool_calls": [{"index": i, **tc}]}))
        chunks.append(delta({}, choice.get("finish_reason") or "stop"))
    if completion.extra.get("keel") and chunks:
        chunks[-1] = {**chunks[-1], "keel": completion.extra["keel"]}
    if usage is not None:
        chunks.append({**base, "choices": [], "usage": usage.to_openai()})
    return chunks
