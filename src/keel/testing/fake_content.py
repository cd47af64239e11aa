"""What the fake upstream says: deterministic text, JSON, tool calls, embeddings and broken JSON.

Everything here is a pure function of the request, so the same request always gets the same
answer and a test can check what the upstream saw (the reply echoes the last user message).
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from random import Random
from typing import Any

import orjson

from keel.llm.tokens import count_tokens
from keel.testing.fake_schema import instance

_WORDS = re.compile(r"\s*\S+")
_ECHO_WORDS = 12
_ECHO_CHARS = 120


@dataclass(slots=True)
class Answer:
    """One choice's answer before it is shaped into a response or a stream."""

    content: str | None
    finish_reason: str
    tool_call: dict[str, Any] | None = None  # {"id", "type", "function": {"name", "arguments"}}


def text_of(message: dict[str, Any]) -> str:
    """The text a message carries (string content or its text parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def echo(text: str) -> str:
    """The first words of ``text``, whitespace collapsed, short enough for a one-line answer."""
    words = text.split()
    short = " ".join(words[:_ECHO_WORDS])
    if len(short) > _ECHO_CHARS:
        short = short[:_ECHO_CHARS].rstrip()
    return short + ("..." if len(words) > _ECHO_WORDS or len(short) < len(" ".join(words)) else "")


def reply_text(messages: list[dict[str, Any]]) -> str:
    """The deterministic answer to a conversation, mentioning a tool result when that came last."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"The tool returned: {echo(text_of(last))}. That is the answer from the fake upstream."
    user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if user is None:
        return "This is a deterministic answer from the fake upstream."
    cited = cite_source(messages, text_of(user))
    if cited is not None:
        return cited
    return f"You said: {echo(text_of(user))}. This is a deterministic answer from the fake upstream."


# keel's packed sources (keel.context.pack): "[n] (source: ...)" and the source's text below it.
_SOURCE = re.compile(r"^\[(\d+)\] \(source: [^\n]*\)\n(.*?)(?=^\[\d+\] \(source: |\Z)", re.M | re.S)
_TAG = re.compile(r"<[^>\n]*>")
_FENCED = re.compile(r"^<<<untrusted \S+ begin>>>\n(.*?)\n<<<untrusted \S+ end>>>", re.M | re.S)


def _inside(body: str) -> str:
    """A source's own text: inside its fence when it has one, else with markup tags removed."""
    fenced = _FENCED.search(body)
    return fenced.group(1) if fenced else _TAG.sub(" ", body)


_TERM = re.compile(r"\w{3,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def cite_source(messages: list[dict[str, Any]], question: str) -> str | None:
    """With keel's numbered sources in a system message: an answer quoting the source that shares
    the most words with the question, cited as ``[n]`` (a grounded model's behaviour); else None."""
    sources = [
        (int(n), _inside(body))
        for m in messages
        if m.get("role") == "system"
        for n, body in _SOURCE.findall(text_of(m))
    ]
    if not sources:
        return None
    asked = set(_TERM.findall(question.lower()))

    def overlap(text: str) -> int:
        return len(asked & set(_TERM.findall(text.lower())))

    n, body = max(sources, key=lambda s: (overlap(s[1]), -s[0]))
    sentence = max(_SENTENCE.split(body.strip()), key=overlap)  # the first of the best
    return f"According to the sources: {echo(sentence)} [{n}]"


def pieces(text: str) -> list[str]:
    """``text`` split into word-sized pieces (each with its leading space), as a stream sends them."""
    return _WORDS.findall(text) or [text]


def apply_stop(text: str, stop: Any) -> tuple[str, bool]:
    """``text`` cut before the first stop sequence; True when one was found."""
    stops = [stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str) and s]
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def truncate(text: str, max_tokens: int, encoding: str = "o200k_base") -> tuple[str, bool]:
    """``text`` cut at a word boundary to at most ``max_tokens`` tokens; True when it was cut."""
    if count_tokens(text, encoding) <= max_tokens:
        return text, False
    out = ""
    for piece in pieces(text):
        if count_tokens(out + piece, encoding) > max_tokens:
            break
        out += piece
    return out, True


def json_content(response_format: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The structured answer a ``response_format`` asks for, and the schema it follows (or None)."""
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return instance(schema), schema
    return {"answer": reply_text(messages)}, None


def tool_call(tool: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A call to ``tool`` with arguments generated from its parameters schema."""
    fn = tool.get("function") or {}
    name = str(fn.get("name") or "tool")
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    arguments = orjson.dumps(instance(params)).decode()
    digest = hashlib.blake2b(f"{name}\0{arguments}\0{len(messages)}".encode(), digest_size=8).hexdigest()
    return {"id": f"call_{digest}", "type": "function", "function": {"name": name, "arguments": arguments}}


def choose_tool(tools: list[Any], tool_choice: Any) -> dict[str, Any] | None:
    """The tool the fake calls: the one ``tool_choice`` names, else the first; None for "none"."""
    if tool_choice == "none":
        return None
    funcs = [t for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        for t in funcs:
            if t["function"].get("name") == wanted:
                return t
    return funcs[0] if funcs else None


def embedding(text: str, dim: int) -> list[float]:
    """A unit-length vector: the sum of one pseudo-random vector per word (lower-cased), so the
    same text gets the same vector and texts sharing words are close, as with a real model."""
    words = _EMBED_WORDS.findall(text.lower()) or [text]
    values = [0.0] * dim
    for word in words:
        raw = hashlib.shake_256(word.encode()).digest(2 * dim)
        for i, v in enumerate(struct.unpack(f"<{dim}H", raw)):
            values[i] += v / 32767.5 - 1.0
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


_EMBED_WORDS = re.compile(r"\w+")


BREAKAGES = ("fenced", "trailing_comma", "truncated", "wrong_type", "missing_required")


def broken_json(value: Any, schema: Any, rng: Random, how: str = "random") -> str:
    """``value`` as JSON a strict client must reject, broken the ``how`` way (one of ``BREAKAGES``)."""
    if how not in BREAKAGES:
        how = rng.choice(BREAKAGES)
    text = orjson.dumps(value).decode()
    if how == "fenced":
        return f"```json\n{text}\n```"
    if how == "trailing_comma" and text[-1:] in "}]" and len(text) > 2:
        return text[:-1] + "," + text[-1]
    # A wrong type or a missing field is only broken against a schema; without one, truncate.
    if how == "wrong_type" and isinstance(schema, dict) and isinstance(value, dict) and value:
        key = next(iter(value))
        return orjson.dumps({**value, key: _other_type(value[key])}).decode()
    required = schema.get("required") if isinstance(schema, dict) else None
    present = [r for r in required or () if isinstance(value, dict) and r in value]
    if how == "missing_required" and present:
        return orjson.dumps({k: v for k, v in value.items() if k != present[0]}).decode()
    return text[: max(1, len(text) // 2)]  # truncated mid-object (also the fallback)


def _other_type(v: Any) -> Any:
    if isinstance(v, str):
        return 12345
    if isinstance(v, bool | int | float):
        return "not a number"
    if v is None:
        return [1, 2]
    return "not an object"
