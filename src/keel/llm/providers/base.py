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

from keel.call import Completion, Message, Usage
from keel.llm.tokens import count_messages, count_tokens

if TYPE_CHECKING:
    from keel.config import ModelConfig, Settings

Chunk = dict[str, Any]
"""One streamed ``chat.completion.chunk`` in OpenAI's shape."""


@dataclass(slots=True)
class Trace:
    """What the LLM layer's wrappers did for one call; the pipeline copies it onto the Call.

    Wrappers write here rather than into the answer so that streamed answers carry it too.
    """

    model: str | None = None  # the configured model that answered
    cache: str | None = None  # "exact" or "semantic" when the answer came from the cache
    cached_usage: Usage | None = None  # what the cached answer cost when it was made
    route: str | None = None  # why this model was chosen, e.g. "rule:1", "complexity:small", "cascade:2"
    baseline: str | None = None  # the model a route saves against (the large one)
    attempts: int = 0  # upstream calls made, retries and fallbacks included
    failures: list[str] = field(default_factory=list)  # "model: error_code" for each failed attempt
    coalesced: bool = False  # answered by an identical request already in flight
    constrained: bool = False  # decoding was held to the request's JSON schema (grammar, response_format)


@dataclass(slots=True)
class ModelRequest:
    """What the LLM layer asks of a provider."""

    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, tools, ...
    schema: dict[str, Any] | None = None  # JSON schema the output must satisfy (constrained decoding)
    timeout: float | None = None  # seconds left for this request from when it is made (the deadline)
    feature: str = ""  # scopes caches: answers never cross features ...
    prompt_version: str | None = None  # ... or prompt versions
    input_tokens: int | None = None  # counted before the call, when known (routing, limits)
    trace: Trace = field(default_factory=Trace)


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

    @classmethod
    def constrains_schema(cls, options: BaseModel) -> bool:
        """True when a model with these options is held to ``request.schema`` while it decodes."""
        return False

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
