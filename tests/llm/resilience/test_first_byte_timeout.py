"""The OpenAI provider's ``first_byte`` timeout: an upstream that does not start answering is given up on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import ValidationError
from resilience_helpers import collect, text

from keel.errors import UpstreamTimeout
from keel.llm.providers.base import ModelRequest
from keel.llm.providers.openai import OpenAIOptions, OpenAIProvider
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
CHUNK = (
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"raw","choices":'
    b'[{"index":0,"delta":{"content":"late"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def provider(base_url: str, **timeout: float) -> OpenAIProvider:
    return OpenAIProvider("upstream", OpenAIOptions(base_url=base_url, timeout=timeout))


async def use(p: OpenAIProvider, stream: bool) -> str:
    try:
        request = ModelRequest([{"role": "user", "content": "hi"}], params={"max_tokens": 3})
        return text(await collect(p.stream(request))) if stream else (await p.complete(request)).text
    finally:
        await p.aclose()


@asynccontextmanager
async def silent_after_headers(silence: float) -> AsyncIterator[str]:
    """A server that sends a stream's headers at once, and its first event only after ``silence`` s."""
    handlers: set[asyncio.Task[None]] = set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(SSE_HEAD)
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(), silence)  # ends early when the client hangs up
            writer.write(CHUNK)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.ensure_future(answer(reader, writer)))

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_headers_that_do_not_come_within_first_byte_are_a_timeout(stream: bool) -> None:
    with FakeUpstream(latency_ms=3000) as fake, pytest.raises(UpstreamTimeout, match="timeout"):
        asyncio.run(use(provider(fake.base_url, first_byte=0.2, total=30), stream))


def test_a_stream_whose_first_event_does_not_come_within_first_byte_is_a_timeout() -> None:
    async def go() -> str:
        async with silent_after_headers(3.0) as base_url:
            return await use(provider(base_url, first_byte=0.2, total=30), stream=True)

    with pytest.raises(UpstreamTimeout):
        asyncio.run(go())


def test_a_stream_that_started_in_time_may_take_up_to_the_total() -> None:
    with FakeUpstream(chunk_delay_ms=150) as fake:
        answer = asyncio.run(use(provider(fake.base_url, first_byte=0.1, total=30), stream=True))
    assert answer.startswith("You said")  # several chunks, each later than first_byte after the one before


def test_first_byte_is_optional_and_must_be_positive() -> None:
    assert OpenAIOptions(base_url="http://127.0.0.1:9/v1").timeout.first_byte is None
    assert OpenAIOptions(base_url="http://127.0.0.1:9/v1", timeout={"first_byte": 2}).timeout.first_byte == 2
    bad: dict[str, Any] = {"first_byte": 0}
    with pytest.raises(ValidationError):
        OpenAIOptions(base_url="http://127.0.0.1:9/v1", timeout=bad)
