"""``RoutingProvider``: a provider that picks, per call, which configured model answers.

Rules first, in order; then the complexity scorer (small or large model) when configured;
otherwise the feature's own model. The decision is recorded on ``request.trace``: ``route``
says why ("rule:0", "complexity:large:0.83", "default") and ``baseline`` names the model the
saving is measured against (the complexity config's large model, or for rules alone the most
expensive model among the routes), so the Monitoring layer can price what routing saved.

A cascade (cheap model first, escalate when validation fails) needs the Validation layer in
the loop, so the pipeline runs it; here only its rules apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from keel.call import Completion, Message
from keel.errors import ConfigError
from keel.llm.providers.base import Chunk, ModelRequest, Provider
from keel.llm.routing.calibration import ShareCalibrator
from keel.llm.routing.complexity import ComplexityModel, shipped_model
from keel.llm.routing.rules import CountMessages, Rules, last_user_text
from keel.llm.tokens import message_text
from keel.settings import Price, RoutingConfig

PriceOf = Callable[[str], Price | None]

# What "most expensive" means when rules alone route: the price of a typical chat call
# (three input tokens for every output token).
_TYPICAL_IN, _TYPICAL_OUT = 3_000, 1_000


@dataclass(slots=True, frozen=True)
class Route:
    """Which model answers a call, and why."""

    model: str
    reason: str  # "rule:<i>", "complexity:<small|large>:<score>" or "default"
    score: float | None = None  # the complexity score, when the scorer decided


class RoutingProvider(Provider):
    """Sends each request to one of ``routes`` by rules, then complexity, else ``default``.

    ``routes`` maps configured model names to their providers (each model's own resilience
    chain). Like the other wrappers, it passes ``start``/``aclose`` on to what it wraps (once
    per provider, however many names share it).
    """

    kind: ClassVar[str] = "routing"

    def __init__(
        self,
        routes: Mapping[str, Provider],
        config: RoutingConfig,
        default: str,
        count_tokens: CountMessages,
        *,
        price: PriceOf | None = None,
        scorer: ComplexityModel | None = None,
        window: int = 1000,
        warmup: int = 200,
        name: str | None = None,
    ) -> None:
        super().__init__(name or f"routing:{default}")
        self.routes = dict(routes)
        self.config = config
        self.default = default
        self.rules = Rules(config.rules, count_tokens)
        needed = [default, *(r.model for r in config.rules)]
        cx = config.complexity
        if cx is not None:
            needed += [cx.small, cx.large]
        missing = [m for m in dict.fromkeys(needed) if m not in self.routes]
        if missing:
            known = ", ".join(sorted(self.routes)) or "none"
            raise ConfigError(f"routing names models with no provider: {', '.join(missing)} (known: {known})")
        self.scorer: ComplexityModel | None = None
        self._window, self._warmup = window, warmup
        self._calibrators: dict[str, ShareCalibrator] = {}
        if cx is not None:
            self.scorer = scorer if scorer is not None else shipped_model()
        self.baseline = self._baseline(price)

    def _baseline(self, price: PriceOf | None) -> str | None:
        cx = self.config.complexity
        if cx is not None:
            return cx.large
        if price is None or not self.config.rules:
            return None
        candidates = [self.default, *(r.model for r in self.config.rules)]
        priced = [(p.cost(_TYPICAL_IN, _TYPICAL_OUT), m) for m in candidates if (p := price(m)) is not None]
        if not priced:
            return None
        top = max(cost for cost, _ in priced)
        return next(m for cost, m in priced if cost == top)  # the first configured among equals

    # -- deciding ------------------------------------------------------------------------------

    def decide(self, request: ModelRequest) -> Route:
        """The route for ``request``: the first matching rule, the scorer's choice, or the default."""
        i = self.rules.match(request)
        if i is not None:
            return Route(self.rules.rules[i].model, f"rule:{i}")
        cx = self.config.complexity
        if cx is None or self.scorer is None:
            return Route(self.default, "default")
        score = self.scorer.score(_scored_text(request.messages))
        if cx.threshold is not None:
            large = score > cx.threshold
        else:
            cal = self._calibrators.get(request.feature)
            if cal is None:  # one rolling window per feature: features see different traffic
                cal = ShareCalibrator(
                    cx.target_large_share, self.scorer.threshold_for, window=self._window, warmup=self._warmup
                )
                self._calibrators[request.feature] = cal
            large = cal.is_large(score)
        size = "large" if large else "small"
        return Route(cx.large if large else cx.small, f"complexity:{size}:{score:.2f}", score)

    def _route(self, request: ModelRequest) -> Provider:
        route = self.decide(request)
        trace = request.trace
        trace.route = route.reason
        trace.baseline = self.baseline
        trace.model = route.model  # a fallback chain inside the route overwrites it with who answered
        return self.routes[route.model]

    # -- the provider interface ------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> Completion:
        """Answer with the routed model."""
        return await self._route(request).complete(request)

    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """Stream from the routed model (decided when called; the chunks pass through untouched)."""
        return self._route(request).stream(request)

    async def start(self) -> None:
        """Start every routed provider."""
        for p in self._distinct():
            await p.start()

    async def aclose(self) -> None:
        """Close every routed provider."""
        for p in self._distinct():
            await p.aclose()

    def _distinct(self) -> list[Provider]:
        return list({id(p): p for p in self.routes.values()}.values())

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs on the default model."""
        return self.routes[self.default].count_tokens(text)

    def count_messages(self, messages: list[Message]) -> int:
        """Prompt tokens these messages cost on the default model."""
        return self.routes[self.default].count_messages(messages)


def _scored_text(messages: list[Message]) -> str:
    """What the scorer reads: the last user message (or the last message, when no user spoke)."""
    text = last_user_text(messages)
    if not text and messages:
        text = message_text(messages[-1])
    return text
