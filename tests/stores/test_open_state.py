"""``state:`` URLs open the backend they name; nothing else is accepted."""

from __future__ import annotations

import asyncio

import pytest

from keel.errors import ConfigError
from keel.stores import MemoryState, open_state
from keel.stores.redis import RedisState, split_url

pytestmark = pytest.mark.unit


def test_memory_is_the_in_process_backend() -> None:
    assert isinstance(open_state("memory"), MemoryState)


def test_a_redis_url_opens_redis_under_the_keel_namespace_plus_its_prefix() -> None:
    async def go() -> None:
        state = open_state("redis://127.0.0.1:6379/2?prefix=blue&max_connections=8")
        try:
            assert isinstance(state, RedisState) and state.namespace == "keel:blue:"
            kwargs = state.client.connection_pool.connection_kwargs
            assert kwargs["db"] == 2 and "prefix" not in kwargs
            assert state.client.connection_pool.max_connections == 8
        finally:
            await state.aclose()

    asyncio.run(go())  # no connection is made until the first operation


def test_split_url_keeps_other_options() -> None:
    assert split_url("redis://h:1/0") == ("redis://h:1/0", "keel:")
    assert split_url("redis://h:1/0?prefix=a&db=3") == ("redis://h:1/0?db=3", "keel:a:")


@pytest.mark.parametrize("url", ["postgres://u:secret@h/db", "sqlite:///x", ""])
def test_other_urls_are_refused_without_echoing_credentials(url: str) -> None:
    with pytest.raises(ConfigError, match="expected 'memory' or a Redis URL") as info:
        open_state(url)
    assert "secret" not in str(info.value)
