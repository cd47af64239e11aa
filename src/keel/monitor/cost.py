"""Cost of a call: its tokens priced with the model's configured rates."""

from __future__ import annotations

from keel.call import Call
from keel.config import Price
from keel.stage import Layer, Stage


class CostStage(Stage):
    """Price the call's usage (USD) with the model's per-million-token rates."""

    name = "monitoring.cost"
    layer = Layer.MONITORING

    def __init__(self, price: Price) -> None:
        self.price = price

    async def run(self, call: Call) -> None:
        """Set ``call.usage.cost_usd``."""
        u = call.usage
        u.cost_usd = self.price.cost(u.input_tokens, u.output_tokens, u.cached_input_tokens)
