"""The complexity threshold sends the target share of calls to the large model."""

from __future__ import annotations

import asyncio
import random

import pytest
from routing_helpers import prompts, request

from keel.llm.routing import RoutingProvider, ShareCalibrator, shipped_model
from keel.llm.tokens import count_messages
from keel.settings import ComplexityRouting, RoutingConfig
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

TOLERANCE = 0.06  # a broken calibration lands far away: a fixed 0.5 cut gives ~0.46 here, inverted ~0.7


def _router(**complexity: float) -> tuple[RoutingProvider, ScriptedProvider, ScriptedProvider]:
    small, large = ScriptedProvider("small"), ScriptedProvider("large")
    config = RoutingConfig(complexity=ComplexityRouting(small="small", large="large", **complexity))
    router = RoutingProvider(
        {"small": small, "large": large}, config, "small", count_messages, window=300, warmup=100
    )
    return router, small, large


def _send(router: RoutingProvider, texts: list[str], feature: str = "f") -> list[bool]:
    """Route each text; True where the large model answered."""

    async def go() -> list[bool]:
        out = []
        for text in texts:
            r = request(text, feature=feature)
            await router.complete(r)
            out.append(r.trace.model == "large")
        return out

    return asyncio.run(go())


def _held_out_stream(seed: int = 7) -> list[str]:
    texts = [r["text"] for r in prompts("heldout")]
    random.Random(seed).shuffle(texts)
    return texts


def test_the_target_share_of_held_out_traffic_goes_to_the_large_model() -> None:
    router, _, large = _router(target_large_share=0.3)
    stream = _held_out_stream()
    went_large = _send(router, stream)
    after_warmup = went_large[100:]
    assert len(after_warmup) >= 300
    assert abs(sum(after_warmup) / len(after_warmup) - 0.3) <= TOLERANCE
    assert len(large.requests) == sum(went_large)


def test_calibration_follows_the_traffic_when_it_is_harder_than_the_training_mix() -> None:
    held = prompts("heldout")
    hard = [r["text"] for r in held if r["label"] == "large"]
    easy = [r["text"] for r in held if r["label"] == "small"]
    rng = random.Random(3)
    stream = [rng.choice(hard) if rng.random() < 0.85 else rng.choice(easy) for _ in range(700)]
    model = shipped_model()
    shipped_cut = model.threshold_for(0.3)
    static_share = sum(model.score(t) > shipped_cut for t in stream) / len(stream)
    assert static_share > 0.45  # the shipped quantiles alone would overshoot on this traffic ...
    router, _, _ = _router(target_large_share=0.3)
    online = _send(router, stream)[100:]
    assert abs(sum(online) / len(online) - 0.3) <= TOLERANCE  # ... the rolling window does not


def test_until_warm_the_shipped_quantiles_decide() -> None:
    model = shipped_model()
    cal = ShareCalibrator(0.3, model.threshold_for, window=1000, warmup=1000)
    for r in prompts("heldout")[:200]:
        s = model.score(r["text"])
        assert cal.is_large(s) == (s > model.threshold_for(0.3))
    assert not cal.warm


@pytest.mark.parametrize(("share", "expected"), [(0.0, False), (1.0, True)])
def test_a_share_of_none_or_all_is_exact(share: float, expected: bool) -> None:
    router, _, _ = _router(target_large_share=share)
    assert set(_send(router, _held_out_stream()[:150])) == {expected}


def test_an_explicit_threshold_wins_over_the_target_share() -> None:
    router, _, _ = _router(target_large_share=0.3, threshold=0.5)
    stream = _held_out_stream()
    model = shipped_model()
    assert _send(router, stream) == [model.score(t) > 0.5 for t in stream]


def test_each_feature_is_calibrated_on_its_own_traffic() -> None:
    held = prompts("heldout")
    hard = [r["text"] for r in held if r["label"] == "large"]
    easy = [r["text"] for r in held if r["label"] == "small"]
    rng = random.Random(5)
    rng.shuffle(hard)
    rng.shuffle(easy)
    router, _, _ = _router(target_large_share=0.5)
    on_hard = _send(router, hard, feature="solver")[100:]
    on_easy = _send(router, easy, feature="faq")[100:]
    assert abs(sum(on_hard) / len(on_hard) - 0.5) <= TOLERANCE + 0.02  # shorter streams
    assert abs(sum(on_easy) / len(on_easy) - 0.5) <= TOLERANCE + 0.02  # shorter streams


def test_the_cut_leaves_the_share_strictly_above_it() -> None:
    cal = ShareCalibrator(0.3, lambda s: 0.5, window=100, warmup=100, refresh=1)
    for i in range(100):
        cal.observe(i / 100)
    assert sum(i / 100 > cal.threshold for i in range(100)) == 30
    assert cal.warm


def test_calibrator_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="share"):
        ShareCalibrator(1.5, lambda s: 0.5)
    with pytest.raises(ValueError, match="warmup"):
        ShareCalibrator(0.3, lambda s: 0.5, window=10, warmup=20)
