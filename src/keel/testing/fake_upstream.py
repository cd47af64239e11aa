"""A real OpenAI-compatible server with fault injection, for tests and benchmarks.

In a test, start it in a background thread on a free port::

    with FakeUpstream(error_rate=0.2, seed=7) as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="unused")
        ...
        assert fake.stats()["outcomes"]["error"] > 0

From a shell: ``keel fake-upstream --port 9100 --latency-ms 50``.

Endpoints: ``POST /v1/chat/completions`` (plain and streaming, tools, ``response_format``,
``n``, ``stop``, ``max_tokens``), ``POST /v1/embeddings``, ``GET /v1/models``, ``GET /healthz``.
Answers are deterministic: the text echoes the last user message, JSON output follows the
requested schema, tool calls carry arguments generated from the tool's parameters schema (with
the ``rogue_tool`` knob, requests that offer tools get a call to that tool instead, as a model
that strays from its tools would).

Control: ``GET /_fake/stats`` (counts per outcome and path, in flight, the last request with its
headers and body), ``POST /_fake/reset``, ``GET``/``POST /_fake/config`` (read or change knobs).

The knobs (see ``Knobs``) are constructor arguments, CLI flags and keys of ``/_fake/config``.
Request headers force one request's behaviour: ``X-Fake-Fault: error|timeout|malformed|none``,
``X-Fake-Malformed: fenced|trailing_comma|truncated|wrong_type|missing_required`` (how JSON
content is broken) and ``X-Fake-Stream-Error-After: N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any, TypeVar

import uvicorn
import uvloop

from keel.testing.fake_app import FakeApp
from keel.testing.fake_knobs import Knobs

T = TypeVar("T")
_START_TIMEOUT = 30.0


class _Server(uvicorn.Server):
    """uvicorn, told to end the app's hanging requests first when asked to stop."""

    def __init__(self, app: FakeApp, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.fake = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until asked to stop (remembering the loop, for stopping from another thread)."""
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def stop(self) -> None:
        """Ask the server to stop; callable from any thread or a signal handler."""
        if self.should_exit:
            self.force_exit = True  # asked twice: stop waiting for open connections
        self.should_exit = True
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self.fake.close)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after shutting down, which ends the process with the
        # signal's status; a fake that was asked to stop has stopped cleanly, so exit 0 instead.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A signal arrived: stop."""
        self.stop()


def _config(app: FakeApp, *, quiet: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        interface="asgi3",
        http="httptools",
        ws="none",
        lifespan="off",
        access_log=False,
        log_level="warning",
        # In a library user's process, leave their logging configuration alone.
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=5,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one); OSError when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def run(
    host: str = "127.0.0.1",
    port: int = 9100,
    *,
    ready: Callable[[str], None] | None = None,
    **knobs: Any,
) -> None:
    """Serve in this thread until SIGINT or SIGTERM; ``ready(base_url)`` is called once listening."""
    app = FakeApp(Knobs().replace(**knobs))
    sock = bind(host, port)
    try:
        server = _Server(app, _config(app, quiet=False))
        if ready is not None:
            shown = f"[{host}]" if ":" in host else host
            ready(f"http://{shown}:{sock.getsockname()[1]}/v1")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(server.serve(sockets=[sock]))
    finally:
        sock.close()


class FakeUpstream:
    """The fake upstream on 127.0.0.1 in a background thread; a context manager (sync and async)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **knobs: Any) -> None:
        self.app = FakeApp(Knobs().replace(**knobs))
        self.host = host
        self._requested_port = port
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:38211``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:38211/v1``."""
        return self.url + "/v1"

    @property
    def knobs(self) -> Knobs:
        """The knobs in effect now."""
        return self.app.knobs

    def start(self) -> FakeUpstream:
        """Start serving (returns when the server accepts requests)."""
        if self._thread is not None:
            raise RuntimeError("this FakeUpstream is already running")
        sock = bind(self.host, self._requested_port)
        self.port = sock.getsockname()[1]
        self.app.open()
        server = _Server(self.app, _config(self.app, quiet=True))
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name=f"keel-fake-upstream-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)  # uvicorn offers no startup callback; it starts in milliseconds
        if not server.started:
            server.stop()
            self._thread.join()
            self._server = self._thread = None
            raise RuntimeError(f"the fake upstream did not start: {self._failure!r}")
        return self

    def _serve(self, server: _Server, sock: socket.socket) -> None:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(server.serve(sockets=[sock]))
        except (OSError, RuntimeError, SystemExit) as exc:  # uvicorn exits on a failed startup
            self._failure = exc
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving: hanging requests get a 503, then the thread ends."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stop()
        thread.join()
        self._server = self._thread = None

    def stats(self) -> dict[str, Any]:
        """Requests total, per outcome and per path, in flight now and at most, and the last request."""
        return self._on_loop(self.app.stats.snapshot)

    def configure(self, **knobs: Any) -> Knobs:
        """Change knobs while running (ValueError on a bad one)."""
        return self._on_loop(lambda: self.app.configure(**knobs))

    def reset(self) -> None:
        """Zero the stats and restart the fault draws from the seed."""
        self._on_loop(self.app.reset)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (the app's state is only ever touched there)."""
        server = self._server
        loop = server.loop if server is not None else None
        if loop is None or loop.is_closed():
            return fn()  # not running: nothing else touches the app

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeUpstream:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
