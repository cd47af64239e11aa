"""The exact cache: a repeated request is answered from the store, within its scope and time to live."""

from __future__ import annotations

import pytest
from cache_helpers import BreaksMidway, Clock, Counting, collect, redis_url, req, run, text

from keel.errors import KeelError, UpstreamStatusError, UpstreamTimeout
from keel.llm.cache import ExactCacheProvider
from keel.llm.providers.base import ModelRequest
from keel.llm.stream import StreamAccumulator
from keel.settings import ExactCacheConfig
from keel.stores import open_state
from keel.stores.base import Cache
from keel.stores.memory import MemoryCache
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit


def cached(
    inner: Counting | ScriptedProvider, store: Cache | None = None, **config: object
) -> ExactCacheProvider:
    return ExactCacheProvider(inner, store or MemoryCache(), ExactCacheConfig(**config))  # type: ignore[arg-type]


def test_a_repeated_request_is_answered_from_the_cache_with_what_it_cost() -> None:
    inner = Counting()
    cache = cached(inner)

    async def go() -> None:
        first_req, again_req = req(), req()
        first = await cache.complete(first_req)
        again = await cache.complete(again_req)
        assert inner.n == 1
        assert again.text == first.text == "answer to: Where is my parcel? #1"
        assert first_req.trace.cache is None and again_req.trace.cache == "exact"
        assert again_req.trace.cached_usage == first.usage and first.usage is not None
        assert again_req.trace.model == "model"
        assert again.id != first.id  # a fresh completion, not the stored object
        assert (cache.hits, cache.misses) == (1, 1)

    run(go())


def test_an_answer_expires_after_its_ttl() -> None:
    clock, inner = Clock(), Counting()
    cache = cached(inner, MemoryCache(clock), ttl=60)

    async def go() -> list[str]:
        out = [(await cache.complete(req())).text]
        clock.advance(59)
        out.append((await cache.complete(req())).text)
        clock.advance(2)
        out.append((await cache.complete(req())).text)
        return out

    assert run(go()) == ["answer to: Where is my parcel? #1"] * 2 + ["answer to: Where is my parcel? #2"]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(req(feature="billing"), id="feature"),
        pytest.param(req(prompt_version="v2"), id="prompt-version"),
        pytest.param(req(max_tokens=50), id="max-tokens"),
        pytest.param(req(tools=[{"type": "function", "function": {"name": "track"}}]), id="tools"),
        pytest.param(req(history=[{"role": "system", "content": "Be brief."}]), id="messages"),
        pytest.param(req("Where is my parcel"), id="text"),
    ],
)
def test_answers_never_cross_what_changes_the_answer(other: ModelRequest) -> None:
    inner = Counting()
    cache = cached(inner)

    async def go() -> None:
        await cache.complete(req())
        await cache.complete(other)
        assert inner.n == 2 and other.trace.cache is None

    run(go())


def test_answers_never_cross_models_sharing_a_store() -> None:
    store = MemoryCache()
    small, large = Counting("small"), Counting("large")

    async def go() -> None:
        await cached(small, store).complete(req())
        r = req()
        answer = await cached(large, store).complete(r)
        assert large.n == 1 and r.trace.cache is None and answer.model == "large"

    run(go())


def test_parameters_that_cannot_change_the_answer_are_ignored() -> None:
    inner = Counting()
    cache = cached(inner)

    async def go() -> None:
        await cache.complete(req(temperature=0))
        same = req(temperature=0.0, user="u-17", metadata={"ticket": 4}, stream_options=None, top_p=None)
        await cache.complete(same)
        assert inner.n == 1 and same.trace.cache == "exact"

    run(go())


def test_requests_that_are_not_deterministic_bypass_the_cache_by_default() -> None:
    inner = Counting()
    cache = cached(inner)

    async def go() -> None:
        for _ in range(2):
            r = req(temperature=0.7)
            await cache.complete(r)
            assert r.trace.cache is None
        assert inner.n == 2
        await cache.complete(req(temperature=0.7, seed=42))
        seeded = req(temperature=0.7, seed=42)
        await cache.complete(seeded)
        assert inner.n == 3 and seeded.trace.cache == "exact"

    run(go())


def test_deterministic_only_false_caches_every_request() -> None:
    inner = Counting()
    cache = cached(inner, deterministic_only=False)

    async def go() -> None:
        await cache.complete(req(temperature=0.7))
        r = req(temperature=0.7)
        await cache.complete(r)
        assert inner.n == 1 and r.trace.cache == "exact"

    run(go())


def test_a_streamed_hit_replays_the_answer_as_chunks() -> None:
    inner = Counting()
    cache = cached(inner)

    async def go() -> None:
        original = await cache.complete(req("Tell me " + "a long story " * 30))
        r = req("Tell me " + "a long story " * 30)
        chunks = await collect(cache.stream(r))
        assert inner.n == 1 and r.trace.cache == "exact"
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert text(chunks) == original.text
        assert sum(1 for c in chunks if (c.get("choices") or [{}])[0].get("delta", {}).get("content")) > 1
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == original.usage.to_openai()  # type: ignore[union-attr]
        assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)

    run(go())


def test_a_streamed_hit_replays_tool_calls() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "track", "arguments": '{"id": "A17"}'}}
    inner = ScriptedProvider("model", [{"role": "assistant", "content": None, "tool_calls": [call]}])
    cache = cached(inner)

    async def go() -> None:
        original = await cache.complete(req())
        acc = StreamAccumulator()
        for chunk in await collect(cache.stream(req())):
            acc.add(chunk)
        replayed = acc.completion()
        assert replayed.message["tool_calls"] == original.message["tool_calls"]
        assert replayed.finish_reason == "tool_calls" and len(inner.requests) == 1

    run(go())


def test_a_streamed_miss_is_stored_once_the_stream_ends() -> None:
    inner = Counting()
    cache = cached(inner)

    async def go() -> None:
        streamed = text(await collect(cache.stream(req())))
        r = req()
        again = await cache.complete(r)
        assert inner.n == 1 and r.trace.cache == "exact" and again.text == streamed

    run(go())


def test_a_stream_that_breaks_or_is_left_early_is_not_stored() -> None:
    inner = BreaksMidway(UpstreamTimeout("stalled"))
    cache = cached(inner)

    async def go() -> None:
        with pytest.raises(UpstreamTimeout):
            await collect(cache.stream(req()))
        stream = cache.stream(req())
        await anext(stream)
        await stream.aclose()  # the caller went away after one chunk
        r = req()
        await cache.complete(r)
        assert r.trace.cache is None and inner.n == 3

    run(go())


def test_errors_are_never_cached() -> None:
    inner = ScriptedProvider("model", [UpstreamStatusError("busy", upstream_status=503), "fine"])
    cache = cached(inner)

    async def go() -> None:
        with pytest.raises(UpstreamStatusError):
            await cache.complete(req())
        assert (await cache.complete(req())).text == "fine"
        assert len(inner.requests) == 2

    run(go())


class Down(Cache):
    """A store that cannot be reached."""

    async def get(self, key: str) -> bytes | None:
        raise KeelError("state backend unavailable", code="state_unavailable")

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        raise KeelError("state backend unavailable", code="state_unavailable")

    async def delete(self, key: str) -> None:
        raise KeelError("state backend unavailable", code="state_unavailable")


def test_an_unreachable_store_never_fails_a_call() -> None:
    inner = Counting()
    cache = cached(inner, Down())

    async def go() -> None:
        assert (await cache.complete(req())).text.startswith("answer to")
        assert text(await collect(cache.stream(req()))).startswith("answer to")
        assert inner.n == 2

    run(go())


@pytest.mark.integration
def test_replicas_sharing_redis_share_answers() -> None:
    with redis_url() as url:

        async def go() -> None:
            one, two = open_state(url), open_state(url)
            try:
                first, second = Counting(), Counting()
                await cached(first, one.cache, ttl=30).complete(req())
                r = req()
                answer = await cached(second, two.cache, ttl=30).complete(r)
                assert second.n == 0 and r.trace.cache == "exact"
                assert answer.text == "answer to: Where is my parcel? #1"
            finally:
                await one.aclose()
                await two.aclose()

        run(go())
