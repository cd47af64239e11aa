"""The semantic cache: a paraphrase of the last question, with the same history, gets the stored answer."""

from __future__ import annotations

from typing import Any

import pytest
from cache_helpers import Clock, Counting, collect, redis_url, req, run, text

from keel.context.embed import Embedder, HashEmbedder, Matrix
from keel.errors import UpstreamConnectionError
from keel.llm.cache import SemanticCacheProvider
from keel.llm.providers.base import ModelRequest
from keel.settings import SemanticCacheConfig
from keel.stores import open_state
from keel.stores.base import StateBackend
from keel.stores.memory import MemoryState

pytestmark = pytest.mark.unit

HISTORY = [
    {"role": "system", "content": "You answer questions about orders."},
    {"role": "user", "content": "I ordered a lamp last week."},
    {"role": "assistant", "content": "Thanks, I see the order."},
]


def semantic(
    inner: Counting,
    state: StateBackend | None = None,
    embedder: Embedder | None = None,
    *,
    guard: bool = True,
    **config: Any,
) -> SemanticCacheProvider:
    config.setdefault("threshold", 0.85)
    s = state or MemoryState()
    return SemanticCacheProvider(
        inner, s.cache, s.vectors, embedder or HashEmbedder(), SemanticCacheConfig(**config), guard=guard
    )


def test_a_paraphrase_is_answered_from_the_cache() -> None:
    inner = Counting()
    cache = semantic(inner)

    async def go() -> None:
        first = await cache.complete(req("Where is my parcel?"))
        r = req("where is my parcel now")  # 4 of 5 words shared: cosine 0.89 with the hashing embedder
        again = await cache.complete(r)
        assert inner.n == 1 and again.text == first.text
        assert r.trace.cache == "semantic" and r.trace.cached_usage == first.usage
        assert r.trace.model == "model"

    run(go())


def test_a_different_question_is_asked_upstream() -> None:
    inner = Counting()
    cache = semantic(inner)

    async def go() -> None:
        await cache.complete(req("Where is my parcel?"))
        r = req("How do I change my delivery address?")
        answer = await cache.complete(r)
        assert inner.n == 2 and r.trace.cache is None and "delivery address" in answer.text

    run(go())


def test_the_same_question_after_a_different_history_is_never_a_hit() -> None:
    inner = Counting()
    cache = semantic(inner)
    other = [*HISTORY[:1], {"role": "user", "content": "I ordered a sofa last week."}, HISTORY[2]]

    async def go() -> None:
        await cache.complete(req("When will it arrive?", history=HISTORY))
        different = req("When will it arrive?", history=other)
        await cache.complete(different)
        assert inner.n == 2 and different.trace.cache is None
        same = req("when will it arrive", history=HISTORY)
        await cache.complete(same)
        assert inner.n == 2 and same.trace.cache == "semantic"

    run(go())


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(req("Where is my parcel?", feature="billing"), id="feature"),
        pytest.param(req("Where is my parcel?", prompt_version="v2"), id="prompt-version"),
        pytest.param(req("Where is my parcel?", max_tokens=20), id="parameters"),
    ],
)
def test_answers_never_cross_features_prompt_versions_or_parameters(other: ModelRequest) -> None:
    inner = Counting()
    cache = semantic(inner)

    async def go() -> None:
        await cache.complete(req("Where is my parcel?"))
        await cache.complete(other)
        assert inner.n == 2 and other.trace.cache is None

    run(go())


def test_answers_never_cross_models_sharing_a_store() -> None:
    state, small, large = MemoryState(), Counting("small"), Counting("large")

    async def go() -> None:
        await semantic(small, state).complete(req("Where is my parcel?"))
        r = req("Where is my parcel?")
        await semantic(large, state).complete(r)
        assert large.n == 1 and r.trace.cache is None

    run(go())


def test_the_guard_refuses_a_near_miss_with_another_number() -> None:
    async def go(guard: bool) -> str | None:
        cache = semantic(Counting(), guard=guard, threshold=0.8)
        await cache.complete(req("Can I return shoes after 30 days?"))
        r = req("Can I return shoes after 60 days?")  # 5 of 6 words shared: cosine 0.83
        await cache.complete(r)
        return r.trace.cache

    assert run(go(guard=False)) == "semantic"  # what the embedding alone would serve
    assert run(go(guard=True)) is None


def test_an_answer_expires_after_its_ttl() -> None:
    clock, inner = Clock(), Counting()
    cache = semantic(inner, MemoryState(clock), ttl=100)

    async def go() -> None:
        await cache.complete(req("Where is my parcel?"))
        clock.advance(99)
        await cache.complete(req("where is my parcel now"))
        clock.advance(2)
        r = req("where is my parcel now")
        await cache.complete(r)
        assert inner.n == 2 and r.trace.cache is None

    run(go())


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}], id="image"
        ),
        pytest.param(
            [
                {"role": "user", "content": "Track A17"},
                {"role": "tool", "content": "late", "tool_call_id": "1"},
            ],
            id="tool-result",
        ),
    ],
)
def test_requests_without_a_last_user_text_bypass_the_cache(messages: list[dict[str, Any]]) -> None:
    inner, embedder = Counting(), HashEmbedder()
    cache = semantic(inner, embedder=embedder)

    async def go() -> None:
        for _ in range(2):
            await cache.complete(ModelRequest(messages=messages, params={"temperature": 0}))
        assert inner.n == 2 and embedder.calls == 0

    run(go())


def test_requests_that_are_not_deterministic_bypass_the_cache_by_default() -> None:
    inner, embedder = Counting(), HashEmbedder()
    cache = semantic(inner, embedder=embedder)

    async def go() -> None:
        for _ in range(2):
            await cache.complete(req("Where is my parcel?", temperature=1))
        assert inner.n == 2 and embedder.calls == 0

    run(go())


def test_text_parts_count_as_the_question() -> None:
    inner = Counting()
    cache = semantic(inner)
    parts = [{"type": "text", "text": "Where is"}, {"type": "text", "text": "my parcel?"}]

    async def go() -> None:
        await cache.complete(req("Where is my parcel?"))
        r = ModelRequest(
            messages=[{"role": "user", "content": parts}],
            params={"temperature": 0},
            feature="support",
            prompt_version="v1",
        )
        await cache.complete(r)
        assert inner.n == 1 and r.trace.cache == "semantic"

    run(go())


def test_streams_are_stored_and_replayed() -> None:
    inner = Counting()
    cache = semantic(inner)

    async def go() -> None:
        streamed = text(await collect(cache.stream(req("Where is my parcel?"))))
        r = req("where is my parcel now")
        replayed = text(await collect(cache.stream(r)))
        assert inner.n == 1 and r.trace.cache == "semantic" and replayed == streamed

    run(go())


class Broken(Embedder):
    """An embedding endpoint that cannot be reached."""

    async def embed(self, texts: list[str]) -> Matrix:
        raise UpstreamConnectionError("embeddings unreachable")


def test_an_unreachable_embedder_never_fails_a_call() -> None:
    inner = Counting()
    cache = semantic(inner, embedder=Broken())

    async def go() -> None:
        for _ in range(2):
            assert (await cache.complete(req())).text.startswith("answer to")
        assert inner.n == 2

    run(go())


@pytest.mark.integration
def test_replicas_sharing_redis_share_paraphrase_answers() -> None:
    with redis_url() as url:

        async def go() -> None:
            one, two = open_state(url), open_state(url)
            try:
                first, second = Counting(), Counting()
                await semantic(first, one).complete(req("Where is my parcel?"))
                r = req("where is my parcel now")
                answer = await semantic(second, two).complete(r)
                assert second.n == 0 and r.trace.cache == "semantic"
                assert answer.text == "answer to: Where is my parcel? #1"
            finally:
                await one.aclose()
                await two.aclose()

        run(go())


@pytest.mark.slow
def test_with_minilm_a_paraphrase_hits_and_a_changed_number_does_not() -> None:
    from keel.context.local_embed import LocalEmbedder

    inner, embedder = Counting(), LocalEmbedder()
    cache = semantic(inner, embedder=embedder, threshold=0.75)

    async def go() -> tuple[str | None, str | None, str | None]:
        try:
            await cache.complete(req("Do you offer a student discount?"))
            paraphrase = req("Is there a discount for students?")
            await cache.complete(paraphrase)
            await cache.complete(req("Can I return an item after 30 days?"))
            changed = req("Can I return an item after 60 days?")  # near in MiniLM space: the guard refuses it
            await cache.complete(changed)
            other = req("How do I reset my password?")
            await cache.complete(other)
            return paraphrase.trace.cache, changed.trace.cache, other.trace.cache
        finally:
            await embedder.aclose()

    assert run(go()) == ("semantic", None, None)
    assert inner.n == 4 and cache.guarded == 1
