"""Any OpenAI-compatible chat completions server: OpenAI, vLLM, Ollama, llama.cpp's server, a gateway.

A keel.yaml model entry carries the keys of ``OpenAIOptions`` next to name/provider/price::

    - name: upstream
      provider: openai
      base_url: http://127.0.0.1:9100/v1
      api_key_env: UPSTREAM_API_KEY      # the key is read from this variable, never from the file
      model: gpt-4o-mini                 # the upstream's model id (default: the name above)
      timeout: {connect: 5, first_byte: 10, total: 60}   # seconds; a number alone is the total

The request body passes through untouched (tools, response_format, seed, unknown fields);
the provider only fills in ``model`` and ``messages`` and, for streams, asks for usage. Errors
are translated here, at the boundary, into keel's ``Upstream*`` errors.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from yarl import URL

from keel.call import Completion, Message, Usage
from keel.errors import (
    ConfigError,
    InvalidRequest,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from keel.llm.providers.base import Chunk, ModelRequest, Provider
from keel.llm.providers.sse import Event, SSEDecoder
from keel.llm.tokens import count_messages, count_tokens

if TYPE_CHECKING:
    from keel.config import ModelConfig, Settings

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BODY_LIMIT = 2048  # bytes of an error body kept on the exception
_KEPT_HEADERS = frozenset({"retry-after", "retry-after-ms", "x-request-id", "request-id", "content-type"})
_TOP_LEVEL = frozenset({"choices", "model", "usage", "id", "created"})


class Timeouts(BaseModel):
    """Seconds to wait for a connection, for the first byte, and for the whole request (a stream included).

    ``first_byte`` bounds the wait for the response headers and, for a stream, its first event:
    a deployment that accepts connections but does not start answering is given up on early
    (and retried or failed over) while a long answer that is flowing may take up to ``total``.
    Most servers send a plain (non-streamed) answer's headers only once it is complete, so
    there it bounds the whole answer. Off when not given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect: float = Field(5.0, gt=0)
    first_byte: float | None = Field(None, gt=0)
    total: float = Field(60.0, gt=0)


class OpenAIOptions(BaseModel):
    """The openai keys of a keel.yaml model entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    api_key_env: str | None = None
    model: str | None = Field(None, min_length=1)
    timeout: Timeouts = Timeouts()
    headers: dict[str, str] = Field(default_factory=dict)
    max_connections: int = Field(1000, ge=1)
    encoding: Literal["o200k_base", "cl100k_base"] = "o200k_base"
    # How the feature's output schema is sent: "json_schema" (constrained decoding, OpenAI, vLLM,
    # llama.cpp's server, recent Ollama), "json_object" (JSON mode only) or "off" (the prompt only).
    structured_output: Literal["json_schema", "json_object", "off"] = "json_schema"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        try:
            url = URL(v)
        except (TypeError, ValueError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise ValueError("expected an http(s) URL such as http://127.0.0.1:9100/v1")
        return v.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("expected the name of an environment variable, such as OPENAI_API_KEY")
        return v

    @model_validator(mode="before")
    @classmethod
    def _timeout_number(cls, data: Any) -> Any:
        # ``timeout: 30`` is the common case: a total, with the default connect timeout.
        timeout = data.get("timeout") if isinstance(data, dict) else None
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            return {**data, "timeout": {"total": timeout}}
        return data


class OpenAIProvider(Provider):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    kind: ClassVar[str] = "openai"
    Options: ClassVar[type[BaseModel]] = OpenAIOptions

    def __init__(self, name: str, options: OpenAIOptions, *, api_key: str | None = None) -> None:
        super().__init__(name)
        self.options = options
        self.upstream_model = options.model or name
        self.url = options.base_url + "/chat/completions"
        self._url = URL(self.url)
        # Shown in error messages: never credentials, and no query (some hosts take keys there).
        self._shown = str(self._url.with_user(None).with_query(None))
        self._api_key = api_key or None
        headers = {"Content-Type": "application/json", "User-Agent": "keel"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(options.headers)
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=options.timeout.total, connect=options.timeout.connect)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._keeper: AsyncGenerator[None, None] | None = None

    @classmethod
    def from_config(cls, model: ModelConfig, settings: Settings) -> OpenAIProvider:
        """The provider for a keel.yaml entry; ConfigError when its API key variable is unset."""
        options = model.options
        if not isinstance(options, OpenAIOptions):
            raise ConfigError(f"{settings.source}: model {model.name!r}: options are not openai options")
        key = None
        if options.api_key_env is not None:
            key = os.environ.get(options.api_key_env)
            if not key:
                raise ConfigError(
                    f"{settings.source}: model {model.name!r}: the environment variable "
                    f"{options.api_key_env} (api_key_env) is not set or empty"
                )
        return cls(model.name, options, api_key=key)

    @classmethod
    def constrains_schema(cls, options: BaseModel) -> bool:
        """True unless this server is configured not to take ``response_format: json_schema``."""
        return isinstance(options, OpenAIOptions) and options.structured_output == "json_schema"

    # -- the connection pool -----------------------------------------------------------------

    async def start(self) -> None:
        """Open the connection pool now, in the serving loop."""
        await self._open(asyncio.get_running_loop())

    async def aclose(self) -> None:
        """Close the connection pool."""
        keeper, loop = self._keeper, self._loop
        self._session = self._loop = self._keeper = None
        if keeper is not None and loop is asyncio.get_running_loop():
            await keeper.aclose()  # its ``finally`` closes the session
        # A pool opened in another loop is closed by that loop when it shuts down (see _keep).

    async def _open(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        if self._session is not None and self._loop is loop and not self._session.closed:
            return self._session
        connector = aiohttp.TCPConnector(limit=self.options.max_connections, limit_per_host=0)
        session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, timeout=self._timeout, trust_env=False
        )
        keeper = _keep(session)
        self._session, self._loop, self._keeper = session, loop, keeper
        await keeper.__anext__()
        return session

    # -- requests ------------------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> Completion:
        """POST the request and return the upstream's answer."""
        payload = self._payload(request, stream=False)
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop() or session.closed:
            session = await self._open(asyncio.get_running_loop())
        try:
            async with await self._post(session, payload, self._timeout_for(request)) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except TimeoutError as exc:
            raise self._timed_out() from exc
        except aiohttp.ClientResponseError as exc:
            raise UpstreamProtocolError(self._say(f"the answer is not valid HTTP ({exc.message})")) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        if status >= 400:
            raise self._status_error(status, raw, headers)
        return self._completion(raw)

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """POST the request with ``stream: true`` and yield each chunk as the upstream sends it."""
        payload = self._payload(request, stream=True)
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop() or session.closed:
            session = await self._open(asyncio.get_running_loop())
        timeout = self._timeout_for(request)
        first_byte = self.options.timeout.first_byte
        started = asyncio.get_running_loop().time()
        try:
            resp = await self._post(session, payload, timeout)
        except TimeoutError as exc:
            raise self._timed_out() from exc
        except aiohttp.ClientResponseError as exc:
            raise UpstreamProtocolError(self._say(f"the answer is not valid HTTP ({exc.message})")) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        complete = False
        try:
            if resp.status >= 400:
                raise self._status_error(resp.status, await resp.read(), resp.headers)
            if resp.content_type == "application/json":  # a server that cannot stream says so in JSON
                raw = await resp.read()
                said = _error_message(_loads(raw))
                why = "asked to stream, the upstream answered plain JSON" + (f" ({said})" if said else "")
                raise UpstreamProtocolError(
                    self._say(why), upstream_status=resp.status, body=self._excerpt(raw)
                )
            done = False  # [DONE] arrived
            finished = False  # a choice reported its finish_reason
            events_in = _sse_events(resp)
            if first_byte is not None:
                events_in = await _first_events(events_in, started + first_byte)
            async for events in events_in:
                if done:
                    continue  # drain to the end so the connection goes back to the pool
                for event in events:
                    chunk = self._chunk(event)
                    if chunk is None:
                        done = True
                        break
                    choices = chunk.get("choices")
                    if choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
                        finished = True
                    yield chunk
            if not (done or finished):
                raise UpstreamConnectionError(self._say("the stream ended before the answer was complete"))
            complete = True
        except TimeoutError as exc:
            raise self._timed_out() from exc
        except (aiohttp.ClientError, OSError) as exc:  # dropped mid-stream
            raise self._unreachable(exc) from exc
        finally:
            # A stream left early (the caller went away) cannot be reused: close its connection.
            if complete:
                resp.release()
            else:
                resp.close()

    async def _post(
        self, session: aiohttp.ClientSession, payload: bytes, limits: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """POST ``payload``; the response headers must arrive within the ``first_byte`` timeout."""
        first_byte = self.options.timeout.first_byte
        if first_byte is None:
            return await session.post(self._url, data=payload, timeout=limits)
        async with asyncio.timeout(first_byte):
            return await session.post(self._url, data=payload, timeout=limits)

    def _payload(self, request: ModelRequest, *, stream: bool) -> bytes:
        params = request.params
        body: dict[str, Any] = {**params, "model": self.upstream_model, "messages": request.messages}
        mode = self.options.structured_output
        if request.schema is not None and "response_format" not in params and mode != "off":
            body["response_format"] = (
                {"type": "json_schema", "json_schema": {"name": "output", "schema": request.schema}}
                if mode == "json_schema"
                else {"type": "json_object"}
            )
        fmt = body.get("response_format")
        request.trace.constrained = isinstance(fmt, dict) and fmt.get("type") == "json_schema"
        if stream:
            body["stream"] = True
            options = params.get("stream_options")
            body["stream_options"] = (
                {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
            )
        else:
            # OpenAI refuses stream_options on a request that does not stream.
            body.pop("stream", None)
            body.pop("stream_options", None)
        try:
            return orjson.dumps(body)
        except orjson.JSONEncodeError as exc:
            raise InvalidRequest(
                f"the request for model {self.name!r} is not JSON-serializable: {exc}"
            ) from exc

    def _timeout_for(self, request: ModelRequest) -> aiohttp.ClientTimeout:
        left = request.timeout
        if left is None or left >= self.options.timeout.total:
            return self._timeout
        if left <= 0:
            raise self._timed_out()
        return aiohttp.ClientTimeout(total=left, connect=min(self.options.timeout.connect, left))

    # -- answers -------------------------------------------------------------------------------

    def _completion(self, raw: bytes) -> Completion:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                self._say(f"the answer is not JSON ({exc})"), upstream_status=200, body=self._excerpt(raw)
            ) from exc
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            said = _error_message(data)
            why = f"the answer has no choices{f' ({said})' if said else ''}"
            raise UpstreamProtocolError(self._say(why), upstream_status=200, body=self._excerpt(raw))
        ident, created = data.get("id"), data.get("created")
        return Completion(
            choices=choices,
            model=str(data.get("model") or self.upstream_model),
            usage=_usage(data.get("usage")),
            id=None if ident is None else str(ident),
            created=created if isinstance(created, int) else None,
            extra={k: v for k, v in data.items() if k not in _TOP_LEVEL},
        )

    def _chunk(self, event: Event) -> Chunk | None:
        """The chunk an event carries; None at ``[DONE]``; raises on an error event."""
        text = event.data
        if text == "[DONE]":
            return None
        try:
            chunk = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                self._say(f"a stream event is not JSON ({exc})"), body=self._scrub(text[:_BODY_LIMIT])
            ) from exc
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError(
                self._say("a stream event is not a JSON object"), body=text[:_BODY_LIMIT]
            )
        if event.event == "error" or ("error" in chunk and not chunk.get("choices")):
            said = _error_message(chunk) or "an error event"
            raise UpstreamError(self._say(f"the stream failed: {said}"), body=self._scrub(text[:_BODY_LIMIT]))
        return chunk

    # -- errors ------------------------------------------------------------------------------

    def _say(self, what: str) -> str:
        return self._scrub(f"model {self.name!r} ({self._shown}): {what}")

    def _scrub(self, text: str) -> str:
        key = self._api_key
        return text.replace(key, "***") if key and key in text else text

    def _excerpt(self, raw: bytes) -> str:
        return self._scrub(raw[:_BODY_LIMIT].decode("utf-8", "replace"))

    def _timed_out(self) -> UpstreamTimeout:
        return UpstreamTimeout(self._say("no answer within the timeout"))

    def _unreachable(self, exc: BaseException) -> UpstreamConnectionError:
        why = str(exc) or type(exc).__name__
        return UpstreamConnectionError(self._say(f"connection failed ({why})"))

    def _status_error(self, status: int, raw: bytes, headers: CIMultiDictProxy[str]) -> UpstreamStatusError:
        text = self._excerpt(raw)
        said = _error_message(_loads(raw)) or (text.strip().splitlines() or [""])[0][:200]
        kept = {
            k.lower(): v
            for k, v in headers.items()
            if k.lower() in _KEPT_HEADERS or k.lower().startswith("x-ratelimit-")
        }
        return UpstreamStatusError(
            self._say(f"upstream answered {status}" + (f": {said}" if said else "")),
            upstream_status=status,
            body=text,
            headers=kept,
        )

    # -- tokens --------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs under the configured encoding."""
        return count_tokens(text, self.options.encoding)

    def count_messages(self, messages: list[Message]) -> int:
        """Prompt tokens these messages cost under the configured encoding."""
        return count_messages(messages, self.options.encoding)


async def _keep(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Hold ``session`` open until closed, or until its event loop shuts down.

    A library user may call the provider under several ``asyncio.run``s, each a new loop that a
    pooled session cannot outlive. An async generator started in a loop is finalized by that
    loop's ``shutdown_asyncgens()`` (which ``asyncio.run`` calls), so this one closes the session
    cleanly when its loop ends, and the provider opens a fresh one in the next loop.
    """
    try:
        yield
    finally:
        await session.close()


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        input_tokens=prompt if isinstance(prompt, int) else 0,
        output_tokens=completion if isinstance(completion, int) else 0,
        cached_input_tokens=cached if isinstance(cached, int) else 0,
    )


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _error_message(data: Any) -> str | None:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}`` and variants)."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        err = err.get("message") or err.get("msg")
    if isinstance(err, str) and err:
        return err[:500]
    for key in ("message", "detail"):
        if isinstance(data.get(key), str) and data[key]:
            return str(data[key])[:500]
    return None


async def _first_events(batches: AsyncIterator[list[Event]], when: float) -> AsyncIterator[list[Event]]:
    """``batches``, once a first event arrived before ``when`` (loop time); TimeoutError if not."""
    head: list[list[Event]] = []
    async with asyncio.timeout_at(when):
        async for batch in batches:
            head.append(batch)
            if batch:
                break
    return _chain(head, batches)


async def _chain(head: list[list[Event]], rest: AsyncIterator[list[Event]]) -> AsyncIterator[list[Event]]:
    for batch in head:
        yield batch
    async for batch in rest:
        yield batch


async def _sse_events(resp: aiohttp.ClientResponse) -> AsyncIterator[list[Event]]:
    """SSE events as the body arrives, then whatever the decoder still held at its end."""
    decoder = SSEDecoder()
    async for data in resp.content.iter_any():
        yield decoder.feed(data)
    yield decoder.close()
