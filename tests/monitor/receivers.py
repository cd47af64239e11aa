"""A real local HTTP server that records what is POSTed to it: a webhook endpoint, an OTLP/HTTP collector."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


@dataclass(frozen=True)
class Received:
    """One POST as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Records every POST; answers with the next of ``statuses`` (then 200 forever) and ``reply`` as body."""

    def __init__(self, *, statuses: tuple[int, ...] = (), reply: bytes = b"{}") -> None:
        self.received: list[Received] = []
        self.answered: list[int] = []
        self._statuses = list(statuses)
        self._reply = reply
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                    receiver.answered.append(status)
                    if status == 200:
                        headers = {k.lower(): v for k, v in self.headers.items()}
                        receiver.received.append(Received(self.path, headers, body))
                self.send_response(status)
                self.send_header("content-length", str(len(receiver._reply)))
                self.end_headers()
                self.wfile.write(receiver._reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, found: Callable[[list[Received]], bool], timeout: float = 20) -> list[Received]:
        """Every POST so far, once ``found(posts)`` holds (AssertionError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                posts = list(self.received)
            if found(posts):
                return posts
            if time.monotonic() > deadline:
                raise AssertionError(f"not received within {timeout}s; got {len(posts)} posts")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
