"""What makes two requests the same: the normalised request, hashed into a cache key.

A key covers everything that can change the answer and nothing that cannot: the feature, the
prompt version, the model, the messages exactly as they go upstream, the output schema and
every parameter except those that only concern transport or bookkeeping (``IGNORED``). Unknown
parameters are kept: a parameter keel does not know may change the answer, and a miss is
cheaper than a wrong answer.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from keel.call import Message
from keel.llm.providers.base import ModelRequest

VERSION = "1"
"""Bumped when the key or the stored entry changes shape: older entries then simply miss."""

IGNORED = frozenset({"user", "stream", "stream_options", "metadata", "store"})
"""Parameters that never change the answer."""

_FLOATS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})


def is_deterministic(params: dict[str, Any]) -> bool:
    """True when the request asks for a repeatable answer: temperature 0 or a seed."""
    t = params.get("temperature")
    if isinstance(t, int | float) and not isinstance(t, bool) and t == 0:
        return True
    return params.get("seed") is not None


def answer_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that change the answer, normalised (``null`` is unset, ``0`` equals ``0.0``)."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if v is None or k in IGNORED:
            continue
        out[k] = float(v) if k in _FLOATS and isinstance(v, int) and not isinstance(v, bool) else v
    return out


def _messages(messages: list[Message]) -> list[Message]:
    # A ``null`` field is the same as an absent one upstream; most messages have none.
    return [{k: v for k, v in m.items() if v is not None} if None in m.values() else m for m in messages]


def digest(*parts: Any) -> str | None:
    """A stable hex hash of JSON-able ``parts`` (dict keys sorted); None when they are not JSON-able."""
    try:
        raw = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError: a value that is not JSON (then nothing is cached)
        return None
    return hashlib.blake2b(raw, digest_size=20).hexdigest()


def exact_key(request: ModelRequest, model: str) -> str | None:
    """The exact-cache key of ``request`` to ``model``; None when the request cannot be keyed."""
    h = digest(
        VERSION,
        request.feature,
        request.prompt_version,
        model,
        _messages(request.messages),
        answer_params(request.params),
        request.schema,
    )
    return None if h is None else f"llm:exact:{h}"


def last_user_text(messages: list[Message]) -> str | None:
    """The text of the last message when it is the user's and holds only text; else None."""
    if not messages or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content.strip() or None
    if not isinstance(content, list):
        return None
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            return None  # an image or audio part: a text embedding cannot stand for it
        texts.append(part["text"])
    return "\n".join(texts).strip() or None


def semantic_scope(request: ModelRequest, model: str) -> str | None:
    """Where a request's paraphrases may be found: everything but the last user message must match.

    The conversation before the last user message is part of the scope, so an answer is never
    reused across different histories.
    """
    h = digest(
        VERSION,
        "semantic",
        request.feature,
        request.prompt_version,
        model,
        _messages(request.messages[:-1]),
        answer_params(request.params),
        request.schema,
    )
    return None if h is None else f"llm:sem:{h}"


def text_key(scope: str, text: str) -> str:
    """The cache key of the answer to ``text`` within ``scope``."""
    return f"{scope}:{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"
