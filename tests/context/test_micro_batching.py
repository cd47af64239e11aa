"""Micro-batching: concurrent embed calls are merged into few model calls, each caller gets its rows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import numpy as np
import pytest

from keel.context.embed import HashEmbedder, Matrix, MicroBatcher
from keel.errors import UpstreamTimeout

pytestmark = pytest.mark.unit

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def go() -> T:
        return await coro

    return asyncio.run(go())


class Model:
    """A fake model: records each call's texts; ``gate`` holds a call until set (when given)."""

    def __init__(self, *, hold: bool = False, error: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()  # set once a call has begun
        if not hold:
            self.gate.set()
        self.error = error
        self.hash = HashEmbedder(dim=8)

    async def __call__(self, texts: list[str]) -> Matrix:
        self.calls.append(texts)
        self.entered.set()
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return await self.hash.embed(texts)


def test_concurrent_calls_are_merged_into_one_model_call() -> None:
    model = Model()
    batcher = MicroBatcher(model, batch_size=64, wait_ms=5)

    async def go() -> None:
        texts = [[f"question {i}"] for i in range(10)] + [["two", "texts"]]
        rows = await asyncio.gather(*(batcher.embed(t) for t in texts))
        assert len(model.calls) == 1 and len(model.calls[0]) == 12 and batcher.batches == 1
        for t, r in zip(texts, rows, strict=True):  # every caller gets exactly its own rows
            assert np.array_equal(r, await model.hash.embed(t))

    run(go())


def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    model = Model()
    batcher = MicroBatcher(model, batch_size=4, wait_ms=60_000)  # only a full batch ends the wait

    async def go() -> None:
        rows = await asyncio.gather(*(batcher.embed([f"q{i}"]) for i in range(8)))
        assert [len(c) for c in model.calls] == [4, 4] and len(rows) == 8

    run(go())


def test_calls_made_while_the_model_is_busy_go_together_next() -> None:
    model = Model(hold=True)
    batcher = MicroBatcher(model, batch_size=32, wait_ms=0)

    async def go() -> None:
        first = asyncio.ensure_future(batcher.embed(["first"]))
        await model.entered.wait()
        later = [asyncio.ensure_future(batcher.embed([f"later {i}"])) for i in range(5)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(model.calls) == 1  # one model call at a time (concurrency 1)
        model.gate.set()
        await asyncio.gather(first, *later)
        assert [len(c) for c in model.calls] == [1, 5]

    run(go())


def test_a_cancelled_caller_leaves_the_others_their_rows() -> None:
    model = Model(hold=True)
    batcher = MicroBatcher(model, batch_size=32, wait_ms=0)

    async def go() -> None:
        busy = asyncio.ensure_future(batcher.embed(["busy"]))
        await model.entered.wait()
        gone = asyncio.ensure_future(batcher.embed(["gone"]))
        kept = asyncio.ensure_future(batcher.embed(["kept"]))
        await asyncio.sleep(0)
        gone.cancel()
        model.gate.set()
        rows = await kept
        await busy
        assert np.array_equal(rows, await model.hash.embed(["kept"]))
        assert model.calls == [["busy"], ["kept"]]  # the cancelled caller's text was never embedded

    run(go())


def test_a_failed_model_call_fails_every_caller_in_it() -> None:
    model = Model(error=UpstreamTimeout("slow embeddings"))
    batcher = MicroBatcher(model, batch_size=32, wait_ms=5)

    async def go() -> None:
        results = await asyncio.gather(*(batcher.embed([f"q{i}"]) for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, UpstreamTimeout) for r in results) and len(model.calls) == 1
        model.error = None
        assert (await batcher.embed(["again"])).shape == (1, 8)

    run(go())


def test_several_model_calls_may_run_at_once_when_allowed() -> None:
    model = Model(hold=True)
    batcher = MicroBatcher(model, batch_size=2, wait_ms=0, concurrency=3)

    async def go() -> None:
        tasks = [asyncio.ensure_future(batcher.embed([f"q{i}"])) for i in range(8)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(model.calls) == 3  # three in flight, the rest waiting for a free slot
        model.gate.set()
        await asyncio.gather(*tasks)
        assert sum(len(c) for c in model.calls) == 8 and all(len(c) <= 2 for c in model.calls)

    run(go())


def test_a_batcher_works_again_in_a_new_event_loop() -> None:
    model = Model()
    batcher = MicroBatcher(model, batch_size=8, wait_ms=1)
    assert run(batcher.embed(["one"])).shape == (1, 8)
    assert run(batcher.embed(["two"])).shape == (1, 8)
