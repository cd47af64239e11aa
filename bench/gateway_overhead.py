"""Added latency of ``keel serve`` over calling ``keel fake-upstream`` directly, side by side in one run.

    .venv/bin/python bench/gateway_overhead.py [--requests 3000] [--concurrency 1 32] [--rounds 3]

Starts one fake upstream and one gateway (ledger on, one worker), then drives both with the same
async HTTP client at each concurrency, alternating direct and gateway rounds so drift hits both
alike. Reports p50/p99 latency of each and the difference (the gateway's added latency), and
requests/s. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

KEEL = str(Path(sys.executable).parent / "keel")
BODY = (
    b'{"model":"bench","messages":[{"role":"user","content":"Summarise our refund policy in one sentence."}],'
    b'"max_tokens":32}'
)


@dataclass
class Sample:
    """Latencies (ms) and throughput of one round."""

    latencies: list[float]
    seconds: float

    def pct(self, q: float) -> float:
        """The q-quantile latency in ms."""
        return statistics.quantiles(self.latencies, n=1000, method="inclusive")[int(q * 1000) - 1]

    @property
    def rps(self) -> float:
        """Requests per second over the round."""
        return len(self.latencies) / self.seconds


def start(
    args: list[str], pattern: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start a process and wait for the line that says where it listens."""
    proc = subprocess.Popen(
        args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    deadline = time.monotonic() + 60
    assert proc.stderr is not None and proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline() or proc.stdout.readline()
        match = re.search(pattern, line)
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"could not start {args[:2]}: {proc.stderr.read()}")


def wait_healthy(url: str) -> None:
    """Poll until the gateway answers its health check."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never became healthy")


async def drive(url: str, n: int, concurrency: int) -> Sample:
    """Send n requests with `concurrency` in flight; return their latencies."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                t = time.perf_counter()
                async with session.post(url, data=BODY, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"{url} answered {resp.status}")
                latencies.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Sample(latencies, time.perf_counter() - t0)


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--no-ledger", action="store_true", help="diagnosis only: run the gateway without its ledger"
    )
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        fake, fake_port = start([KEEL, "fake-upstream", "--port", "0"], r"127\.0\.0\.1:(\d+)")
        cfg = Path(tmp) / "keel.yaml"
        cfg.write_text(
            "models:\n  - name: up\n    provider: openai\n"
            f"    base_url: http://127.0.0.1:{fake_port}/v1\n"
            "    price: {input_per_mtok: 0.15, output_per_mtok: 0.6}\n"
            "features:\n  - name: bench\n    model: up\n"
            "storage: {path: ledger.db}\n"
            f"ledger: {{enabled: {'false' if opts.no_ledger else 'true'}}}\n"
        )
        gw, gw_port = start([KEEL, "serve", "--config", str(cfg), "--port", "0"], r"127\.0\.0\.1:(\d+)")
        wait_healthy(f"http://127.0.0.1:{gw_port}/healthz")
        try:
            direct_url = f"http://127.0.0.1:{fake_port}/v1/chat/completions"
            keel_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
            asyncio.run(drive(keel_url, 500, 8))  # warm both paths (imports, pools, caches)
            asyncio.run(drive(direct_url, 500, 8))
            rows = []
            for c in opts.concurrency:
                direct: list[Sample] = []
                via: list[Sample] = []
                for _ in range(opts.rounds):
                    direct.append(asyncio.run(drive(direct_url, opts.requests, c)))
                    via.append(asyncio.run(drive(keel_url, opts.requests, c)))
                rows.append((c, merge(direct), merge(via)))
        finally:
            for proc in (gw, fake):
                proc.terminate()
                proc.wait(timeout=30)
        ledger_rows = 0
        if not opts.no_ledger:
            db = sqlite3.connect(Path(tmp) / "ledger.db")  # after a graceful stop, every row is flushed
            ledger_rows = db.execute("select count(*) from calls").fetchone()[0]
            db.close()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{opts.requests} requests x {opts.rounds} rounds per cell; ledger rows written: {ledger_rows}\n"
    )
    print(
        "| concurrency | direct p50 ms | keel p50 ms | added p50 ms | direct p99 ms | keel p99 ms "
        "| added p99 ms | direct req/s | keel req/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, d, k in rows:
        print(
            f"| {c} | {d.pct(0.5):.3f} | {k.pct(0.5):.3f} | {k.pct(0.5) - d.pct(0.5):.3f} "
            f"| {d.pct(0.99):.3f} | {k.pct(0.99):.3f} | {k.pct(0.99) - d.pct(0.99):.3f} "
            f"| {d.rps:.0f} | {k.rps:.0f} |"
        )


def merge(samples: list[Sample]) -> Sample:
    """All rounds of one cell as one sample."""
    return Sample([x for s in samples for x in s.latencies], sum(s.seconds for s in samples))


if __name__ == "__main__":
    main()
