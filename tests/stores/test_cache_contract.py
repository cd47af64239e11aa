"""The Cache contract: bytes by key, gone after their time to live."""

from __future__ import annotations

import asyncio

from state_helpers import run_with

from keel.stores.base import StateBackend


def test_a_value_is_returned_as_stored_until_deleted(url: str) -> None:
    async def go(s: StateBackend) -> None:
        assert await s.cache.get("k") is None
        value = bytes(range(256)) * 4
        await s.cache.set("k", value, 60)
        assert await s.cache.get("k") == value
        await s.cache.set("k", b"newer", 60)
        assert await s.cache.get("k") == b"newer"
        await s.cache.delete("k")
        await s.cache.delete("never-set")
        assert await s.cache.get("k") is None

    run_with(url, go)


def test_a_value_expires_after_its_ttl(url: str) -> None:
    async def go(s: StateBackend) -> None:
        await s.cache.set("short", b"x", 0.1)
        await s.cache.set("long", b"y", 60)
        await asyncio.sleep(0.25)
        assert await s.cache.get("short") is None
        assert await s.cache.get("long") == b"y"

    run_with(url, go)
