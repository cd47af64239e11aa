"""The last rungs of the structured-output ladder, run by the pipeline around the Validation layer.

Rung 4 re-asks the model with the validation errors (a bounded number of times, and only while
enough of the call's deadline is left); rung 5 answers with the feature's configured fallback.
The pipeline decides *when* (it owns the model calls and the order); this module decides
*what*: the re-ask conversation, and the fallback answer with its verdicts.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

import orjson

from keel.call import Action, Call, Completion, Message, Verdict
from keel.errors import ConfigError
from keel.validate.schema import REASKS, RUNG, SchemaStage
from keel.validate.settings import StructuredConfig
from keel.validate.structured import OutputSchema

_ANSWER_CHARS = 4000  # of the refused answer quoted back to the model

REASK = (
    "Your previous answer was refused: {problem}\n"
    "Answer again with only the corrected JSON value, no explanation and no code fence."
)
REASK_GROUNDED = (
    "Your previous answer says things the sources do not support: {problem}\n"
    "Answer again using only facts stated in the sources, and cite them as [n]. "
    "If the sources do not contain the answer, say that you don't know."
)
GROUNDING = "validation.grounding"


class Ladder:
    """Re-asks and the fallback answer for one feature."""

    def __init__(
        self,
        config: StructuredConfig,
        schema: OutputSchema | None,
        fallback: Any = None,
        *,
        where: str = "validation.fallback",
        grounding_reasks: int = 0,
    ) -> None:
        self.config = config
        self.grounding_reasks = grounding_reasks
        self.schema = schema
        self.fallback = fallback
        if fallback is not None and schema is not None:
            errors = schema.errors(fallback)
            if errors:
                raise ConfigError(f"{where}: the fallback answer does not match the schema: {errors[0]}")
        if fallback is not None and schema is None and not isinstance(fallback, str):
            raise ConfigError(f"{where}: without a schema the fallback answer must be text")

    def reask(self, call: Call, tried: int, deadline: float, messages: list[Message]) -> list[Message] | None:
        """The conversation for one more try after a schema refusal; None when no re-ask is due."""
        verdict = call.blocked_by
        if verdict is None:
            return None
        if verdict.stage == SchemaStage.name:
            bound, template, counter = self.config.reasks, REASK, REASKS
        elif verdict.stage == GROUNDING:
            bound, template, counter = self.grounding_reasks, REASK_GROUNDED, "validation.grounding.reasks"
        else:
            return None
        if tried >= bound:
            return None
        if deadline - monotonic() < self.config.reask_min_seconds:
            call.count(f"{verdict.stage}.reask_skipped")  # not enough time left for another answer
            return None
        _demote(call, f"attempt {tried + 1}")
        call.count(counter)
        call.output = None
        problem = verdict.detail or verdict.reason
        answer = call.text[:_ANSWER_CHARS]
        return [
            *messages,
            {"role": "assistant", "content": answer},
            {"role": "user", "content": template.format(problem=problem)},
        ]

    def fall_back(self, call: Call) -> bool:
        """Answer with the configured fallback instead of the refused answer; False when there is none."""
        if self.fallback is None:
            return False
        refused = _demote(call, "replaced by the fallback answer")
        text = self.fallback if isinstance(self.fallback, str) else orjson.dumps(self.fallback).decode()
        old = call.completion
        call.completion = Completion(
            choices=[
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            model=old.model if old is not None else (call.model or ""),
            usage=old.usage if old is not None else None,
            id=old.id if old is not None else None,
            created=old.created if old is not None else None,
        )
        call.output = None if self.schema is None else self.fallback
        reason = refused.reason if refused is not None else "output.rejected"
        call.add_verdict(Verdict("validation.fallback", Action.MODIFY, "output.fallback", detail=reason))
        if self.schema is not None:
            call.count(RUNG + "fallback")
        return True


def _demote(call: Call, note: str) -> Verdict | None:
    """Turn the blocking verdict into a flag (the answer it refused is not the one sent)."""
    for i in range(len(call.verdicts) - 1, -1, -1):
        v = call.verdicts[i]
        if v.action is Action.BLOCK:
            call.verdicts[i] = Verdict(
                v.stage, Action.FLAG, v.reason, v.score, f"{note}: {v.detail or ''}"[:1000]
            )
            return v
    return None
