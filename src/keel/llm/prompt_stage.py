"""The LLM layer's first stage: render the feature's prompt and settle the model parameters."""

from __future__ import annotations

from typing import Any

from keel.call import Call
from keel.prompts import PromptTemplate
from keel.prompts.source import PromptSource
from keel.stage import Layer, Stage


class PromptStage(Stage):
    """Render the versioned prompt into the messages; its parameters are defaults a caller may override.

    ``template`` is a fixed prompt file, or a ``PromptSource`` that follows registry labels (and
    splits traffic between them): the version served is recorded on the call, and the label in
    ``metadata["prompt_label"]``.
    """

    name = "llm.prompt"
    layer = Layer.LLM

    def __init__(self, template: PromptTemplate | PromptSource, variables: dict[str, Any]) -> None:
        self.template = template
        self.variables = variables

    async def run(self, call: Call) -> None:
        """Prepend the system prompt, wrap the user message, record the prompt version."""
        source = self.template
        if isinstance(source, PromptSource):
            user = call.params.get("user") or call.metadata.get("user")
            arm = source.pick(str(user) if user else None)
            t = arm.template
            call.metadata["prompt_label"] = arm.label
        else:
            t = source
        values = {**self.variables, **call.variables} if call.variables else self.variables
        call.messages = t.render(call.messages, values, feature=call.feature)
        if t.params:
            call.params = {**t.params, **call.params}
        call.prompt_name = t.name
        call.prompt_version = t.served_version
