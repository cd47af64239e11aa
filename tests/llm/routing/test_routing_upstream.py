"""Routing over real HTTP: two models behind a fake OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from keel.llm.providers.base import ModelRequest
from keel.llm.providers.openai import OpenAIOptions, OpenAIProvider
from keel.llm.routing import RoutingProvider
from keel.settings import ComplexityRouting, RoutingConfig
from keel.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration

HARD = "Design a payment processing system for 50,000 requests per second; describe the failure modes."
EASY = "What is the capital of Kenya?"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(seed=1) as server:
        yield server


def _ask(fake: FakeUpstream, text: str, *, stream: bool) -> tuple[str, str, str | None]:
    """(upstream model that answered, answer text, route) for one routed request."""

    async def go() -> tuple[str, str, str | None]:
        small = OpenAIProvider("small", OpenAIOptions(base_url=fake.base_url, model="tiny-1"))
        large = OpenAIProvider("large", OpenAIOptions(base_url=fake.base_url, model="huge-1"))
        config = RoutingConfig(complexity=ComplexityRouting(small="small", large="large", threshold=0.5))
        router = RoutingProvider({"small": small, "large": large}, config, "small", small.count_messages)
        req = ModelRequest(messages=[{"role": "user", "content": text}], timeout=30)
        try:
            if stream:
                chunks = [c async for c in router.stream(req)]
                model = chunks[0]["model"]
                text_out = "".join(
                    (c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"]
                )
            else:
                completion = await router.complete(req)
                model, text_out = completion.model, completion.text
        finally:
            await small.aclose()
            await large.aclose()
        return model, text_out, req.trace.route

    return asyncio.run(go())


@pytest.mark.parametrize("stream", [False, True])
def test_hard_and_easy_prompts_reach_different_upstream_models(fake: FakeUpstream, stream: bool) -> None:
    model, text, route = _ask(fake, HARD, stream=stream)
    assert model == "huge-1" and "payment processing" in text and (route or "").startswith("complexity:large")
    assert fake.stats()["last_request"]["body"]["model"] == "huge-1"
    model, text, route = _ask(fake, EASY, stream=stream)
    assert model == "tiny-1" and "Kenya" in text and (route or "").startswith("complexity:small")
    assert fake.stats()["last_request"]["body"]["model"] == "tiny-1"
