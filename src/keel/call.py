"""The one object that flows: a ``Call`` enters the Input layer and leaves the Monitoring layer.

Stages read the ``Call`` and add to it; they never talk to each other. ``Result`` is the
read-only view a library caller gets back.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from keel.context.citations import Citation, Source, cite, sources_of
from keel.errors import KeelError

Message = dict[str, Any]
"""A chat message in OpenAI's shape: ``role``, ``content`` (text or parts), optional tool fields."""


class Action(StrEnum):
    """What a stage decided about a call."""

    ALLOW = "allow"
    FLAG = "flag"  # answered, but recorded
    MODIFY = "modify"  # the stage changed the call (stripped, redacted, repaired)
    BLOCK = "block"  # the call stops here


@dataclass(slots=True, frozen=True)
class Verdict:
    """A stage's recorded decision: which stage, what it did, why (a reason code) and how sure."""

    stage: str
    action: Action
    reason: str
    score: float | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON-able data (ledger, gateway)."""
        d: dict[str, Any] = {"stage": self.stage, "action": str(self.action), "reason": self.reason}
        if self.score is not None:
            d["score"] = self.score
        if self.detail is not None:
            d["detail"] = self.detail
        return d


@dataclass(slots=True)
class Usage:
    """Tokens and money for one call. ``estimated`` is True when keel counted the tokens itself."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    estimated: bool = False

    def to_openai(self) -> dict[str, int]:
        """The usage block of an OpenAI response."""
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclass(slots=True)
class Completion:
    """What the model answered: the OpenAI ``choices`` as sent, plus what keel reads from them."""

    choices: list[dict[str, Any]]
    model: str
    usage: Usage | None = None
    id: str | None = None
    created: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level fields, passed through

    @property
    def message(self) -> Message:
        """The first choice's message."""
        if not self.choices:
            return {"role": "assistant", "content": None}
        msg: Message = self.choices[0].get("message") or {"role": "assistant", "content": None}
        return msg

    @property
    def text(self) -> str:
        """The first choice's text content ('' when the model only called tools)."""
        content = self.message.get("content")
        return content if isinstance(content, str) else ""

    @text.setter
    def text(self, value: str) -> None:
        if not self.choices:
            self.choices.append({"index": 0, "message": {"role": "assistant"}, "finish_reason": "stop"})
        self.choices[0].setdefault("message", {"role": "assistant"})["content"] = value

    @property
    def finish_reason(self) -> str | None:
        """Why the first choice stopped (stop, length, tool_calls, ...)."""
        return self.choices[0].get("finish_reason") if self.choices else None


@dataclass(slots=True, frozen=True)
class Spend:
    """One answer a model gave for this call: who, how many tokens, and whether it came from the cache."""

    model: str
    usage: Usage
    cached: bool = False


class Status(StrEnum):
    """How a call ended."""

    OK = "ok"
    BLOCKED = "blocked"
    ERROR = "error"


def new_call_id() -> str:
    """A short unique, time-sortable call id (not a secret: a PRNG suffix avoids a syscall per call)."""
    return f"{time.time_ns() // 1_000_000:x}{random.getrandbits(40):010x}"


@dataclass(slots=True)
class Call:
    """One request on its way through the five layers."""

    feature: str
    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    key_id: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    traceparent: str | None = field(default=None, repr=False)  # W3C trace context of the caller, if any
    id: str = field(default_factory=new_call_id)
    started_at: float = field(default_factory=time.time)

    # Added by the layers as the call flows.
    model: str | None = None  # configured model name
    provider: str | None = None  # provider kind that served it (openai, llamacpp, ...)
    upstream_model: str | None = None  # the model id the provider reported
    prompt_name: str | None = None
    prompt_version: str | None = None
    schema: dict[str, Any] | None = None  # JSON schema the output must satisfy
    chunks: list[Any] = field(default_factory=list)  # Context layer: retrieved chunks
    filters: dict[str, Any] = field(default_factory=dict)  # metadata filters the caller adds to retrieval
    completion: Completion | None = None
    output: Any = None  # parsed structured output when a schema is declared
    verdicts: list[Verdict] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)  # layer or stage -> milliseconds
    counters: dict[str, int] = field(default_factory=dict)  # e.g. input.invisible_removed
    status: Status = Status.OK
    error: KeelError | None = None
    cache: str | None = None  # None, "exact" or "semantic"
    route: str | None = None  # why this model was chosen
    saved_usd: float = 0.0  # cost avoided by cache or route
    ttft_ms: float | None = None  # time to first token (streaming)
    input_tokens: int | None = None  # counted before the model is called, when a stage needed it
    reservations: list[Any] = field(default_factory=list)  # budget holds, settled by the Monitoring layer
    attempts: int = 0  # upstream calls made (retries and fallbacks included)
    failures: list[str] = field(default_factory=list)  # "model: error_code" per failed attempt
    spend: list[Spend] = field(default_factory=list)  # every answer a model gave (cascades give several)
    baseline: str | None = None  # the model a route's saving is measured against
    constrained: bool = False  # the answer's decoding was held to the output schema (LLM layer)
    # Placeholder → original value for redacted or pseudonymised input. Lives only as long as the
    # call; never copied to the ledger, logs or traces.
    vault: dict[str, str] = field(default_factory=dict, repr=False)

    def add_verdict(self, verdict: Verdict) -> None:
        """Record a stage's decision on this call."""
        self.verdicts.append(verdict)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a named counter."""
        self.counters[name] = self.counters.get(name, 0) + n

    @property
    def blocked_by(self) -> Verdict | None:
        """The first blocking verdict, if any."""
        for v in self.verdicts:
            if v.action is Action.BLOCK:
                return v
        return None

    @property
    def text(self) -> str:
        """The answer text ('' before the LLM layer ran)."""
        return self.completion.text if self.completion else ""


@dataclass(slots=True, frozen=True)
class Result:
    """What a library caller gets back from ``Pipeline.run``."""

    call_id: str
    feature: str
    text: str
    output: Any
    message: Message
    model: str | None
    prompt_name: str | None
    prompt_version: str | None
    usage: Usage
    verdicts: tuple[Verdict, ...]
    timings: dict[str, float]
    completion: Completion | None
    sources: tuple[Source, ...] = ()  # what the Context layer put into the prompt, numbered
    citations: tuple[Citation, ...] = ()  # the sources the answer cites with [n]

    @classmethod
    def from_call(cls, call: Call) -> Result:
        """Freeze a finished call into a result."""
        comp = call.completion
        return cls(
            call_id=call.id,
            feature=call.feature,
            text=call.text,
            output=call.output,
            message=comp.message if comp else {"role": "assistant", "content": None},
            model=call.model,
            prompt_name=call.prompt_name,
            prompt_version=call.prompt_version,
            usage=call.usage,
            verdicts=tuple(call.verdicts),
            timings=dict(call.timings),
            completion=comp,
            sources=tuple(sources_of(call.chunks)),
            citations=tuple(cite(call.text, call.chunks)),
        )
