"""The OpenAI-compatible provider's errors: each failure of the upstream becomes the right keel error."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from openai_helpers import (
    HELLO,
    KEY,
    SSE_HEAD,
    chunk_json,
    collect,
    free_port,
    make,
    run,
    text_of,
    with_raw,
)

from keel.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from keel.llm.providers.base import Chunk, ModelRequest
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429, 400])
def test_an_error_status_becomes_upstream_status_error(status: int) -> None:
    with FakeUpstream(error_rate=1.0, error_status=status) as fake:
        with pytest.raises(UpstreamStatusError) as caught:
            run(make(fake.base_url), lambda p: p.complete(ModelRequest(HELLO)))
        with pytest.raises(UpstreamStatusError) as streamed:
            run(make(fake.base_url), lambda p: collect(p, ModelRequest(HELLO)))
    for exc in (caught.value, streamed.value):
        assert exc.upstream_status == status
        assert (
            "injected error" in exc.message and "'upstream'" in exc.message and fake.base_url in exc.message
        )
        assert exc.body and json.loads(exc.body)["error"]["message"]
        assert exc.retryable is (status != 400)
    assert (caught.value.headers.get("retry-after") == "1") is (status == 429)


def test_a_stream_with_an_error_status_raises_before_any_chunk() -> None:
    chunks: list[Chunk] = []
    with FakeUpstream(error_rate=1.0, error_status=502) as fake, pytest.raises(UpstreamStatusError):
        run(make(fake.base_url), lambda p: collect(p, ModelRequest(HELLO), chunks))
    assert chunks == []


def test_a_hanging_upstream_is_an_upstream_timeout() -> None:
    with FakeUpstream(timeout_rate=1.0) as fake:
        with pytest.raises(UpstreamTimeout, match="upstream"):
            run(make(fake.base_url, timeout={"total": 0.3}), lambda p: p.complete(ModelRequest(HELLO)))
        with pytest.raises(UpstreamTimeout):
            run(make(fake.base_url, timeout=0.3), lambda p: collect(p, ModelRequest(HELLO)))
        # The time left before the call's deadline caps the configured 60 s.
        with pytest.raises(UpstreamTimeout):
            run(make(fake.base_url), lambda p: p.complete(ModelRequest(HELLO, timeout=0.3)))


def test_an_unreachable_upstream_is_an_upstream_connection_error() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(UpstreamConnectionError, match=re.escape("127.0.0.1")):
        run(make(base_url), lambda p: p.complete(ModelRequest(HELLO)))
    with pytest.raises(UpstreamConnectionError):
        run(make(base_url), lambda p: collect(p, ModelRequest(HELLO)))


def test_a_malformed_body_is_an_upstream_protocol_error() -> None:
    with FakeUpstream(malformed_rate=1.0) as fake:
        with pytest.raises(UpstreamProtocolError, match="not JSON") as caught:
            run(make(fake.base_url), lambda p: p.complete(ModelRequest(HELLO)))
        assert caught.value.body
        with pytest.raises(UpstreamProtocolError):
            run(make(fake.base_url), lambda p: collect(p, ModelRequest(HELLO)))


def test_an_error_event_mid_stream_raises_after_the_first_chunks() -> None:
    chunks: list[Chunk] = []
    with (
        FakeUpstream(stream_error_after=3) as fake,
        pytest.raises(UpstreamError, match="mid-stream") as caught,
    ):
        run(make(fake.base_url), lambda p: collect(p, ModelRequest(HELLO), chunks))
    assert type(caught.value) is UpstreamError
    assert text_of(chunks) == "You said: Where"  # the role chunk, then three content chunks


def test_a_connection_dropped_mid_stream_is_an_upstream_connection_error() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    event = b"data: " + chunk_json("Hello") + b"\n\n"
    frame = f"{len(event):x}\r\n".encode() + event + b"\r\n"
    chunks: list[Chunk] = []

    with pytest.raises(UpstreamConnectionError):
        asyncio.run(with_raw(head, frame, lambda p: collect(p, ModelRequest(HELLO), chunks)))
    assert text_of(chunks) == "Hello"


def test_sse_framing_variants_are_parsed() -> None:
    body = (
        b": keep-alive\r\n\r\n"
        + b"event: message\r\ndata: "
        + chunk_json("Caf\u00e9 ")
        + b"\r\n\r\n"
        + b"data: "
        + chunk_json("au lait", "stop")
        + b"\r\n\r\n"
        + b"data: [DONE]\r\n\r\n"
    )
    cut = body.index("\u00e9".encode()) + 1  # split inside a UTF-8 character and inside a line
    chunks = asyncio.run(
        with_raw(SSE_HEAD, body[:7], body[7:cut], body[cut:], lambda p: collect(p, ModelRequest(HELLO)))
    )
    assert text_of(chunks) == "Caf\u00e9 au lait" and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_stream_that_ends_early_is_an_error_but_one_that_finished_is_not() -> None:
    finished = SSE_HEAD + b"data: " + chunk_json("done", "stop") + b"\n\n"  # no [DONE], but complete
    chunks = asyncio.run(with_raw(finished, lambda p: collect(p, ModelRequest(HELLO))))
    assert text_of(chunks) == "done"
    cut_short = SSE_HEAD + b"data: " + chunk_json("half") + b"\n\n"
    with pytest.raises(UpstreamConnectionError, match="ended before"):
        asyncio.run(with_raw(cut_short, lambda p: collect(p, ModelRequest(HELLO))))


def test_an_answer_without_choices_is_an_upstream_protocol_error() -> None:
    body = b'{"error": {"message": "model overloaded"}}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with pytest.raises(UpstreamProtocolError, match=r"no choices.*model overloaded"):
        asyncio.run(with_raw(answer, lambda p: p.complete(ModelRequest(HELLO))))


def test_the_api_key_never_appears_in_an_error() -> None:
    body = f'{{"error": {{"message": "Incorrect API key provided: {KEY}"}}}}'.encode()
    answer = (
        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (
            len(body),
            body,
        )
    )
    with pytest.raises(UpstreamStatusError) as caught:
        asyncio.run(with_raw(answer, lambda p: p.complete(ModelRequest(HELLO))))
    exc = caught.value
    assert exc.upstream_status == 401 and "Incorrect API key provided" in exc.message
    assert KEY not in str(exc) and KEY not in (exc.body or "") and KEY not in repr(exc.headers)


def test_a_non_json_error_page_gets_a_short_message() -> None:
    body = b"<html><body>Bad Gateway</body></html>"
    answer = b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with pytest.raises(UpstreamStatusError, match="502: <html><body>Bad Gateway") as caught:
        asyncio.run(with_raw(answer, lambda p: p.complete(ModelRequest(HELLO))))
    assert caught.value.http_status == 502


def test_a_plain_json_answer_to_a_stream_request_is_an_upstream_protocol_error() -> None:
    body = b'{"error": {"message": "streaming is not supported"}}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with pytest.raises(UpstreamProtocolError, match=r"plain JSON \(streaming is not supported"):
        asyncio.run(with_raw(answer, lambda p: collect(p, ModelRequest(HELLO))))
