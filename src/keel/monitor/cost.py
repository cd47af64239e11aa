"""Cost of a call: every answer a model gave, priced with that model's rates; and what was saved."""

from __future__ import annotations

from keel.call import Call
from keel.settings import Price
from keel.stage import Layer, Stage


class CostStage(Stage):
    """Price the call (USD); a cached answer costs nothing and saves what it cost when it was made.

    A routed call also saves (or loses, when a cascade had to escalate) the difference to what its
    baseline model would have charged for the final answer.
    """

    name = "monitoring.cost"
    layer = Layer.MONITORING

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices

    async def run(self, call: Call) -> None:
        """Set ``call.usage.cost_usd`` and ``call.saved_usd``."""
        cost = saved = 0.0
        for s in call.spend:
            price = self.prices.get(s.model)
            if price is None:
                continue
            amount = price.cost(s.usage.input_tokens, s.usage.output_tokens, s.usage.cached_input_tokens)
            if s.cached:
                saved += amount
            else:
                cost += amount
        final = call.spend[-1] if call.spend else None
        baseline = self.prices.get(call.baseline) if call.baseline else None
        if final is not None and baseline is not None and not final.cached:
            u = final.usage
            saved += baseline.cost(u.input_tokens, u.output_tokens, u.cached_input_tokens) - cost
        call.usage.cost_usd = cost
        call.saved_usd = saved
