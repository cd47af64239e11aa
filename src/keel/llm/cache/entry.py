"""A cached answer: how it is stored (orjson bytes), served again, and replayed as a stream."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from keel.call import Completion, Usage
from keel.llm.providers.base import Chunk, ModelRequest

PIECE = 96
"""Characters of content per replayed chunk: a few chunks for a typical answer, not one per word."""


@dataclass(slots=True)
class Entry:
    """A stored answer: the completion, the configured model that gave it, and the question it answered."""

    completion: Completion
    answered_by: str
    question: str | None = None


def storable(completion: Completion) -> bool:
    """True for a whole answer worth keeping: every choice finished, and not by a content filter."""
    choices = completion.choices
    return bool(choices) and all(
        c.get("finish_reason") and c.get("finish_reason") != "content_filter" for c in choices
    )


def encode(completion: Completion, answered_by: str, question: str | None = None) -> bytes:
    """The answer as bytes for the ``Cache`` store."""
    u = completion.usage
    usage = None if u is None else [u.input_tokens, u.output_tokens, u.cached_input_tokens, u.estimated]
    return orjson.dumps(
        {
            "model": completion.model,
            "by": answered_by,
            "choices": completion.choices,
            "usage": usage,
            "extra": completion.extra,
            "q": question,
        }
    )


def decode(raw: bytes) -> Entry | None:
    """The stored answer, with a fresh id; None when the bytes are not an entry (then it is a miss)."""
    try:
        d = orjson.loads(raw)
        u = d["usage"]
        usage = None if u is None else Usage(int(u[0]), int(u[1]), int(u[2]), estimated=bool(u[3]))
        completion = Completion(
            choices=d["choices"],
            model=str(d["model"]),
            usage=usage,
            id=new_id(),
            created=int(time.time()),
            extra=d["extra"] or {},
        )
        return Entry(completion, str(d["by"]), d["q"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        return None


def new_id() -> str:
    """A fresh completion id for an answer served from the cache."""
    return f"chatcmpl-keel{random.getrandbits(64):016x}"


def serve(entry: Entry, request: ModelRequest, how: str) -> Completion:
    """Note the hit on the request's trace and return the answer."""
    trace = request.trace
    trace.cache = how
    trace.cached_usage = entry.completion.usage
    trace.model = entry.answered_by
    return entry.completion


def replay(completion: Completion) -> Iterator[Chunk]:
    """A stored answer as OpenAI chunks: role, content in a few pieces, tool calls, finish, usage."""
    base: dict[str, Any] = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
    }
    for choice in completion.choices:
        i = choice.get("index", 0)
        message = choice.get("message") or {}
        role = {"role": message.get("role") or "assistant", "content": ""}
        yield {**base, "choices": [{"index": i, "delta": role, "finish_reason": None}]}
        content = message.get("content")
        if isinstance(content, str):
            for start in range(0, len(content), PIECE):
                piece = {"content": content[start : start + PIECE]}
                yield {**base, "choices": [{"index": i, "delta": piece, "finish_reason": None}]}
        if message.get("refusal"):
            delta = {"refusal": message["refusal"]}
            yield {**base, "choices": [{"index": i, "delta": delta, "finish_reason": None}]}
        for n, call in enumerate(message.get("tool_calls") or ()):
            delta = {"tool_calls": [{"index": n, **call}]}
            yield {**base, "choices": [{"index": i, "delta": delta, "finish_reason": None}]}
        yield {**base, "choices": [{"index": i, "delta": {}, "finish_reason": choice.get("finish_reason")}]}
    if completion.usage is not None:
        yield {**base, "choices": [], "usage": completion.usage.to_openai()}
