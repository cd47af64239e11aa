"""Helpers shared by the OpenAI provider's tests: the provider on a fresh loop, and a raw HTTP server
for what no well-behaved server does (dropped connections, odd SSE framing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from keel.llm.providers.base import Chunk, ModelRequest
from keel.llm.providers.openai import OpenAIOptions, OpenAIProvider

T = TypeVar("T")
KEY = "sk-upstream-secret-4242"
HELLO = [{"role": "user", "content": "Where is my parcel number 1234?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TRIP = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "nights": {"type": "integer", "minimum": 1}},
    "required": ["city", "nights"],
}


def make(base_url: str, **options: Any) -> OpenAIProvider:
    """A provider named ``upstream`` with the test key."""
    return OpenAIProvider("upstream", OpenAIOptions(base_url=base_url, **options), api_key=KEY)


def run(provider: OpenAIProvider, use: Callable[[OpenAIProvider], Awaitable[T]]) -> T:
    """``use(provider)`` in a fresh event loop, closing the provider afterwards."""

    async def go() -> T:
        try:
            return await use(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go())


async def collect(
    provider: OpenAIProvider, request: ModelRequest, into: list[Chunk] | None = None
) -> list[Chunk]:
    """Every chunk of a stream (appended to ``into`` as they come, for errors raised midway)."""
    out = [] if into is None else into
    async for chunk in provider.stream(request):
        out.append(chunk)
    return out


def text_of(chunks: list[Chunk]) -> str:
    """The streamed content, joined."""
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def free_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def raw_server(*pieces: bytes) -> AsyncIterator[str]:
    """An HTTP server that answers every request with ``pieces`` (written one by one), then hangs up."""
    handlers: set[asyncio.Task[None]] = set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.005)  # separate network reads on the client side
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away first: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(answer(reader, writer))
        handlers.add(task)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers)


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def chunk_json(content: str | None = None, finish: str | None = None) -> bytes:
    """One chat.completion.chunk as JSON bytes."""
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "raw", "choices": [choice]}
    return json.dumps(chunk, ensure_ascii=False).encode()


async def with_raw(*pieces: Any) -> Any:
    """Serve ``pieces[:-1]`` raw and run ``pieces[-1](provider)`` against it."""
    *raw, use = pieces
    async with raw_server(*raw) as base_url:
        provider = make(base_url)
        try:
            return await use(provider)
        finally:
            await provider.aclose()


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
