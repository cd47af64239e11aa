"""Confirming side-effecting tools (``confirm: true``): hold the call back, release it once confirmed.

1. The model answers with a valid call to such a tool. ``ToolPolicyStage`` holds back the
   answer's tool calls: the caller gets a short assistant message (finish_reason ``stop``) and,
   in the response's ``keel`` object, ``pending_confirmation``: ``{id, tool_calls, sha256,
   expires_at}``. The held calls are kept in the shared-state cache (memory or Redis) for
   ``ttl`` seconds (300), bound to the call's API key and feature.
2. The caller confirms by sending the conversation again with ``keel: {"confirm": id}``.
   ``ToolConfirmStage`` (LLM layer) claims the id: it must exist, not be expired, belong to the
   same key and feature, and not have been used (the claim is atomic across replicas). The
   answer is then exactly the held tool calls (finish_reason ``tool_calls``), without asking
   the model again, so what was confirmed is what comes back; the verdicts of both calls carry
   the same ``sha256`` of the held calls. Any failed claim is 400 ``tool_confirmation_invalid``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from keel.call import Action, Call, Completion, Usage, Verdict
from keel.errors import InvalidRequest
from keel.stage import Layer, Stage
from keel.stores.base import StateBackend

CONFIRM_TTL = 300.0
CONFIRM_OPTION = "keel.confirm"
"""Where a call carries the id it confirms: ``call.metadata[CONFIRM_OPTION]`` (``confirm()`` sets it)."""

_CONFIRMED = "tool.confirmed"


def confirm(call: Call, confirmation_id: str) -> Call:
    """Mark ``call`` as confirming the pending tool calls ``confirmation_id`` (library callers)."""
    call.metadata[CONFIRM_OPTION] = confirmation_id
    return call


def requested_confirmation(call: Call) -> str | None:
    """The confirmation id the call carries, if any."""
    value = call.metadata.get(CONFIRM_OPTION)
    return value if isinstance(value, str) and value else None


def pending_confirmation(completion: Completion | None) -> dict[str, Any] | None:
    """The tool calls an answer holds back for confirmation: ``{id, tool_calls, sha256, expires_at}``."""
    if completion is None:
        return None
    keel = completion.extra.get("keel")
    pending = keel.get("pending_confirmation") if isinstance(keel, dict) else None
    return pending if isinstance(pending, dict) else None


def was_confirmed(call: Call) -> bool:
    """True when the call's answer is tool calls its caller confirmed."""
    return any(v.reason == _CONFIRMED and v.stage == ToolConfirmStage.name for v in call.verdicts)


def digest(tool_calls: list[dict[str, Any]]) -> str:
    """SHA-256 of the tool calls' names and arguments: what was held is what is released."""
    shape = [
        [(tc.get("function") or {}).get("name"), (tc.get("function") or {}).get("arguments")]
        for tc in tool_calls
    ]
    return hashlib.sha256(orjson.dumps(shape)).hexdigest()


class Confirmations:
    """Held tool calls in the shared-state cache, claimed at most once."""

    def __init__(
        self, state: StateBackend, *, ttl: float = CONFIRM_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self.state = state
        self.ttl = ttl
        self.clock = clock

    async def hold(self, call: Call, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
        """Keep ``tool_calls`` for the call's key and feature; return what the caller is shown."""
        pending_id = "tcf_" + secrets.token_urlsafe(18)
        sha = digest(tool_calls)
        record = {"key": call.key_id, "feature": call.feature, "tool_calls": tool_calls, "sha256": sha}
        await self.state.cache.set(_cache_key(pending_id), orjson.dumps(record), self.ttl)
        return {
            "id": pending_id,
            "tool_calls": tool_calls,
            "sha256": sha,
            "expires_at": int(self.clock() + self.ttl),
        }

    async def claim(self, pending_id: str, call: Call) -> tuple[list[dict[str, Any]], str] | None:
        """The held calls and their digest if ``pending_id`` is live, unused and this key's; else None."""
        raw = await self.state.cache.get(_cache_key(pending_id))
        if raw is None:
            return None
        record = orjson.loads(raw)
        calls = record.get("tool_calls")
        if (
            record.get("key") != call.key_id
            or record.get("feature") != call.feature
            or not isinstance(calls, list)
            or digest(calls) != record.get("sha256")
        ):
            return None
        # Atomic in the backend: of two replicas claiming the same id, exactly one wins.
        won = await self.state.counters.hit(_cache_key(pending_id), 1, 1, self.ttl)
        if not won.allowed:
            return None
        await self.state.cache.delete(_cache_key(pending_id))
        return calls, record["sha256"]


def _cache_key(pending_id: str) -> str:
    return f"tool:confirm:{pending_id}"


class ToolConfirmStage(Stage):
    """Answer a confirming call with the tool calls it confirms; the model is not asked again."""

    name = "llm.tool_confirm"
    layer = Layer.LLM

    def __init__(self, confirmations: Confirmations) -> None:
        self.confirmations = confirmations

    async def run(self, call: Call) -> None:
        """Set ``call.completion`` to the confirmed tool calls; 400 when the confirmation is not valid."""
        pending_id = requested_confirmation(call)
        if pending_id is None:
            return
        claimed = await self.confirmations.claim(pending_id, call) if len(pending_id) <= 100 else None
        if claimed is None:
            call.add_verdict(
                Verdict(self.name, Action.BLOCK, "tool.confirmation_invalid", detail=pending_id[:100])
            )
            raise InvalidRequest(
                f"confirmation {pending_id[:100]!r} is unknown, expired, already used, "
                "or not for this API key and feature",
                code="tool_confirmation_invalid",
                param="keel.confirm",
            )
        calls, sha = claimed
        call.completion = Completion(
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": calls},
                    "finish_reason": "tool_calls",
                }
            ],
            model=call.model or "",
            usage=Usage(),
            id=f"chatcmpl-{call.id}",
            created=int(self.confirmations.clock()),
        )
        call.add_verdict(
            Verdict(self.name, Action.ALLOW, _CONFIRMED, detail=f"id={pending_id} sha256={sha[:16]}")
        )
