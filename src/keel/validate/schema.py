"""Structured output: parse the answer (repairing it when needed) and validate it against the schema.

This stage is rungs 2 and 3 of the ladder; ``keel.validate.ladder`` runs rungs 4 and 5 (re-ask,
fallback) around the Validation layer, and the provider runs rung 1 (constrained decoding).
A valid answer records which rung produced it as the counter ``validation.schema.<rung>``
(``constrained``, ``validated``, ``repaired`` or ``reasked``), so the ledger shows it per call.
"""

from __future__ import annotations

import orjson

from keel.call import Action, Call, Verdict
from keel.errors import OutputRejected
from keel.stage import Layer, Stage
from keel.validate.answer import with_text
from keel.validate.settings import StructuredConfig
from keel.validate.structured import NotJSON, OutputSchema, parse

REASKS = "validation.schema.reasks"
RUNG = "validation.schema."


class SchemaStage(Stage):
    """Parse the answer as JSON into ``call.output`` and validate it; a failure blocks the answer."""

    name = "validation.schema"
    layer = Layer.VALIDATION

    def __init__(self, schema: OutputSchema, config: StructuredConfig | None = None) -> None:
        self.schema = schema
        self.config = config or StructuredConfig()

    async def run(self, call: Call) -> None:
        """Set ``call.output`` (and the repaired text) or record why the answer is not valid."""
        completion = call.completion
        if completion is None or completion.message.get("tool_calls"):
            return  # a tool call is not the final answer; the schema applies to the text answer
        try:
            parsed = parse(completion.text, repair=self.config.repair)
        except NotJSON as exc:
            self._reject(call, "output.not_json", str(exc))
        errors = self.schema.errors(parsed.value, self.config.max_errors)
        if errors:
            listed = "; ".join(str(e) for e in errors)
            self._reject(call, "output.schema_invalid", f"the answer does not match the schema: {listed}")
        if parsed.repair is not None:
            call.completion = with_text(completion, orjson.dumps(parsed.value).decode())
            call.add_verdict(Verdict(self.name, Action.MODIFY, "output.repaired", detail=parsed.repair))
        call.output = parsed.value
        call.count(RUNG + rung(call, repaired=parsed.repair is not None))

    def _reject(self, call: Call, reason: str, detail: str) -> None:
        call.add_verdict(Verdict(self.name, Action.BLOCK, reason, detail=detail[:1000]))
        raise OutputRejected(detail, code=reason.replace(".", "_"))


def rung(call: Call, *, repaired: bool) -> str:
    """Which rung of the ladder produced this call's valid answer."""
    if call.counters.get(REASKS):
        return "reasked"
    if repaired:
        return "repaired"
    return "constrained" if call.constrained else "validated"
