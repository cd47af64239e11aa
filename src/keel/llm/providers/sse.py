"""Server-sent events decoding, fed with bytes as they arrive from the network.

Follows the WHATWG event-stream rules that matter for LLM streams: lines end in ``\\n``,
``\\r\\n`` or ``\\r`` (and may be split anywhere across reads), ``:`` starts a comment,
``data:`` lines accumulate until a blank line dispatches the event, ``event:`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Event:
    """One dispatched event: its type (``message`` unless named) and its data lines joined by ``\\n``."""

    data: str
    event: str = "message"


class SSEDecoder:
    """Turns a byte stream into ``Event``s; feed it chunks in order, then call ``close()``."""

    __slots__ = ("_buf", "_data", "_event", "_pending_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._pending_cr = False  # the last chunk ended in \r: a \n opening the next one belongs to it

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk``."""
        if not chunk:
            return []
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        buf = self._buf + chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()  # the unfinished last line (b"" when the chunk ended a line)
        out: list[Event] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                out.append(event)
        return out

    def close(self) -> list[Event]:
        """The events left when the stream ends (an unterminated last event is still dispatched)."""
        out: list[Event] = []
        if self._buf:
            event = self._line(self._buf)
            self._buf = b""
            if event is not None:
                out.append(event)
        event = self._line(b"")
        if event is not None:
            out.append(event)
        return out

    def _line(self, line: bytes) -> Event | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = Event("\n".join(self._data), self._event or "message")
            self._data = []
            self._event = ""
            return event
        if line[0] == 0x3A:  # b":" a comment, e.g. a keep-alive
            return None
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        return None  # id:, retry: and unknown fields do not concern an LLM client
