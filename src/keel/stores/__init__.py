"""Shared state (cache, rate limits, budgets, breakers): in-process by default, Redis to scale out."""

from __future__ import annotations

from keel.errors import ConfigError
from keel.stores.base import StateBackend
from keel.stores.memory import MemoryState

__all__ = ["MemoryState", "StateBackend", "open_state"]


def open_state(url: str) -> StateBackend:
    """The backend a ``state:`` URL names: ``memory``, or ``redis://``/``rediss://``/``unix://`` Redis.

    Redis connects lazily, on the event loop of its first operation; call ``aclose()`` on that loop.
    """
    if url == "memory":
        return MemoryState()
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            # Imported here: the redis client is needed only by deployments that scale out.
            from keel.stores.redis import RedisState
        except ImportError as exc:
            raise ConfigError(f"state: a Redis URL needs the redis package ({exc})") from None
        return RedisState(url)
    shown = url.split("@")[-1]  # never a password
    raise ConfigError(
        f"state: expected 'memory' or a Redis URL such as redis://127.0.0.1:6379/0, got {shown!r}"
    )
