"""Helpers shared by the fake upstream's tests: plain HTTP with the standard library, SSE splitting."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keel.testing import FakeUpstream

USER = [{"role": "user", "content": "What are the opening hours of the Oslo office on Sundays?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
BOOKING = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "nights": {"type": "integer", "minimum": 1, "maximum": 30},
        "guests": {"type": "array", "items": {"$ref": "#/$defs/guest"}, "minItems": 1},
    },
    "required": ["city", "nights", "guests"],
    "additionalProperties": False,
    "$defs": {
        "guest": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
            "required": ["name"],
        }
    },
}


@dataclass
class Reply:
    """Status, headers and body of one HTTP exchange."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> Reply:
    """One request with the standard library, so nothing validates the answer before the test does."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def chat(fake: FakeUpstream, headers: dict[str, str] | None = None, **body: Any) -> Reply:
    """POST /v1/chat/completions."""
    return http("POST", fake.base_url + "/chat/completions", {"messages": USER, **body}, headers)


def sse(reply: Reply) -> list[Any]:
    """The data of each server-sent event: parsed JSON, or the raw text when it is not JSON."""
    out: list[Any] = []
    for block in reply.body.decode().split("\n\n"):
        if block.startswith("data: "):
            text = block[len("data: ") :]
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError:
                out.append(text)
    return out


def wait_until(check: Callable[[], bool]) -> bool:
    """Poll ``check`` for up to 10 s (the server notices things on its own thread)."""
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
