"""Structured output: parse the answer as JSON and validate it against the feature's schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson

from keel.call import Action, Call, Verdict
from keel.errors import OutputRejected
from keel.stage import Layer, Stage


class SchemaStage(Stage):
    """Parse the answer as JSON into ``call.output`` and validate it; a failure blocks the answer."""

    name = "validation.schema"
    layer = Layer.VALIDATION

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        cls = jsonschema.validators.validator_for(schema)
        self.validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    async def run(self, call: Call) -> None:
        """Set ``call.output`` or record why the answer is not valid."""
        if call.completion is None or call.completion.message.get("tool_calls"):
            return  # a tool call is not the final answer; the schema applies to the text answer
        try:
            value = orjson.loads(call.text)
        except orjson.JSONDecodeError as exc:
            self._reject(call, "output.not_json", f"answer is not valid JSON: {exc}")
        errors = sorted(self.validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            self._reject(
                call, "output.schema_invalid", f"answer does not match the schema at {where}: {err.message}"
            )
        call.output = value

    def _reject(self, call: Call, reason: str, detail: str) -> None:
        call.add_verdict(Verdict(self.name, Action.BLOCK, reason, detail=detail[:500]))
        raise OutputRejected(detail, code=reason.replace(".", "_"))
