"""The five layers in order. The order lives here and nowhere else.

    Input → Context → LLM → Validation → Monitoring

``Pipeline.run`` answers in one piece; ``Pipeline.open_stream`` runs everything up to the
model's first chunk (so every refusal happens before a byte is sent) and returns the rest
as an async iterator. A feature with an output schema or a cascade holds its stream until
the answer validates, so nothing unvalidated reaches the caller. The Monitoring layer runs
for every call that reached a feature, whatever happened to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from time import monotonic, perf_counter
from types import TracebackType
from typing import Any

from keel.call import Action, Call, Completion, Result, Spend, Status, Usage, Verdict
from keel.errors import CallCancelled, KeelError, OutputRejected, UnknownFeature, UpstreamError
from keel.features import Feature
from keel.input.restore import restore_result
from keel.llm.providers import ModelRequest, Provider, Trace
from keel.llm.providers.base import Chunk
from keel.llm.replay import completion_chunks
from keel.llm.stream import StreamAccumulator
from keel.llm.tokens import message_text
from keel.runtime import Runtime
from keel.settings import Settings
from keel.stage import Layer
from keel.validate.stream_guard import StreamGuard, guard_for


class Pipeline:
    """Every configured feature, ready to answer calls; use as ``async with Pipeline(settings) as p``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        providers: dict[str, Provider] | None = None,
        ledger: bool = True,
    ) -> None:
        self.runtime = Runtime(settings, providers=providers, ledger=ledger)
        self.settings = self.runtime.settings
        self.features: dict[str, Feature] = self.runtime.features
        self.providers = self.runtime.providers
        self.default_feature = self.settings.server.default_feature

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open connections and load local models now rather than on the first call."""
        await self.runtime.start()

    async def aclose(self) -> None:
        """Flush the ledger and release every provider and connection."""
        await self.runtime.aclose()

    async def __aenter__(self) -> Pipeline:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- calls -----------------------------------------------------------------------------

    def feature(self, name: str | None) -> Feature:
        """The feature called ``name`` (or the default feature); UnknownFeature if there is none."""
        name = name or self.default_feature
        feature = self.features.get(name) if name else None
        if feature is None:
            known = ", ".join(sorted(self.features))
            shown = repr(name) if name else "no feature given"
            raise UnknownFeature(f"unknown feature {shown}; this gateway serves: {known}", param="model")
        return feature

    async def ask(self, text: str, *, feature: str | None = None, **params: Any) -> Result:
        """Answer one user message with ``feature`` (the default feature if omitted)."""
        name = self.feature(feature).name
        return await self.run(Call(feature=name, messages=[{"role": "user", "content": text}], params=params))

    async def run(self, call: Call) -> Result:
        """Take ``call`` through all five layers and return the answer; KeelError if it was refused."""
        feature = self.feature(call.feature)
        self.runtime.tracer.start_call(call)
        t0 = perf_counter()
        deadline = monotonic() + feature.config.deadline
        done = False
        try:
            await self._prepare(call, feature)
            await self._answer(call, feature, deadline)
            done = True
        except KeelError as exc:
            _fail(call, exc)
            raise
        except asyncio.CancelledError:
            _fail(call, CallCancelled("the caller went away before the answer was complete"))
            raise
        finally:
            if not done and call.error is None:
                _fail(call, KeelError("internal error"))  # a bug: still recorded, with its own status
            await self._finish(call, feature, t0)
        return restore_result(Result.from_call(call), call.vault)  # originals only for the caller

    async def open_stream(self, call: Call) -> AsyncIterator[Chunk]:
        """Run up to the model's first chunk, then return the stream of chunks (validated before they go).

        Once the stream is consumed, ``Result.from_call(call)`` holds the whole answer, its sources
        and its citations."""
        feature = self.feature(call.feature)
        call.stream = True
        self.runtime.tracer.start_call(call)
        t0 = perf_counter()
        deadline = monotonic() + feature.config.deadline
        opened = False
        try:
            await self._prepare(call, feature)
            if feature.holds_stream or call.completion is not None:  # held, or answered by a rule
                held = await self._answer(call, feature, deadline, stream=True)
            else:
                t_llm = perf_counter()
                chunks = feature.provider.stream(request := self._request(call, deadline))
                first = await anext(chunks, None)
            opened = True
        except KeelError as exc:
            _fail(call, exc)
            raise
        except asyncio.CancelledError:
            _fail(call, CallCancelled("the caller went away before the stream started"))
            raise
        finally:
            if not opened:
                if call.error is None:
                    _fail(call, KeelError("internal error"))
                await self._finish(call, feature, t0)
        if feature.holds_stream or call.completion is not None:
            await self._finish(call, feature, t0)
            return _replay(held, call, guard_for(call, feature.leakage, live=False))
        return self._relay(call, feature, chunks, first, request.trace, t0, t_llm)

    # -- the LLM and Validation layers ---------------------------------------------------------

    async def _answer(
        self, call: Call, feature: Feature, deadline: float, *, stream: bool = False
    ) -> list[Chunk]:
        """Ask the model and validate; a cascade escalates to the next model when validation fails.

        With ``stream``, the answer is collected from the provider's stream and returned as chunks.
        """
        answered = call.completion  # set in the LLM layer (confirmed tool calls): no model call
        if answered is not None:
            return completion_chunks(answered, call.usage if _wants_usage(call) else None) if stream else []
        steps = feature.cascade or [feature.provider]
        ruled = None
        if feature.cascade and feature.router is not None:
            route = feature.router.decide(self._request(call, deadline))
            if route.reason != "default":  # a rule picked one model: no cascade for this call
                steps, ruled = [feature.router.routes[route.model]], route
        held: list[Chunk] = []
        asked = call.messages
        for step, provider in enumerate(steps):
            last, reasks = step == len(steps) - 1, 0
            while True:
                t = perf_counter()
                request = self._request(call, deadline)
                with self.runtime.tracer.stage(call, "llm.model"):  # the model's own span
                    if stream:
                        acc = StreamAccumulator()
                        held = []
                        async for chunk in provider.stream(request):
                            acc.add(chunk)
                            held.append(chunk)
                            if call.ttft_ms is None and chunk.get("choices"):
                                call.ttft_ms = (perf_counter() - t) * 1000
                        completion = acc.completion()
                    else:
                        completion = await provider.complete(request)
                self._settle(call, feature, completion, request.trace)
                if ruled is not None:
                    call.route = ruled.reason
                elif feature.cascade:
                    call.route = f"cascade:{step}"
                    call.baseline = feature.cascade_models[-1]
                call.timings["llm"] = call.timings.get("llm", 0.0) + (perf_counter() - t) * 1000
                try:
                    await self._layer(feature, Layer.VALIDATION, call)
                except OutputRejected:
                    # A cascade's cheaper models escalate; the last model is re-asked with the errors.
                    again = feature.validation.ladder.reask(call, reasks, deadline, asked) if last else None
                    if again is None:
                        call.messages = asked
                        if not last:
                            _escalated(call, feature.cascade_models[step])
                            break
                        if not feature.validation.ladder.fall_back(call):
                            raise
                    else:
                        call.messages, reasks = again, reasks + 1
                        continue
                call.messages = asked
                final: Completion | None = call.completion
                if stream and final is not None and final is not completion:
                    # Validation changed the answer (repaired, re-asked, fallback): send what it is now.
                    held = completion_chunks(final, call.usage if _wants_usage(call) else None)
                return held
        return held

    async def _relay(
        self,
        call: Call,
        feature: Feature,
        chunks: AsyncIterator[Chunk],
        first: Chunk | None,
        trace: Trace,
        t0: float,
        t_llm: float,
    ) -> AsyncIterator[Chunk]:
        """Pass a live stream on, then validate and record what it added up to."""
        acc = StreamAccumulator()
        want_usage = _wants_usage(call)
        guard = guard_for(call, feature.leakage, live=True)
        done = False
        last: Chunk | None = None
        try:
            chunk = first
            while chunk is not None:
                acc.add(chunk)
                if call.ttft_ms is None and chunk.get("choices"):
                    call.ttft_ms = (perf_counter() - t0) * 1000
                if want_usage or chunk.get("choices") or not chunk.get("usage"):
                    yield chunk if guard is None else guard.apply(chunk)
                last = chunk
                chunk = await anext(chunks, None)
            if guard is not None and (rest := guard.finish(last)) is not None:
                yield rest
            self._settle(call, feature, acc.completion(), trace)
            call.timings["llm"] = call.timings.get("llm", 0.0) + (perf_counter() - t_llm) * 1000
            await self._layer(feature, Layer.VALIDATION, call)
            if want_usage and acc.usage is None:
                yield _usage_chunk(acc.id, acc.created, acc.model, call.usage)
            done = True
        except KeelError as exc:
            if guard is not None and isinstance(exc, UpstreamError):
                # The upstream failed midway: what it sent before goes out (checked) ahead of the error.
                try:
                    rest = guard.finish(last)
                except KeelError:
                    rest = None  # blocked: recorded, and nothing more is sent
                if rest is not None:
                    yield rest
            _fail(call, exc)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            _fail(call, CallCancelled("the caller went away during the stream"))
            raise
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            if not done:
                if call.error is None:
                    _fail(call, KeelError("internal error"))
                if call.completion is None and acc.text:
                    self._settle(call, feature, acc.completion(), trace)  # record what was sent
            await self._finish(call, feature, t0)

    # -- the layers --------------------------------------------------------------------------

    async def _prepare(self, call: Call, feature: Feature) -> None:
        """Input, Context and the LLM layer's stages before the model is called."""
        call.feature = feature.name
        await self._layer(feature, Layer.INPUT, call)
        await self._layer(feature, Layer.CONTEXT, call)
        call.model = feature.model.name
        call.provider = feature.model.provider
        call.schema = feature.schema
        await self._layer(feature, Layer.LLM, call)

    async def _layer(self, feature: Feature, layer: Layer, call: Call) -> None:
        t = perf_counter()
        tracer = self.runtime.tracer
        try:
            if tracer.enabled:  # a span per layer and per stage
                with tracer.layer(call, layer):
                    for stage in feature.stages[layer]:
                        with tracer.stage(call, stage.name):
                            await stage.run(call)
            else:
                for stage in feature.stages[layer]:
                    await stage.run(call)
        finally:
            call.timings[layer.value] = call.timings.get(layer.value, 0.0) + (perf_counter() - t) * 1000

    @staticmethod
    def _request(call: Call, deadline: float) -> ModelRequest:
        return ModelRequest(
            messages=call.messages,
            params=call.params,
            schema=call.schema,
            timeout=max(deadline - monotonic(), 0.0),
            feature=call.feature,
            prompt_version=call.prompt_version,
            input_tokens=call.input_tokens,
        )

    def _settle(self, call: Call, feature: Feature, completion: Completion, trace: Trace) -> None:
        """Attach the answer, who gave it and its tokens (counted here when the provider reported none)."""
        call.completion = completion
        call.upstream_model = completion.model or None
        model = trace.model or feature.model.name
        call.model = model
        call.provider = self.runtime.model_kind(model)
        call.cache = trace.cache
        call.route = trace.route or call.route
        call.baseline = trace.baseline or call.baseline
        call.constrained = trace.constrained
        call.attempts += trace.attempts
        call.failures += trace.failures
        if trace.attempts:
            call.count("llm.attempts", trace.attempts)
        if trace.failures:
            detail = "; ".join(trace.failures)[:500]
            call.add_verdict(
                Verdict("llm.resilience", Action.FLAG, "llm.failover", float(len(trace.failures)), detail)
            )
        if completion.usage is not None:
            usage = Usage(
                input_tokens=completion.usage.input_tokens,
                output_tokens=completion.usage.output_tokens,
                cached_input_tokens=completion.usage.cached_input_tokens,
            )
        else:
            p = self.providers.get(model, feature.provider)
            out = sum(p.count_tokens(message_text(c.get("message") or {})) for c in completion.choices)
            usage = Usage(input_tokens=p.count_messages(call.messages), output_tokens=out, estimated=True)
        # A cached or coalesced answer was paid for by the call that made it.
        call.spend.append(Spend(model, usage, cached=trace.cache is not None or trace.coalesced))
        total = call.usage
        call.usage = Usage(
            input_tokens=total.input_tokens + usage.input_tokens,
            output_tokens=total.output_tokens + usage.output_tokens,
            cached_input_tokens=total.cached_input_tokens + usage.cached_input_tokens,
            estimated=total.estimated or usage.estimated,
        )

    async def _finish(self, call: Call, feature: Feature, t0: float) -> None:
        call.timings["total"] = (perf_counter() - t0) * 1000
        tracer = self.runtime.tracer
        try:
            if tracer.enabled:
                with tracer.layer(call, Layer.MONITORING):
                    for stage in feature.stages[Layer.MONITORING]:
                        with tracer.stage(call, stage.name):
                            await stage.run(call)
            else:
                for stage in feature.stages[Layer.MONITORING]:
                    await stage.run(call)
        finally:
            tracer.end_call(call)


def _fail(call: Call, exc: KeelError) -> None:
    call.error = exc
    call.status = Status.BLOCKED if call.blocked_by is not None else Status.ERROR


def _escalated(call: Call, model: str) -> None:
    """A cascade step failed validation: keep its verdict as a flag, forget its answer, go on."""
    for i in range(len(call.verdicts) - 1, -1, -1):
        v = call.verdicts[i]
        if v.action is Action.BLOCK:
            call.verdicts[i] = Verdict(v.stage, Action.FLAG, v.reason, v.score, f"{model}: {v.detail or ''}")
            break
    call.add_verdict(Verdict("llm.cascade", Action.FLAG, "llm.cascade_escalated", detail=f"from {model}"))
    call.output = None


def _wants_usage(call: Call) -> bool:
    return bool((call.params.get("stream_options") or {}).get("include_usage"))


async def _replay(held: list[Chunk], call: Call, guard: StreamGuard | None) -> AsyncIterator[Chunk]:
    """A held stream, released after validation (with the usage chunk only if it was asked for)."""
    want_usage = _wants_usage(call)
    saw_usage = False
    last: Chunk | None = None
    for chunk in held:
        last = chunk
        if chunk.get("choices") or want_usage:
            saw_usage = saw_usage or bool(chunk.get("usage"))
            yield chunk if guard is None else guard.apply(chunk)
    if guard is not None and (rest := guard.finish(last)) is not None:
        yield rest
    if want_usage and not saw_usage and last is not None:
        yield _usage_chunk(last.get("id"), last.get("created"), last.get("model") or "", call.usage)


def _usage_chunk(id_: str | None, created: int | None, model: str, usage: Usage) -> Chunk:
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.to_openai(),
    }
