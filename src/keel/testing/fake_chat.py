"""The fake upstream's chat completions: a request becomes answers, then a JSON body or SSE events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from random import Random
from typing import Any

import orjson

from keel.llm.tokens import count_messages, count_tokens
from keel.testing.fake_content import (
    Answer,
    apply_stop,
    broken_json,
    choose_tool,
    json_content,
    pieces,
    reply_text,
    tool_call,
    truncate,
)

_MAX_N = 16
# A tool call's arguments are streamed in pieces of this many characters, as OpenAI does.
_ARGUMENT_PIECE = 12
DONE = b"data: [DONE]\n\n"


class BadRequest(ValueError):
    """The request is not a chat completion request the fake can answer (a 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class Plan:
    """Everything a chat answer needs, computed once, then shaped as a body or as a stream."""

    id: str
    model: str
    created: int
    answers: list[Answer]
    usage: dict[str, Any] | None


def plan(
    req: dict[str, Any],
    *,
    default_model: str,
    seq: int,
    usage: bool,
    broken: str | None,
    rng: Random,
    rogue_tool: str | None = None,
) -> Plan:
    """The answers to ``req``; ``broken`` names how to break JSON content (malformed fault);
    ``rogue_tool`` names a tool to call whatever was offered (a model that strays from its tools)."""
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: required, a non-empty list of messages", "messages")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages: each message must be an object", "messages")
    n = req.get("n")
    n = 1 if n is None else n
    if not isinstance(n, int) or not 1 <= n <= _MAX_N:
        raise BadRequest(f"n: must be an integer from 1 to {_MAX_N}", "n")
    limit = req.get("max_completion_tokens")
    limit = req.get("max_tokens") if limit is None else limit
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise BadRequest("max_tokens: must be a positive integer", "max_tokens")
    tools = req.get("tools")
    tool = None
    if isinstance(tools, list) and tools and messages[-1].get("role") == "user":
        tool = choose_tool(tools, req.get("tool_choice"))
        if rogue_tool is not None and tool is not None:
            tool = {"type": "function", "function": {"name": rogue_tool, "parameters": {"type": "object"}}}
    fmt = req.get("response_format")
    answers = [
        _answer(
            messages, i, tool, fmt if isinstance(fmt, dict) else None, limit, req.get("stop"), broken, rng
        )
        for i in range(n)
    ]
    usage_block = None
    if usage:
        prompt = count_messages(messages)
        completion = sum(_tokens(a) for a in answers)
        usage_block = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
    model = req.get("model")
    return Plan(
        id=f"chatcmpl-fake{seq:012x}",
        model=model if isinstance(model, str) and model else default_model,
        created=int(time.time()),
        answers=answers,
        usage=usage_block,
    )


def _answer(
    messages: list[dict[str, Any]],
    index: int,
    tool: dict[str, Any] | None,
    fmt: dict[str, Any] | None,
    limit: int | None,
    stop: Any,
    broken: str | None,
    rng: Random,
) -> Answer:
    if tool is not None:
        return Answer(content=None, finish_reason="tool_calls", tool_call=tool_call(tool, messages))
    if fmt is not None and fmt.get("type") in ("json_schema", "json_object"):
        value, schema = json_content(fmt, messages)
        text = broken_json(value, schema, rng, broken) if broken else orjson.dumps(value).decode()
    else:
        text = reply_text(messages)
        if index:
            text = f"Alternative {index + 1}. {text}"
    text, _ = apply_stop(text, stop)
    finish = "stop"
    if limit is not None:
        text, cut = truncate(text, limit)
        finish = "length" if cut else finish
    return Answer(content=text, finish_reason=finish)


def _tokens(a: Answer) -> int:
    if a.tool_call is not None:
        fn = a.tool_call["function"]
        return count_tokens(fn["name"]) + count_tokens(fn["arguments"])
    return count_tokens(a.content or "")


def body(p: Plan) -> bytes:
    """The whole ``chat.completion`` JSON body."""
    choices = []
    for i, a in enumerate(p.answers):
        message: dict[str, Any] = {"role": "assistant", "content": a.content}
        if a.tool_call is not None:
            message["tool_calls"] = [a.tool_call]
        choices.append({"index": i, "message": message, "logprobs": None, "finish_reason": a.finish_reason})
    out: dict[str, Any] = {
        "id": p.id,
        "object": "chat.completion",
        "created": p.created,
        "model": p.model,
        "system_fingerprint": "fp_keel_fake",
        "choices": choices,
    }
    if p.usage is not None:
        out["usage"] = p.usage
    return orjson.dumps(out)


def events(p: Plan, *, include_usage: bool, error_after: int | None, malformed: bool) -> list[bytes]:
    """The SSE events of the stream, ``data: [DONE]`` last (or an error event after ``error_after``)."""
    head = {"id": p.id, "object": "chat.completion.chunk", "created": p.created, "model": p.model}
    out: list[bytes] = []
    sent = 0  # content pieces so far, for error_after

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

    for i, a in enumerate(p.answers):
        if a.tool_call is not None:
            fn = a.tool_call["function"]
            first = {"index": 0, "id": a.tool_call["id"], "type": "function"}
            out.append(
                chunk(
                    i,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{**first, "function": {"name": fn["name"], "arguments": ""}}],
                    },
                )
            )
            args = fn["arguments"]
            parts = [args[k : k + _ARGUMENT_PIECE] for k in range(0, len(args), _ARGUMENT_PIECE)]
            deltas: list[dict[str, Any]] = [
                {"tool_calls": [{"index": 0, "function": {"arguments": s}}]} for s in parts
            ]
        else:
            out.append(chunk(i, {"role": "assistant", "content": ""}))
            deltas = [{"content": s} for s in pieces(a.content or "") if s]
        for delta in deltas:
            if error_after is not None and sent >= error_after:
                return [*out, _error_event()]
            out.append(chunk(i, delta))
            sent += 1
        if error_after is not None and sent >= error_after:
            return [*out, _error_event()]
        out.append(chunk(i, {}, a.finish_reason))
    if malformed and len(out) > 1:
        line = out[1]
        out[1] = line[: len(line) // 2] + b"\n\n"  # a data line that is not JSON
    if include_usage and p.usage is not None:
        out.append(b"data: " + orjson.dumps({**head, "choices": [], "usage": p.usage}) + b"\n\n")
    out.append(DONE)
    return out


def _error_event() -> bytes:
    err = {"message": "the fake upstream failed mid-stream", "type": "server_error", "code": "stream_error"}
    return b"data: " + orjson.dumps({"error": err}) + b"\n\n"
