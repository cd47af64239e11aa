"""Through a real Pipeline: a cache hit is answered, recorded in the ledger as a hit, and its cost saved."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from keel import Call, Pipeline, Settings
from keel.context.embed import HashEmbedder
from keel.llm.cache import ExactCacheProvider, SemanticCacheProvider
from keel.llm.providers.base import Provider
from keel.settings import SemanticCacheConfig
from keel.stores.memory import MemoryState
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

CONFIG = """\
models:
  - name: m
    provider: scripted
    price: {input_per_mtok: 1.0, output_per_mtok: 2.0}
features:
  - name: support
    model: m
storage: {path: keel.db}
"""

MakeSettings = Callable[..., Settings]


def ask(text: str) -> Call:
    return Call(feature="support", messages=[{"role": "user", "content": text}], params={"temperature": 0})


def calls(settings: Settings, provider: Provider, *texts: str, stream: bool = False) -> list[Any]:
    async def go() -> list[Any]:
        out: list[Any] = []
        async with Pipeline(settings, providers={"m": provider}) as p:
            for text in texts:
                if stream:
                    out.append([c async for c in await p.open_stream(ask(text))])
                else:
                    out.append(await p.run(ask(text)))
        return out

    return asyncio.run(go())


def rows(settings: Settings) -> list[sqlite3.Row]:
    with sqlite3.connect(settings.db_path) as db:
        db.row_factory = sqlite3.Row
        found = db.execute("select * from calls order by ts").fetchall()
    db.close()
    return found


def test_an_exact_hit_is_recorded_as_a_hit_that_saved_what_the_answer_cost(
    make_settings: MakeSettings,
) -> None:
    s = make_settings(CONFIG)
    model = ScriptedProvider("m", ["Your parcel arrives on Monday."])
    first, again = calls(
        s, ExactCacheProvider(model, MemoryState().cache), "Where is my parcel?", "Where is my parcel?"
    )

    assert again.text == first.text and len(model.requests) == 1
    miss, hit = rows(s)
    assert miss["cache"] is None and miss["cost_usd"] > 0 and miss["saved_usd"] == 0
    assert hit["cache"] == "exact" and hit["cost_usd"] == 0
    assert hit["saved_usd"] == pytest.approx(miss["cost_usd"])
    assert hit["model"] == "m"


def test_a_streamed_exact_hit_is_recorded_too(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    model = ScriptedProvider("m", ["Your parcel arrives on Monday."])
    first, again = calls(s, ExactCacheProvider(model, MemoryState().cache), "Hi", "Hi", stream=True)

    def text(chunks: list[dict[str, Any]]) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))

    assert text(again) == text(first) == "Your parcel arrives on Monday." and len(model.requests) == 1
    assert [r["cache"] for r in rows(s)] == [None, "exact"]


def test_a_semantic_hit_is_recorded_as_semantic(make_settings: MakeSettings) -> None:
    s = make_settings(CONFIG)
    state, model = MemoryState(), ScriptedProvider("m", ["Monday."])
    cache = SemanticCacheProvider(
        model, state.cache, state.vectors, HashEmbedder(), SemanticCacheConfig(threshold=0.85)
    )
    calls(s, cache, "Where is my parcel?", "where is my parcel now")

    assert len(model.requests) == 1
    miss, hit = rows(s)
    assert hit["cache"] == "semantic" and hit["cost_usd"] == 0
    assert hit["saved_usd"] == pytest.approx(miss["cost_usd"])
