"""The LLM layer's first stage: render the feature's prompt and settle the model parameters."""

from __future__ import annotations

from typing import Any

from keel.call import Call
from keel.prompts import PromptTemplate
from keel.stage import Layer, Stage


class PromptStage(Stage):
    """Render the versioned prompt into the messages; its parameters are defaults a caller may override."""

    name = "llm.prompt"
    layer = Layer.LLM

    def __init__(self, template: PromptTemplate, variables: dict[str, Any]) -> None:
        self.template = template
        self.variables = variables

    async def run(self, call: Call) -> None:
        """Prepend the system prompt, wrap the user message, record the prompt version."""
        t = self.template
        values = {**self.variables, **call.variables} if call.variables else self.variables
        call.messages = t.render(call.messages, values, feature=call.feature)
        if t.params:
            call.params = {**t.params, **call.params}
        call.prompt_name = t.name
        call.prompt_version = t.version
