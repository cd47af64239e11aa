"""Held tool calls in shared state: single-use across replicas, bound to the key and feature of the call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.stores.state_helpers import state_url

from keel import Call
from keel.stores import open_state
from keel.validate.tool_confirm import Confirmations

BACKENDS = [
    pytest.param("memory", marks=pytest.mark.unit),
    pytest.param("redis", marks=pytest.mark.integration),
]
HELD = [{"id": "call_1", "type": "function", "function": {"name": "send_email", "arguments": '{"to": "a"}'}}]


def _call(key: str | None = "alice", feature: str = "agent") -> Call:
    return Call(feature=feature, messages=[{"role": "user", "content": "hi"}], key_id=key)


@pytest.mark.parametrize("kind", BACKENDS)
def test_of_many_replicas_claiming_one_confirmation_exactly_one_gets_the_calls(kind: str) -> None:
    with state_url(kind) as url:

        async def go() -> tuple[list[Any], list[Any]]:
            if url == "memory":
                shared = open_state(url)
                replicas = [Confirmations(shared) for _ in range(8)]
            else:  # a connection of its own per replica, as separate gateway processes would have
                replicas = [Confirmations(open_state(url)) for _ in range(8)]
            try:
                pending = await replicas[0].hold(_call(), HELD)
                wrong = [
                    await replicas[1].claim(pending["id"], _call(key="mallory")),
                    await replicas[1].claim(pending["id"], _call(feature="other")),
                    await replicas[1].claim("tcf_made_up", _call()),
                ]
                claims = await asyncio.gather(*(r.claim(pending["id"], _call()) for r in replicas))
                return wrong, list(claims)
            finally:
                for r in {id(r.state): r for r in replicas}.values():
                    await r.state.aclose()

        wrong, claims = asyncio.run(go())
    assert wrong == [None, None, None]  # a failed claim by another key does not use the confirmation up
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0][0] == HELD
