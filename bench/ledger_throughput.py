"""Ledger write throughput: rows/s through LedgerWriter into each backend, and the cost of record().

    .venv/bin/python bench/ledger_throughput.py [--rows 200000] [--batch-size 1000] [--backend sqlite]

Rows are realistic: built with ``LedgerRow.from_call`` from a finished call with verdicts,
counters, metadata and per-layer timings. The goal is >= 20,000 rows/s sustained.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from keel.call import Action, Call, Completion, Status, Usage, Verdict
from keel.monitor.ledger import Ledger, LedgerRow, LedgerWriter
from keel.monitor.sqlite_ledger import SQLiteLedger


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
def _sqlite() -> Iterator[Ledger]:
    with tempfile.TemporaryDirectory() as tmp, SQLiteLedger(Path(tmp) / "bench.db") as ledger:
        yield ledger


BACKENDS: dict[str, Callable[[], AbstractContextManager[Ledger]]] = {"sqlite": _sqlite}


def run(backend: str, n: int, batch_size: int) -> None:
    """Record ``n`` rows through a LedgerWriter and report rows/s until all are durable."""
    rows = [LedgerRow.from_call(_call(i)) for i in range(n)]
    call = _call(0)
    t = time.perf_counter()
    for _ in range(10_000):
        LedgerRow.from_call(call)
    from_call_us = (time.perf_counter() - t) / 10_000 * 1e6

    with BACKENDS[backend]() as ledger:
        # A burst far above any real request rate: let the queue hold it all rather than drop.
        writer = LedgerWriter(ledger, flush_interval=0.05, batch_size=batch_size, max_pending=n)
        t0 = time.perf_counter()
        for row in rows:
            writer.record(row)
        recorded = time.perf_counter() - t0
        writer.flush()
        total = time.perf_counter() - t0
        stats = writer.stats
        writer.close()
        assert len(ledger.rows(limit=n)) == n, "not every row was written"
    print(f"backend={backend} rows={n} batch_size={batch_size} written={stats.written}")
    print(f"  throughput      {n / total:12,.0f} rows/s (record all + flush, durable)")
    print(f"  record()        {recorded / n * 1e6:12.2f} us/row (hot path, while the writer thread runs)")
    print(f"  from_call()     {from_call_us:12.2f} us/row (hot path)")


def main() -> None:
    """Parse arguments and run the benchmark for each backend asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--backend", choices=sorted(BACKENDS), action="append")
    args = parser.parse_args()
    for backend in args.backend or sorted(BACKENDS):
        run(backend, args.rows, args.batch_size)


if __name__ == "__main__":
    main()
