"""The fake upstream's fault knobs: one frozen, validated value, replaced whole when changed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Knobs:
    """How the fake upstream behaves; every field is also a CLI flag and a ``/_fake/config`` key."""

    latency_ms: float = 0.0  # added before answering (a stream: before its first chunk)
    chunk_delay_ms: float = 0.0  # between stream chunks
    error_rate: float = 0.0  # share of requests answered with ``error_status``
    error_status: int = 500
    timeout_rate: float = 0.0  # share of requests that hang until the client gives up
    hang_ms: float = 600_000.0  # the longest a hanging request waits before answering 504
    malformed_rate: float = 0.0  # share of requests answered with a body a client must reject
    seed: int = 0  # fault draws come from random.Random(seed): a run is reproducible
    stream_error_after: int | None = None  # streams send this many content chunks, then an error event
    no_usage: bool = False  # omit usage entirely (clients must count tokens themselves)
    embedding_dim: int = 384
    model: str = "fake-model"  # listed by /v1/models and answered when a request names none
    rogue_tool: str | None = None  # a request offering tools gets a call to this tool instead, offered or not

    def __post_init__(self) -> None:
        for name in ("error_rate", "timeout_rate", "malformed_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        total = self.error_rate + self.timeout_rate + self.malformed_rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"error_rate + timeout_rate + malformed_rate must be at most 1, got {total:g}")
        if not 400 <= self.error_status <= 599:
            raise ValueError(f"error_status must be a 4xx or 5xx status, got {self.error_status}")
        for name in ("latency_ms", "chunk_delay_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.hang_ms <= 0:
            raise ValueError(f"hang_ms must be > 0, got {self.hang_ms}")
        if self.stream_error_after is not None and self.stream_error_after < 0:
            raise ValueError(f"stream_error_after must be >= 0, got {self.stream_error_after}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")

    def replace(self, **changes: Any) -> Knobs:
        """A copy with ``changes`` applied; ValueError names an unknown knob or a bad value."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in fields:
                raise ValueError(f"unknown knob {key!r} (expected one of: {', '.join(fields)})")
            changes[key] = _coerce(key, value, fields[key].type)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The knobs as JSON-able data."""
        return dataclasses.asdict(self)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """``value`` checked against a knob's declared type (JSON numbers arrive as int or float)."""
    kind = str(annotation)
    if value is None and "None" in kind:
        return None
    ok: bool
    if kind.startswith("float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"{key}: expected {kind.replace(' | None', ' or null')}, got {value!r}")
    return value
