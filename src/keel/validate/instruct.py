"""Tell the model the output schema, for models that cannot be held to it while decoding.

A model whose provider constrains decoding (a llama.cpp grammar, ``response_format`` with
``json_schema``) gets the schema with the request and needs no words about it; any other model
would not know what shape to answer in. This LLM-layer stage adds the schema to the system
prompt for those (``validation.structured.instruct: auto``), or always, or never.
"""

from __future__ import annotations

from typing import Any

import orjson

from keel.call import Call, Message
from keel.stage import Layer, Stage

INSTRUCTION = (
    "Answer with one JSON value and nothing else (no explanation, no code fence). "
    "It must be valid against this JSON Schema:\n{schema}"
)


class SchemaInstructionStage(Stage):
    """Append the schema instruction to the system message (or add one first)."""

    name = "llm.schema_instruction"
    layer = Layer.LLM

    def __init__(self, schema: dict[str, Any]) -> None:
        self.text = INSTRUCTION.format(schema=orjson.dumps(schema).decode())

    async def run(self, call: Call) -> None:
        """Put the instruction into ``call.messages``."""
        call.messages = with_instruction(call.messages, self.text)


def with_instruction(messages: list[Message], text: str) -> list[Message]:
    """``messages`` with ``text`` at the end of the first system message, or in a new one first."""
    if messages and messages[0].get("role") in ("system", "developer"):
        first = messages[0]
        content = first.get("content")
        if isinstance(content, str):
            return [{**first, "content": f"{content}\n\n{text}" if content else text}, *messages[1:]]
        if isinstance(content, list):
            return [{**first, "content": [*content, {"type": "text", "text": text}]}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]
