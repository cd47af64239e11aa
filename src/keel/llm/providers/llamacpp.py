"""The embedded local model: llama.cpp running Gemma 3 270M (or any .gguf) in this process.

In keel.yaml ``{name: local, provider: llamacpp}`` is enough; every key below is optional::

    - name: local
      provider: llamacpp
      path: models/my.gguf    # default: the packaged Gemma 3 270M, assembled once into the cache
      n_ctx: 2048
      prompt_format: completion

This module imports without llama_cpp installed (configuration is validated without the
optional extra); building or starting the provider then says which extra to install.

Requests are queued on the model's single worker thread (see ``keel.llm.local_model``). With
a JSON schema (``request.schema`` or ``response_format``), decoding is constrained by a grammar
built from it, so the answer parses. An answer cut short by ``max_tokens`` in JSON mode raises
``UpstreamProtocolError`` rather than being returned half-written: quietly raising the limit
would overrun the caller's (or the feature's) token budget, and truncated JSON is no answer.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from keel.call import Completion, Message, Usage
from keel.errors import ConfigError, InvalidRequest, ProviderUnavailable, UpstreamProtocolError
from keel.llm.local_generate import Job, Outcome, Sampling, generate
from keel.llm.local_model import (
    MISSING_EXTRA,
    PACKAGED_MODEL_ID,
    PACKAGED_MODEL_PACKAGE,
    LocalModel,
    ModelSpec,
    load_model,
    packaged_model,
)
from keel.llm.local_prompt import Prompt, format_prompt
from keel.llm.providers.base import Chunk, ModelRequest, Provider

if TYPE_CHECKING:
    from keel.config import ModelConfig, Settings


class LlamaCppOptions(BaseModel):
    """The llamacpp keys of a keel.yaml model entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path | None = None  # a .gguf file; None: the packaged Gemma 3 270M
    n_ctx: int = Field(default=2048, ge=64, le=131_072)
    n_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    n_batch: int = Field(default=256, ge=1)
    max_tokens: int = Field(default=256, ge=1)  # when the request sets none
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # when the request sets none
    # When the request sets none: the base model's answers degrade quickly above 0 (measured on
    # the same short questions, 0.7 turned most correct answers into unrelated sentences).
    temperature: float = Field(default=0.0, ge=0, le=2)
    prompt_format: Literal["completion", "chat"] = "completion"


class LlamaCppProvider(Provider):
    """A .gguf model run in process by llama.cpp; by default the packaged Gemma 3 270M."""

    kind: ClassVar[str] = "llamacpp"
    Options: ClassVar[type[BaseModel]] = LlamaCppOptions

    def __init__(self, name: str = "local", options: LlamaCppOptions | None = None) -> None:
        super().__init__(name)
        self.options = options or LlamaCppOptions()
        path = self.options.path
        self.model_id = path.stem if path is not None else PACKAGED_MODEL_ID
        self._local: LocalModel | None = None

    @classmethod
    def from_config(cls, model: ModelConfig, settings: Settings) -> LlamaCppProvider:
        """The provider for a keel.yaml entry; ProviderUnavailable without the ``local`` extra."""
        options = model.options
        if not isinstance(options, LlamaCppOptions):
            raise ConfigError(f"{settings.source}: model {model.name!r}: options are not llamacpp options")
        needed = ["llama_cpp"] if options.path is not None else ["llama_cpp", PACKAGED_MODEL_PACKAGE]
        if any(importlib.util.find_spec(name) is None for name in needed):
            raise ProviderUnavailable(MISSING_EXTRA)
        if options.path is not None:
            path = settings.resolve(options.path.expanduser())
            if not path.is_file():
                raise ConfigError(f"{settings.source}: model {model.name!r}: path: no such file {path}")
            options = options.model_copy(update={"path": path})
        return cls(model.name, options)

    @classmethod
    def constrains_schema(cls, options: BaseModel) -> bool:
        """Always: a grammar built from the schema holds every token the model writes."""
        return True

    # -- the model ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Assemble and load the model now (off the event loop) rather than on the first request."""
        await self.model()

    async def model(self) -> LocalModel:
        """The loaded model, shared with every provider using the same file and settings."""
        if self._local is None:
            self._local = await asyncio.to_thread(self._load)
        return self._local

    def _load(self) -> LocalModel:
        o = self.options
        path = o.path if o.path is not None else packaged_model()
        return load_model(ModelSpec(path=path, n_ctx=o.n_ctx, n_threads=o.n_threads, n_batch=o.n_batch))

    def _loaded(self) -> LocalModel:
        # Token counting is synchronous; loading here blocks once, when start() was not called.
        if self._local is None:
            self._local = self._load()
        return self._local

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs on this model, by its own tokenizer."""
        return len(self._loaded().tokenize(text))

    def count_messages(self, messages: list[Message]) -> int:
        """Prompt tokens these messages cost, as this provider formats them."""
        model = self._loaded()
        prompt = self._prompt(model, messages)
        return len(model.tokenize(prompt.text, add_bos=prompt.add_bos, special=prompt.special))

    # -- answering ---------------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> Completion:
        """Answer in one piece."""
        plan = self._plan(request)
        model = await self.model()
        parts: list[str] = []
        job = self._job(model, request, plan, emit=parts.append)
        try:
            outcome = await model.run(lambda: generate(model, job))
        except asyncio.CancelledError:
            job.cancelled.set()  # the caller gave up: free the worker at the next token
            raise
        text = "".join(parts)
        finish = self._finish(outcome, text, plan)
        return Completion(
            choices=[
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            model=self.model_id,
            usage=Usage(input_tokens=outcome.prompt_tokens, output_tokens=outcome.completion_tokens),
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """Answer as OpenAI chunks: role, content deltas, finish reason, then usage alone."""
        plan = self._plan(request)
        model = await self.model()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def send(kind: str, value: Any) -> None:  # called on the worker thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: nobody is listening any more
                job.cancelled.set()

        job = self._job(model, request, plan, emit=lambda text: send("text", text))
        job.on_start = lambda n: send("start", n)
        work: Future[Outcome] = model.executor.submit(generate, model, job)
        work.add_done_callback(lambda f: send("done", f))
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model_id,
        }
        parts: list[str] = []
        try:
            while True:
                kind, value = await events.get()
                if kind == "start":
                    yield {
                        **base,
                        "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
                    }
                elif kind == "text":
                    parts.append(value)
                    yield {
                        **base,
                        "choices": [{"index": 0, "delta": {"content": value}, "finish_reason": None}],
                    }
                else:
                    outcome: Outcome = value.result()  # raises what the worker raised
                    break
            finish = self._finish(outcome, "".join(parts), plan)
            yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
            usage = Usage(input_tokens=outcome.prompt_tokens, output_tokens=outcome.completion_tokens)
            yield {**base, "choices": [], "usage": usage.to_openai()}
        finally:
            job.cancelled.set()  # a no-op when finished; stops the worker when the consumer left early

    # -- request → job -----------------------------------------------------------------------

    def _prompt(self, model: LocalModel, messages: list[Message]) -> Prompt:
        return format_prompt(
            messages,
            self.options.prompt_format,
            model=self._label,
            template=model.chat_template,
            bos=model.bos_text,
            eos=model.eos_text,
        )

    def _job(
        self, model: LocalModel, request: ModelRequest, plan: _Plan, *, emit: Callable[[str], None]
    ) -> Job:
        prompt = self._prompt(model, request.messages)
        # In JSON mode the grammar decides where the answer ends; transcript stops would cut JSON.
        stops = plan.stop if plan.grammar is not None else prompt.stop + plan.stop
        deadline = time.monotonic() + request.timeout if request.timeout is not None else None
        return Job(
            prompt=prompt,
            sampling=plan.sampling,
            max_tokens=plan.max_tokens,
            stop=stops,
            emit=emit,
            grammar=plan.grammar,
            deadline=deadline,
        )

    def _finish(self, outcome: Outcome, text: str, plan: _Plan) -> str:
        if outcome.finish_reason == "length" and plan.grammar is not None and not _whole_json(text):
            raise UpstreamProtocolError(
                f"{self._label} stopped after {outcome.completion_tokens} tokens "
                f"(max_tokens={plan.max_tokens}, n_ctx={self.options.n_ctx}) before its JSON answer "
                "was complete; raise max_tokens"
            )
        return outcome.finish_reason

    @property
    def _label(self) -> str:
        return f"the local model {self.name!r} ({self.model_id})"

    def _plan(self, request: ModelRequest) -> _Plan:
        """Check and translate the request's parameters before anything is queued."""
        plan = _Plan.from_params(request.params, request.schema, self.options, self._label)
        request.trace.constrained = plan.grammar is not None
        return plan


@dataclass(frozen=True, slots=True)
class _Plan:
    """A request's parameters, checked: sampling, token budget, stops and the JSON grammar."""

    sampling: Sampling
    max_tokens: int
    stop: tuple[str, ...]
    grammar: str | None

    @classmethod
    def from_params(
        cls, params: dict[str, Any], schema: dict[str, Any] | None, options: LlamaCppOptions, label: str
    ) -> _Plan:
        _refuse_unsupported(params, label)
        o = options
        temperature = _number(params, "temperature", 0, 2, o.temperature)
        sampling = Sampling(
            temperature=temperature,
            top_p=_number(params, "top_p", 0, 1, 1.0),
            top_k=int(_number(params, "top_k", 0, 1000, 40, integer=True)),
            min_p=_number(params, "min_p", 0, 1, 0.05),
            presence_penalty=_number(params, "presence_penalty", -2, 2, 0.0),
            frequency_penalty=_number(params, "frequency_penalty", -2, 2, 0.0),
            seed=int(_number(params, "seed", 0, 2**32 - 1, o.seed, integer=True)),
        )
        key = "max_completion_tokens" if params.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens = int(_number(params, key, 1, 1_000_000, o.max_tokens, integer=True))
        return cls(
            sampling, max_tokens, _stops(params.get("stop")), _grammar(schema, params.get("response_format"))
        )


def _refuse_unsupported(params: dict[str, Any], label: str) -> None:
    if params.get("tools") or params.get("functions"):
        raise InvalidRequest(f"{label} does not support tools or function calling", param="tools")
    n = params.get("n")
    if n is not None and n != 1:
        raise InvalidRequest(f"{label} returns one choice per request; n={n!r} is not supported", param="n")
    if params.get("logprobs") or params.get("top_logprobs") is not None:
        raise InvalidRequest(f"{label} does not return logprobs", param="logprobs")


def _number(
    params: dict[str, Any], key: str, lo: float, hi: float, default: float, *, integer: bool = False
) -> float:
    value = params.get(key)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not float(value).is_integer())
    ):
        kind = "an integer" if integer else "a number"
        raise InvalidRequest(f"{key} must be {kind} between {lo:g} and {hi:g}, got {value!r}", param=key)
    if not lo <= value <= hi:
        raise InvalidRequest(f"{key} must be between {lo:g} and {hi:g}, got {value!r}", param=key)
    return float(value)


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value) and len(value) <= 16:
        return tuple(value)
    raise InvalidRequest("stop must be a string or a list of at most 16 strings", param="stop")


def _grammar(schema: dict[str, Any] | None, response_format: Any) -> str | None:
    """The GBNF for the JSON the answer must be: the feature's schema first, then ``response_format``."""
    if schema is None:
        schema = _response_schema(response_format)
    if schema is None:
        return None
    from keel.llm.local_grammar import schema_grammar  # extends llama_cpp's converter: needs the extra

    return schema_grammar(schema)


def _response_schema(response_format: Any) -> dict[str, Any] | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return schema
        raise InvalidRequest(
            "response_format.json_schema.schema must be a JSON schema object", param="response_format"
        )
    raise InvalidRequest(
        "response_format.type must be text, json_object or json_schema", param="response_format"
    )


def _whole_json(text: str) -> bool:
    """True when a length-capped answer is nonetheless a complete JSON object or array."""
    if text[:1] not in ("{", "["):
        return False
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True
