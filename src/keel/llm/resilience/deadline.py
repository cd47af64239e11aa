"""The call's deadline, shared by every retry and fallback.

A ``ModelRequest`` carries ``timeout``: the seconds left when it was made. Each layer turns it
into an absolute ``Deadline`` on entry and hands every later attempt a copy of the request with
the seconds left then, so no retry, backoff or fallback can run past it.
"""

from __future__ import annotations

import dataclasses
from time import monotonic

from keel.errors import UpstreamTimeout
from keel.llm.providers.base import ModelRequest

GRACE = 0.02
"""Seconds the backstop waits past the deadline, so a provider that honours ``request.timeout``
reports its own (more precise) timeout first; the backstop catches those that do not."""


class Deadline:
    """When a request's time runs out (``None``: never)."""

    __slots__ = ("at",)

    def __init__(self, timeout: float | None) -> None:
        self.at = None if timeout is None else monotonic() + timeout

    def left(self) -> float | None:
        """Seconds left (negative once passed), or None without a deadline."""
        return None if self.at is None else self.at - monotonic()

    def fits(self, seconds: float) -> bool:
        """Whether waiting ``seconds`` still leaves time for a call."""
        return self.at is None or monotonic() + seconds < self.at

    def narrow(self, request: ModelRequest, name: str) -> ModelRequest:
        """``request`` with the seconds left now; UpstreamTimeout when none are."""
        left = self.left()
        if left is None:
            return request
        if left <= 0:
            raise UpstreamTimeout(f"model {name!r}: the call's deadline passed before it could be tried")
        return dataclasses.replace(request, timeout=left)


def backstop(request: ModelRequest) -> float | None:
    """Seconds to give a call before cutting it off (``asyncio.timeout`` takes None as no limit)."""
    return None if request.timeout is None else max(request.timeout, 0.0) + GRACE


def deadline_passed(name: str, request: ModelRequest) -> UpstreamTimeout:
    """The error of a call the backstop cut off."""
    return UpstreamTimeout(f"model {name!r}: no answer before the call's deadline ({request.timeout:.3g} s)")
