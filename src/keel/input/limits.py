"""Size and token limits: refuse oversized input with 413 before it costs anything."""

from __future__ import annotations

from collections.abc import Callable

from keel.call import Action, Call, Message, Verdict
from keel.config import Limits
from keel.errors import PayloadTooLarge
from keel.llm.tokens import message_text
from keel.stage import Layer, Stage


class LimitsStage(Stage):
    """Enforce a feature's message count, character, input-token and output-token limits."""

    name = "input.limits"
    layer = Layer.INPUT

    def __init__(self, limits: Limits, count_messages: Callable[[list[Message]], int], feature: str) -> None:
        self.limits = limits
        self.count_messages = count_messages
        self.feature = feature

    async def run(self, call: Call) -> None:
        """Block with PayloadTooLarge when a limit is exceeded; cap the requested output tokens."""
        lim = self.limits
        if lim.max_messages is not None and len(call.messages) > lim.max_messages:
            self._block(
                call,
                "input.too_many_messages",
                len(call.messages),
                lim.max_messages,
                "messages",
                "max_messages",
            )
        if lim.max_input_chars is not None:
            chars = sum(len(message_text(m)) for m in call.messages)
            if chars > lim.max_input_chars:
                self._block(
                    call, "input.too_long", chars, lim.max_input_chars, "characters", "max_input_chars"
                )
        if lim.max_input_tokens is not None:
            tokens = self.count_messages(call.messages)
            if tokens > lim.max_input_tokens:
                self._block(
                    call, "input.too_many_tokens", tokens, lim.max_input_tokens, "tokens", "max_input_tokens"
                )
        if lim.max_output_tokens is not None:
            self._cap_output(call, lim.max_output_tokens)

    def _cap_output(self, call: Call, cap: int) -> None:
        # Callers may ask with either name; the cap applies to whichever they used (or sets max_tokens).
        asked = [k for k in ("max_tokens", "max_completion_tokens") if call.params.get(k) is not None]
        for key in asked or ["max_tokens"]:
            value = call.params.get(key)
            if value is None or (isinstance(value, int) and value > cap):
                call.params[key] = cap
                if value is not None:
                    call.add_verdict(
                        Verdict(self.name, Action.MODIFY, "input.max_tokens_capped", score=float(value))
                    )

    def _block(self, call: Call, reason: str, got: int, limit: int, unit: str, key: str) -> None:
        call.add_verdict(Verdict(self.name, Action.BLOCK, reason, score=float(got)))
        raise PayloadTooLarge(
            f"input is {got} {unit}; feature {self.feature!r} allows at most {limit} (limits.{key})",
            code=reason.replace(".", "_"),
        )
