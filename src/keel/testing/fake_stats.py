"""What the fake upstream counted: requests per path and outcome, in flight, and the last request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

OUTCOMES = ("ok", "error", "timeout", "malformed")


@dataclass(slots=True)
class Stats:
    """Counts of what the fake answered, readable through ``/_fake/stats``."""

    requests: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    paths: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    # The last request as received (decoded only when asked for, to keep the hot path cheap).
    last: tuple[str, str, list[tuple[bytes, bytes]], bytes] | None = None

    def snapshot(self) -> dict[str, Any]:
        """The stats as JSON-able data."""
        last = None
        if self.last is not None:
            method, path, headers, raw = self.last
            try:
                body: Any = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            last = {
                "method": method,
                "path": path,
                "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in headers},
                "body": body,
            }
        return {
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "paths": dict(self.paths),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "last_request": last,
        }
