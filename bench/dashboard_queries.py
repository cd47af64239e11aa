"""How long the dashboard's overview takes on a large ledger, SQLite and PostgreSQL, beside ``keel usage``.

    .venv/bin/python bench/dashboard_queries.py [--rows 200000] [--days 7] [--rounds 3]
        [--backend sqlite --backend postgresql] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

Writes ``--rows`` ledger rows spread over ``--days`` (7 features, 13 keys, 3 models; a cache
hit in 15%, a routed call in 20%, a verdict in 10%, 2% errors) through the Ledger API, then
times, per backend, the median of ``--rounds`` runs of:

- the reference: ``Ledger.summarize(by="feature")`` over the same range (what ``keel usage`` runs);
- ``/dashboard/api/overview``'s queries (``DashboardQueries.overview``) over the last 24 hours,
  over the whole range, and over the whole range for one feature;
- ``/dashboard/api/calls``' query (the newest 25 calls).

The PostgreSQL run writes into a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from keel.monitor.dashboard_queries import DashboardQueries, Filters, queries_for
from keel.monitor.ledger import Ledger, LedgerRow
from keel.monitor.open import open_ledger

POSTGRES_URL = os.environ.get("KEEL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _rows(n: int, now: float, days: float, seed: int = 1) -> Iterator[LedgerRow]:
    rng = random.Random(seed)
    span = days * 86400
    for i in range(n):
        cached = rng.random() < 0.15
        routed = rng.random() < 0.2
        error = rng.random() < 0.02
        llm = None if cached else rng.lognormvariate(5.8, 0.6)
        yield LedgerRow(
            id=f"bench-{i}",
            ts=now - span + span * i / n,
            feature=f"feature-{i % 7}",
            key_id=f"team-{i % 13}",
            model="small" if routed else rng.choice(["large", "medium"]),
            status="error" if error else "ok",
            http_status=502 if error else 200,
            error_code="upstream_error" if error else None,
            input_tokens=rng.randint(50, 2000),
            output_tokens=rng.randint(10, 600),
            cost_usd=0.0 if cached else rng.uniform(1e-5, 3e-3),
            saved_usd=rng.uniform(1e-5, 3e-3) if cached or routed else 0.0,
            latency_ms=(llm or 0.4) + rng.uniform(0.5, 4),
            t_input_ms=rng.uniform(0.05, 1.0),
            t_llm_ms=llm,
            t_validation_ms=rng.uniform(0.02, 0.8),
            cache="exact" if cached else None,
            route="rule:0" if routed else None,
            verdicts=[{"stage": "input.injection", "action": "flag", "reason": "injection.signature"}]
            if rng.random() < 0.1
            else [],
        )


@contextmanager
def _ledger(backend: str, postgres_url: str) -> Iterator[Ledger]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp, open_ledger(Path(tmp) / "ledger.db") as ledger:
            yield ledger
        return
    import psycopg

    schema = f"keel_bench_{uuid.uuid4().hex[:10]}"
    try:
        with open_ledger(f"{postgres_url}?schema={schema}") as ledger:
            yield ledger
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _measure(ledger: Ledger, now: float, days: float, rounds: int) -> list[float]:
    """Median ms of the reference and of each dashboard query, on a filled ledger."""
    q: DashboardQueries = queries_for(ledger)
    since = now - days * 86400 - 1
    day = Filters(since=now - 86400, until=now + 1)
    whole = Filters(since=since, until=now + 1)
    one = Filters(since=since, until=now + 1, feature="feature-3")
    cells = [
        _median_ms(lambda: ledger.summarize(since=since, by="feature"), rounds),
        _median_ms(lambda: q.overview(day), rounds),
        _median_ms(lambda: q.overview(whole), rounds),
        _median_ms(lambda: q.overview(one), rounds),
        _median_ms(lambda: q.recent(whole, 25), rounds),
    ]
    close = getattr(q.read, "close", None)
    if close is not None:
        close()
    return cells


def main() -> None:
    """Parse the options, fill each ledger, time the queries, print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    ap.add_argument("--postgres-url", default=POSTGRES_URL)
    args = ap.parse_args()
    now = time.time()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{args.rows:,} rows over {args.days:g} days; median of {args.rounds} runs, ms\n")
    print(
        "| backend | keel usage (reference) | overview 24 h | overview whole range"
        " | overview, one feature | newest 25 calls |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for backend in args.backend or ["sqlite", "postgresql"]:
        with _ledger(backend, args.postgres_url) as ledger:
            batch: list[LedgerRow] = []
            for row in _rows(args.rows, now, args.days):
                batch.append(row)
                if len(batch) == 10_000:
                    ledger.write(batch)
                    batch = []
            ledger.write(batch)
            cells = _measure(ledger, now, args.days, args.rounds)
            print(f"| {backend} | " + " | ".join(f"{c:,.0f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
