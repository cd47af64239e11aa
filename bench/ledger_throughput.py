"""Ledger write throughput into SQLite and PostgreSQL, and the gateway's latency with the ledger off and on.

    .venv/bin/python bench/ledger_throughput.py [--rows 200000] [--batch-size 1000]
        [--backend sqlite --backend postgresql] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
        [--gateway-requests 3000] [--concurrency 1 16] [--rounds 3]

Part 1: ``--rows`` realistic rows (``LedgerRow.from_call`` of a finished call with verdicts,
counters, metadata and per-layer timings) recorded through ``LedgerWriter`` as fast as a thread
can, then flushed: rows/s until every row is durable. The PostgreSQL run writes into a schema of
its own, dropped afterwards. Goals (issue 7): 20,000 rows/s into SQLite, 10,000 into PostgreSQL.

Part 2 (``--gateway-requests`` > 0): one ``keel fake-upstream`` and, in turn, one ``keel serve``
with the ledger off, on SQLite and on PostgreSQL, each driven by the same client at each
concurrency (rounds alternate between the three so drift hits all alike). Every answered call is
a ledger row, so at concurrency 16 the writer takes thousands of rows/s while the p50 is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway_overhead import KEEL, Sample, drive, merge, start, wait_healthy

from keel.call import Action, Call, Completion, Status, Usage, Verdict
from keel.monitor.ledger import Ledger, LedgerRow, LedgerWriter
from keel.monitor.open import open_ledger

POSTGRES_URL = os.environ.get("KEEL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _call(i: int) -> Call:
    call = Call(
        feature=f"feature-{i % 7}",
        messages=[{"role": "user", "content": "not stored in the ledger"}],
        key_id=f"team-{i % 13}",
        metadata={"tenant": f"t{i % 50}", "experiment": "b"},
    )
    call.model, call.provider, call.upstream_model = "small", "openai", "gpt-4o-mini-2024-07-18"
    call.prompt_name, call.prompt_version = "support", "3"
    call.completion = Completion(choices=[], model="gpt-4o-mini")
    call.usage = Usage(input_tokens=812, output_tokens=164, cached_input_tokens=256, cost_usd=0.000_221)
    call.timings = {"input": 0.21, "context": 3.4, "llm": 412.0, "validation": 0.8, "total": 417.3}
    call.verdicts = [Verdict("input.injection", Action.ALLOW, "clean", 0.02)]
    call.counters = {"input.invisible_removed": 2}
    call.status = Status.OK
    return call


@contextmanager
def _target(backend: str, postgres_url: str) -> Iterator[str]:
    """A fresh ledger: a SQLite file in a temporary directory, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield str(Path(tmp) / "bench.db")
        return
    import psycopg

    schema = f"keel_bench_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{postgres_url}?schema={schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _count(ledger: Ledger, n: int) -> int:
    return len(ledger.rows(limit=n + 1))


def throughput(backend: str, n: int, batch_size: int, postgres_url: str) -> dict[str, float]:
    """Record ``n`` rows through a LedgerWriter; rows/s until all are durable, and the hot-path costs."""
    rows = [LedgerRow.from_call(_call(i)) for i in range(n)]
    call = _call(0)
    t = time.perf_counter()
    for _ in range(10_000):
        LedgerRow.from_call(call)
    from_call_us = (time.perf_counter() - t) / 10_000 * 1e6
    with _target(backend, postgres_url) as target:
        ledger = open_ledger(target)
        # A burst far above any real request rate: let the queue hold it all rather than drop.
        writer = LedgerWriter(ledger, flush_interval=0.05, batch_size=batch_size, max_pending=n)
        t0 = time.perf_counter()
        for row in rows:
            writer.record(row)
        recorded = time.perf_counter() - t0
        writer.flush()
        total = time.perf_counter() - t0
        writer.close()
        with open_ledger(target) as reader:
            stored = _count(reader, n)
        if stored != n:
            raise SystemExit(f"{backend}: {stored} rows stored, {n} recorded")
    return {"rows_per_s": n / total, "record_us": recorded / n * 1e6, "from_call_us": from_call_us}


LEDGERS: dict[str, Callable[[str], str]] = {
    "off": lambda _: "{enabled: false}",
    "sqlite": lambda _: "{url: ledger.db}",
    "postgresql": lambda url: f"{{url: '{url}'}}",
}


def gateway(
    requests: int, concurrencies: list[int], rounds: int, postgres_url: str
) -> tuple[list[tuple[int, dict[str, Sample]]], dict[str, int]]:
    """p50/p99 of the gateway with each ledger setting, side by side; and the rows each ledger stored."""
    fake, fake_port = start([KEEL, "fake-upstream", "--port", "0"], r"127\.0\.0\.1:(\d+)")
    procs = [fake]
    stored: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp, _target("postgresql", postgres_url) as pg:
        urls: dict[str, str] = {}
        targets = {"off": "", "sqlite": str(Path(tmp) / "sqlite" / "ledger.db"), "postgresql": pg}
        try:
            for name, ledger in LEDGERS.items():
                folder = Path(tmp) / name
                folder.mkdir()
                (folder / "keel.yaml").write_text(
                    "models:\n  - name: up\n    provider: openai\n"
                    f"    base_url: http://127.0.0.1:{fake_port}/v1\n"
                    "    price: {input_per_mtok: 0.15, output_per_mtok: 0.6}\n"
                    "features:\n  - name: bench\n    model: up\n"
                    f"ledger: {ledger(pg)}\n"
                )
                gw, port = start(
                    [KEEL, "serve", "--config", str(folder / "keel.yaml"), "--port", "0"],
                    r"127\.0\.0\.1:(\d+)",
                )
                procs.append(gw)
                wait_healthy(f"http://127.0.0.1:{port}/healthz")
                urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
                asyncio.run(drive(urls[name], 500, 8))  # warm up (imports, pools, caches)
            table = []
            for c in concurrencies:
                samples: dict[str, list[Sample]] = {name: [] for name in urls}
                for _ in range(rounds):
                    for name, url in urls.items():
                        samples[name].append(asyncio.run(drive(url, requests, c)))
                table.append((c, {name: merge(s) for name, s in samples.items()}))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
        for name in ("sqlite", "postgresql"):  # after a graceful stop, every row is flushed
            with open_ledger(targets[name]) as ledger:
                stored[name] = _count(ledger, 10_000_000)
    return table, stored


def main() -> None:
    """Parse arguments, run both parts, print Markdown tables for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--gateway-requests", type=int, default=3000, help="0 skips the gateway part")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print(f"{args.rows:,} rows, batches of {args.batch_size:,}\n")
    print("| backend | rows/s (record all + flush, durable) | record() µs/row | from_call() µs/row |")
    print("|---|---:|---:|---:|")
    for backend in args.backend or ["sqlite", "postgresql"]:
        r = throughput(backend, args.rows, args.batch_size, args.postgres_url)
        print(f"| {backend} | {r['rows_per_s']:,.0f} | {r['record_us']:.2f} | {r['from_call_us']:.2f} |")
    if args.gateway_requests <= 0:
        return
    table, stored = gateway(args.gateway_requests, args.concurrency, args.rounds, args.postgres_url)
    print(f"\n{args.gateway_requests:,} requests x {args.rounds} rounds per cell; rows stored: {stored}\n")
    print("| concurrency | ledger | p50 ms | p99 ms | req/s | p50 vs off |")
    print("|---:|---|---:|---:|---:|---:|")
    for c, cells in table:
        off = cells["off"].pct(0.5)
        for name, s in cells.items():
            print(
                f"| {c} | {name} | {s.pct(0.5):.3f} | {s.pct(0.99):.3f} | {s.rps:,.0f} "
                f"| {s.pct(0.5) / off:.2f}x |"
            )


if __name__ == "__main__":
    main()
