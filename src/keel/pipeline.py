"""The five layers in order. The order lives here and nowhere else.

    Input → Context → LLM → Validation → Monitoring

``Pipeline.run`` answers in one piece; ``Pipeline.open_stream`` runs everything up to the
model's first chunk (so every refusal happens before a byte is sent) and returns the rest
as an async iterator. The Monitoring layer runs for every call that reached a feature,
whatever happened to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from time import perf_counter
from types import TracebackType
from typing import Any

from keel.call import Call, Completion, Result, Status, Usage
from keel.config import Settings, load_config
from keel.errors import CallCancelled, KeelError, UnknownFeature
from keel.features import Feature, build_feature
from keel.llm.providers import ModelRequest, Provider, provider_class
from keel.llm.providers.base import Chunk
from keel.llm.stream import StreamAccumulator
from keel.llm.tokens import message_text
from keel.monitor.ledger import LedgerWriter
from keel.monitor.sqlite_ledger import SQLiteLedger
from keel.stage import Layer


class Pipeline:
    """Every configured feature, ready to answer calls; use as ``async with Pipeline(settings) as p``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        providers: dict[str, Provider] | None = None,
        ledger: bool = True,
    ) -> None:
        self.settings = settings if settings is not None else load_config()
        s = self.settings
        used = {f.model for f in s.features}
        given = providers or {}
        self.providers: dict[str, Provider] = {
            m.name: given.get(m.name) or provider_class(m.provider).from_config(m, s)
            for m in s.models
            if m.name in used
        }
        self.writer: LedgerWriter | None = None
        if ledger and s.ledger.enabled:
            self.writer = LedgerWriter(
                SQLiteLedger(s.db_path),
                flush_interval=s.ledger.flush_interval,
                batch_size=s.ledger.batch_size,
            )
        self.features: dict[str, Feature] = {
            fc.name: build_feature(fc, i, s, self.providers[fc.model], self.writer)
            for i, fc in enumerate(s.features)
        }
        self.default_feature = s.server.default_feature

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open connections and load local models now rather than on the first call."""
        for provider in self.providers.values():
            await provider.start()

    async def aclose(self) -> None:
        """Flush the ledger and release every provider."""
        for provider in self.providers.values():
            await provider.aclose()
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)  # the final flush is disk I/O

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
        t0 = perf_counter()
        done = False
        try:
            await self._prepare(call, feature)
            t = perf_counter()
            completion = await feature.provider.complete(self._request(call))
            self._settle(call, feature, completion)
            call.timings["llm"] += (perf_counter() - t) * 1000
            await self._layer(feature, Layer.VALIDATION, call)
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
        return Result.from_call(call)

    async def open_stream(self, call: Call) -> AsyncIterator[Chunk]:
        """Run up to the model's first chunk, then return the stream of chunks (validated before they go)."""
        feature = self.feature(call.feature)
        t0 = perf_counter()
        opened = False
        try:
            await self._prepare(call, feature)
            t_llm = perf_counter()
            chunks = feature.provider.stream(self._request(call))
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
        call.stream = True
        return self._relay(call, feature, chunks, first, t0, t_llm)

    async def _relay(
        self,
        call: Call,
        feature: Feature,
        chunks: AsyncIterator[Chunk],
        first: Chunk | None,
        t0: float,
        t_llm: float,
    ) -> AsyncIterator[Chunk]:
        acc = StreamAccumulator()
        want_usage = bool((call.params.get("stream_options") or {}).get("include_usage"))
        held: list[Chunk] | None = [] if feature.schema is not None else None  # validate before release
        done = False
        try:
            chunk = first
            while chunk is not None:
                acc.add(chunk)
                if call.ttft_ms is None and chunk.get("choices"):
                    call.ttft_ms = (perf_counter() - t0) * 1000
                if want_usage or chunk.get("choices") or not chunk.get("usage"):
                    if held is None:
                        yield chunk
                    else:
                        held.append(chunk)
                chunk = await anext(chunks, None)
            self._settle(call, feature, acc.completion())
            call.timings["llm"] += (perf_counter() - t_llm) * 1000
            await self._layer(feature, Layer.VALIDATION, call)
            for c in held or ():
                yield c
            if want_usage and acc.usage is None:
                yield _usage_chunk(acc, call.usage)
            done = True
        except KeelError as exc:
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
                    self._settle(call, feature, acc.completion())  # record what was sent
            await self._finish(call, feature, t0)

    # -- the layers --------------------------------------------------------------------------

    async def _prepare(self, call: Call, feature: Feature) -> None:
        """Input, Context and the LLM layer's stages before the model is called."""
        call.feature = feature.name
        await self._layer(feature, Layer.INPUT, call)
        await self._layer(feature, Layer.CONTEXT, call)
        call.model = feature.model.name
        call.provider = feature.provider.kind
        call.schema = feature.schema
        await self._layer(feature, Layer.LLM, call)

    @staticmethod
    async def _layer(feature: Feature, layer: Layer, call: Call) -> None:
        t = perf_counter()
        try:
            for stage in feature.stages[layer]:
                await stage.run(call)
        finally:
            call.timings[layer.value] = call.timings.get(layer.value, 0.0) + (perf_counter() - t) * 1000

    @staticmethod
    def _request(call: Call) -> ModelRequest:
        return ModelRequest(messages=call.messages, params=call.params, schema=call.schema)

    @staticmethod
    def _settle(call: Call, feature: Feature, completion: Completion) -> None:
        """Attach the answer and its token counts (counted here when the provider reported none)."""
        call.completion = completion
        call.upstream_model = completion.model or None
        if completion.usage is not None:
            call.usage = Usage(
                input_tokens=completion.usage.input_tokens,
                output_tokens=completion.usage.output_tokens,
                cached_input_tokens=completion.usage.cached_input_tokens,
            )
        else:
            p = feature.provider
            out = sum(p.count_tokens(message_text(c.get("message") or {})) for c in completion.choices)
            call.usage = Usage(
                input_tokens=p.count_messages(call.messages), output_tokens=out, estimated=True
            )

    async def _finish(self, call: Call, feature: Feature, t0: float) -> None:
        call.timings["total"] = (perf_counter() - t0) * 1000
        for stage in feature.stages[Layer.MONITORING]:
            await stage.run(call)


def _fail(call: Call, exc: KeelError) -> None:
    call.error = exc
    call.status = Status.BLOCKED if call.blocked_by is not None else Status.ERROR


def _usage_chunk(acc: StreamAccumulator, usage: Usage) -> Chunk:
    return {
        "id": acc.id,
        "object": "chat.completion.chunk",
        "created": acc.created,
        "model": acc.model,
        "choices": [],
        "usage": usage.to_openai(),
    }
