"""What OpenTelemetry tracing costs per call: the pipeline with tracing off, and on with every call sampled.

    .venv/bin/python bench/tracing_overhead.py [--calls 5000] [--rounds 5]

One feature on a scripted provider (no network), so the pipeline's own time is what is measured.
"on" builds the spans of a call (the call, five layers, each stage, the model call) and hands
them to the SDK's batch processor, whose exporter here discards them: export happens on the
processor's thread, never on the request path. Rounds alternate off and on so drift hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from keel import Call, Pipeline
from keel.config import load_config
from keel.llm.providers import register_provider
from keel.monitor.otel import OTelTracer
from keel.monitor.settings import TracingSettings
from keel.monitor.tracing import NOOP
from keel.testing.scripted import ScriptedProvider

CONFIG = """\
models: [{name: m, provider: scripted, price: {input_per_mtok: 1, output_per_mtok: 2}}]
features: [{name: support, model: m}]
ledger: {enabled: false}
"""


class Discard(SpanExporter):
    """An exporter that counts spans and drops them."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Count and drop."""
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def timed(pipeline: Pipeline, n: int) -> list[float]:
    """Per-call wall time in µs for ``n`` calls one after another."""
    out = []
    for i in range(n):
        call = Call(feature="support", messages=[{"role": "user", "content": f"question {i}"}])
        t = time.perf_counter()
        await pipeline.run(call)
        out.append((time.perf_counter() - t) * 1e6)
    return out


async def measure(calls: int, rounds: int) -> tuple[list[float], list[float], int]:
    """Latencies with tracing off and on, and the number of spans exported."""
    register_provider("scripted", ScriptedProvider)
    exporter = Discard()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "keel.yaml").write_text(CONFIG)
        settings = load_config(Path(tmp) / "keel.yaml")
        tracer = OTelTracer(TracingSettings(), exporter=exporter)
        async with Pipeline(settings, providers={"m": ScriptedProvider("m", ["An answer."])}) as p:
            off: list[float] = []
            on: list[float] = []
            p.runtime.tracer = NOOP
            await timed(p, 500)  # warm up
            for _ in range(rounds):
                p.runtime.tracer = NOOP
                off += await timed(p, calls)
                p.runtime.tracer = tracer
                on += await timed(p, calls)
        tracer.shutdown()
    return off, on, exporter.spans


def main() -> None:
    """Run and print a Markdown table for docs/benchmarks.md."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    off, on, spans = asyncio.run(measure(args.calls, args.rounds))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{args.calls} calls x {args.rounds} rounds each; spans exported: {spans:,}\n")
    print("| tracing | p50 µs/call | p99 µs/call |")
    print("|---|---:|---:|")
    for name, xs in (("off", off), ("on (every call sampled)", on)):
        q = statistics.quantiles(xs, n=100)
        print(f"| {name} | {statistics.median(xs):.1f} | {q[98]:.1f} |")
    print(f"\nadded p50: {statistics.median(on) - statistics.median(off):.1f} µs per call")


if __name__ == "__main__":
    main()
