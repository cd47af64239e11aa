"""The provider seam: one interface every model backend implements.

A provider turns a ``ModelRequest`` into a ``Completion`` (or a stream of OpenAI chunk
dicts). Wrappers for caching, routing, fallback and retries implement the same interface
and wrap another provider, so they compose from configuration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from keel.call import Completion, Message
from keel.llm.tokens import count_messages, count_tokens

if TYPE_CHECKING:
    from keel.config import ModelConfig, Settings

Chunk = dict[str, Any]
"""One streamed ``chat.completion.chunk`` in OpenAI's shape."""


@dataclass(slots=True)
class ModelRequest:
    """What the LLM layer asks of a provider."""

    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, tools, ...
    schema: dict[str, Any] | None = None  # JSON schema the output must satisfy (constrained decoding)
    timeout: float | None = None  # seconds left for this request, when a deadline applies


class NoOptions(BaseModel):
    """A provider without options of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Provider(ABC):
    """A model backend reachable by its configured ``name``."""

    kind: ClassVar[str] = "abstract"
    Options: ClassVar[type[BaseModel]] = NoOptions
    """The provider's own keys in a keel.yaml model entry, validated at load time."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_config(cls, model: ModelConfig, settings: Settings) -> Provider:
        """Build the provider for a configured model (reads secrets from the environment here)."""
        return cls(model.name)

    @abstractmethod
    async def complete(self, request: ModelRequest) -> Completion:
        """Answer the request in one piece."""

    @abstractmethod
    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """Answer the request as OpenAI chunk dicts; the last may carry only ``usage``."""

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs on this model (o200k_base unless the provider knows better)."""
        return count_tokens(text)

    def count_messages(self, messages: list[Message]) -> int:
        """Prompt tokens these messages cost on this model."""
        return count_messages(messages)

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or load weights before the first request (called by the gateway)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections, threads and models."""
