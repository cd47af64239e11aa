"""The OpenAI chat-completions request, validated into plain dicts that pass through untouched."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NotRequired, Required

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

from keel.errors import InvalidRequest


@with_config(ConfigDict(extra="allow", strict=True))
class ChatMessage(TypedDict, total=False):
    """One message; fields keel does not know are kept and forwarded."""

    role: Required[Literal["system", "developer", "user", "assistant", "tool", "function"]]
    content: str | list[dict[str, Any]] | None
    name: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str


@with_config(ConfigDict(extra="forbid", strict=True))
class KeelOptions(TypedDict, total=False):
    """keel's own request options, sent as the extra body field ``keel``."""

    variables: dict[str, Any]
    metadata: dict[str, str | int | float | bool]
    confirm: str  # confirms a side-effecting tool call held back for confirmation
    documents: list[dict[str, Any]]  # the call's own sources, for a feature with retrieval
    filters: dict[str, Any]  # metadata filters added to the feature's retrieval filters


@with_config(ConfigDict(extra="allow", strict=True))
class ChatRequest(TypedDict, total=False):
    """``POST /v1/chat/completions``: every OpenAI parameter passes through to the provider."""

    model: str
    messages: Required[Annotated[list[ChatMessage], Field(min_length=1)]]
    stream: bool
    stream_options: dict[str, Any]
    max_tokens: Annotated[int, Field(ge=1)] | None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None
    temperature: Annotated[float, Field(ge=0, le=2)] | None
    n: Annotated[int, Field(ge=1, le=128)] | None
    tools: list[dict[str, Any]]
    response_format: dict[str, Any]
    keel: NotRequired[KeelOptions]


CHAT_REQUEST = TypeAdapter(ChatRequest)


def parse_chat_request(body: bytes) -> dict[str, Any]:
    """Decode and validate a request body; InvalidRequest names the offending field."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if isinstance(exc.__cause__, UnicodeDecodeError) or "utf-8" in str(exc).lower():
            raise InvalidRequest("request body is not valid UTF-8") from None
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        request = CHAT_REQUEST.validate_python(data)
    except ValidationError as exc:
        raise invalid_from(exc) from None
    return dict(request)


_TYPE_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*|dict\[.*|function-.*|union\[.*)$")


def invalid_from(exc: ValidationError) -> InvalidRequest:
    """A pydantic error as one InvalidRequest naming the field path."""
    err = exc.errors(include_url=False)[0]
    parts = [str(p) for p in err["loc"]]
    union = False
    while parts and _TYPE_TAG.match(parts[-1]):  # pydantic tags union members; the user needs the field
        parts.pop()
        union = True
    loc = ".".join(parts)
    if err["type"] == "missing":
        msg = "required field is missing"
    elif union:
        msg = f"has the wrong type ({type(err['input']).__name__})"
    else:
        msg = err["msg"]
    return InvalidRequest(f"{loc}: {msg}" if loc else msg, param=loc or None)


def request_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's JSON schema for the OpenAPI document, and the component schemas it refers to."""
    schema = CHAT_REQUEST.json_schema(ref_template="#/components/schemas/{model}")
    return schema, schema.pop("$defs", {})
