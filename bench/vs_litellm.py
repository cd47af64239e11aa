"""keel serve vs LiteLLM's proxy on the same fake upstream, side by side in one run.

    .venv/bin/python bench/vs_litellm.py [--seconds 5] [--rounds 3] [--concurrency 1 16 64]

Starts one ``keel fake-upstream`` and, both pointing at it with one worker each, ``keel serve`` (ledger
on, the default Input, LLM and Monitoring stages, one API key) and LiteLLM's proxy (no database, no
admin UI, no telemetry, error-level logging, its master key). LiteLLM is installed by this script into
its own virtualenv, ``bench/.litellm-venv`` (git-ignored, reused while it holds the pinned version); it
is never a dependency of keel. The same async client (aiohttp, keep-alive) drives the upstream directly,
keel and LiteLLM at each concurrency, in time-bounded rounds whose order rotates so drift hits all three
alike. Every request carries a distinct prompt, so neither gateway can answer from a cache or share an
upstream call. Reports requests/s, p50/p99 latency, the latency each gateway adds over a direct call,
each server's CPU time per request, the keel/LiteLLM ratios and the resident memory of each gateway.
Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import aiohttp

from keel.keys import hash_key

# The newest 1.108.x whose pinned proxy dependencies the package index serves: 1.108.8 and later pin
# post-releases of litellm-enterprise / litellm-proxy-extras that are not on it.
LITELLM_VERSION = "1.108.7"
LITELLM_VENV = Path(__file__).resolve().parent / ".litellm-venv"
KEEL = str(Path(sys.executable).parent / "keel")
BODY = (
    '{"model":"bench","messages":[{"role":"user","content":"Summarise our refund policy in one sentence. '
    '(request %d)"}],"max_tokens":32}'
)
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    """A failure the benchmark reports in one line before it exits non-zero."""


@dataclass
class Sample:
    """Latencies (ms) and throughput of one or more rounds."""

    latencies: list[float]
    seconds: float
    cpu: float = 0.0  # CPU seconds the server spent meanwhile

    def pct(self, q: float) -> float:
        """The q-quantile latency in ms."""
        return statistics.quantiles(self.latencies, n=1000, method="inclusive")[int(q * 1000) - 1]

    @property
    def rps(self) -> float:
        """Requests per second over the rounds."""
        return len(self.latencies) / self.seconds

    @property
    def cpu_ms(self) -> float:
        """The server's CPU time per request, in ms."""
        return self.cpu * 1000 / len(self.latencies)


@dataclass
class Target:
    """One server the client drives."""

    name: str
    url: str
    pid: int
    start_rss_mb: float = 0.0


# -- LiteLLM's own virtualenv ----------------------------------------------------------------------


def ensure_litellm(venv: Path, wanted: str) -> Path:
    """The ``litellm`` executable of ``venv``, installing ``litellm[proxy]==wanted`` there if needed."""
    python = venv / "bin" / "python"
    if installed_version(python) == wanted:
        return venv / "bin" / "litellm"
    spec = f"litellm[proxy]=={wanted}"
    print(f"installing {spec} into {venv} (once; about a minute)", file=sys.stderr)
    if not python.exists():
        run_checked([sys.executable, "-m", "venv", str(venv)], f"could not create a virtualenv at {venv}")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run_checked([*pip, spec], f"could not install {spec} into {venv}")
    if installed_version(python) != wanted:
        raise BenchError(f"{spec} did not install into {venv} (found {installed_version(python)})")
    return venv / "bin" / "litellm"


def installed_version(python: Path) -> str | None:
    """The litellm version in the virtualenv of ``python``, None when it or its proxy extras are missing."""
    if not python.exists():
        return None
    probe = "import importlib.metadata as m; m.version('litellm-proxy-extras'); print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def run_checked(args: list[str], what: str) -> None:
    """Run a set-up command; on failure raise with the last error line it printed."""
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        raise BenchError(f"{what}: {(errors or lines or ['no output'])[-1].strip()}")


# -- the servers ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the benchmark dies, however it dies."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Servers:
    """The child processes of one run; every one is stopped on exit, Ctrl-C included."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``args`` in its own process group, its output in ``<workdir>/<name>.log``."""
        with open(self.log(name), "wb") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> Path:
        """Where the output of ``name`` goes."""
        return self.workdir / f"{name.lower().replace(' ', '-')}.log"

    def listening_port(self, name: str, pattern: str, timeout: float = 60) -> int:
        """Wait for ``name`` to print the line that says where it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log(name).read_text(errors="replace"))
            if match:
                return int(match.group(1))
            self.check_alive(name)
            time.sleep(0.05)
        raise BenchError(
            f"{name} printed no listening address within {timeout:.0f} s: {self.last_line(name)}"
        )

    def wait_healthy(self, name: str, url: str, timeout: float = 120) -> None:
        """Poll ``url`` until it answers 200, failing early when the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive(name)
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise BenchError(f"{name} was not healthy at {url} within {timeout:.0f} s: {self.last_line(name)}")

    def check_alive(self, name: str) -> None:
        """Raise when ``name`` has exited."""
        code = self.procs[name].poll()
        if code is not None:
            raise BenchError(f"{name} exited with code {code}: {self.last_line(name)}")

    def last_line(self, name: str) -> str:
        """The most telling line of a server's output: its last error, else its last line."""
        text = self.log(name).read_text(errors="replace") if self.log(name).exists() else ""
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln]
        errors = [ln for ln in lines if re.search(r"error|refused|exception", ln, re.IGNORECASE)]
        return (errors or lines or ["(no output)"])[-1][:300] + f" (log: {self.log(name)})"

    def stop(self, name: str, timeout: float = 30) -> None:
        """Stop ``name`` and its process group gracefully, then by force."""
        proc = self.procs.pop(name)
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        """Stop every server still running, the last started first."""
        for name in reversed(list(self.procs)):
            self.stop(name)


def free_port() -> int:
    """A TCP port nothing listens on now (for LiteLLM, which cannot pick one itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keel_config(path: Path, upstream: int, key: str) -> None:
    """The keel.yaml of the run: one model on the fake upstream, one feature, one key, the ledger on."""
    path.write_text(
        "models:\n  - name: up\n    provider: openai\n"
        f"    base_url: http://127.0.0.1:{upstream}/v1\n"
        "    price: {input_per_mtok: 0.15, output_per_mtok: 0.6}\n"
        "features:\n  - name: bench\n    model: up\n"
        f"keys:\n  - name: bench\n    hash: '{hash_key(key)}'\n"
        "storage: {path: ledger.db}\n"
        "ledger: {enabled: true}\n"
    )


def litellm_config(path: Path, upstream: int, key: str) -> None:
    """LiteLLM's config of the run: the same upstream as an OpenAI-compatible model, nothing else on."""
    config = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": "openai/bench",
                    "api_base": f"http://127.0.0.1:{upstream}/v1",
                    "api_key": "sk-upstream-unused",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "set_verbose": False, "json_logs": False},
        "general_settings": {"master_key": key, "disable_spend_logs": True},
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML


def litellm_env() -> dict[str, str]:
    """The environment of LiteLLM's proxy: no database or Redis, no network at start, quiet."""
    env = {k: v for k, v in os.environ.items() if not re.match(r"(DATABASE_URL|REDIS_|LITELLM_)", k)}
    return env | {
        "LITELLM_MODE": "PRODUCTION",  # no .env loading
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # the packaged price list, not a download
        "LITELLM_TELEMETRY_DISABLED": "true",
        "LITELLM_LOG": "ERROR",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
        "NO_REDOC": "True",
    }


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    pids = [pid]
    for p in pids:  # grows as children are found
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                pids += [int(c) for c in children.read_text().split()]
            except OSError:
                continue
    return pids


def rss_mb(pid: int, field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak) of a process and its descendants, in MiB."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its descendants so far."""
    ticks = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of proc(5) stat
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# -- the load -------------------------------------------------------------------------------------


async def drive(target: Target, key: str, concurrency: int, seconds: float) -> Sample:
    """Keep ``concurrency`` requests in flight for ``seconds``; return their latencies."""
    latencies: list[float] = []
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    counter = iter(range(10**12))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(deadline: float) -> None:
            while time.perf_counter() < deadline:
                body = (BODY % next(counter)).encode()
                t = time.perf_counter()
                async with session.post(target.url, data=body, headers=headers) as resp:
                    text = await resp.read()
                    if resp.status != 200:
                        raise BenchError(f"{target.name} answered {resp.status}: {text[:200]!r}")
                latencies.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(t0 + seconds) for _ in range(concurrency)))
        return Sample(latencies, time.perf_counter() - t0)


def merge(samples: list[Sample]) -> Sample:
    """All rounds of one cell as one sample."""
    return Sample(
        [x for s in samples for x in s.latencies],
        sum(s.seconds for s in samples),
        sum(s.cpu for s in samples),
    )


def measure(
    targets: list[Target], key: str, concurrency: list[int], seconds: float, rounds: int
) -> dict[int, list[Sample]]:
    """Per concurrency, one merged sample per target, rounds rotating the order of the targets."""
    for target in targets:  # warm every path: lazy imports, connection pools
        asyncio.run(drive(target, key, 8, 2.0))
    results: dict[int, list[Sample]] = {}
    for c in concurrency:
        per_target: list[list[Sample]] = [[] for _ in targets]
        for r in range(rounds):
            for i in [(r + j) % len(targets) for j in range(len(targets))]:
                cpu_before = cpu_seconds(targets[i].pid)
                sample = asyncio.run(drive(targets[i], key, c, seconds))
                sample.cpu = cpu_seconds(targets[i].pid) - cpu_before
                per_target[i].append(sample)
        results[c] = [merge(s) for s in per_target]
        for target, samples in zip(targets, per_target, strict=True):
            rounds_rps = " ".join(f"{x.rps:.0f}" for x in samples)
            print(f"  c={c} {target.name}: req/s per round {rounds_rps}", file=sys.stderr)
    return results


# -- the run --------------------------------------------------------------------------------------


def run(opts: argparse.Namespace, workdir: Path) -> None:
    """Install, start, measure, stop; print the report."""
    litellm = ensure_litellm(opts.litellm_venv, opts.litellm_version)
    key = "sk-bench-" + secrets.token_hex(24)
    load = os.getloadavg()[0]
    servers = Servers(workdir)
    try:
        upstream_proc = servers.start("keel fake-upstream", [KEEL, "fake-upstream", "--port", "0"])
        upstream = servers.listening_port("keel fake-upstream", r"127\.0\.0\.1:(\d+)")

        keel_config(workdir / "keel.yaml", upstream, key)
        keel = servers.start("keel serve", [KEEL, "serve", "--config", "keel.yaml", "--port", "0"])
        keel_port = servers.listening_port("keel serve", r"127\.0\.0\.1:(\d+)")
        servers.wait_healthy("keel serve", f"http://127.0.0.1:{keel_port}/healthz")

        litellm_config(workdir / "litellm.yaml", upstream, key)
        lite_port = free_port()
        lite = servers.start(
            "LiteLLM proxy",
            [
                str(litellm),
                "--config",
                "litellm.yaml",
                "--host",
                "127.0.0.1",
                "--port",
                str(lite_port),
                "--num_workers",
                "1",
            ],
            env=litellm_env(),
        )
        servers.wait_healthy("LiteLLM proxy", f"http://127.0.0.1:{lite_port}/health/liveliness")

        path = "/v1/chat/completions"
        targets = [
            Target("direct", f"http://127.0.0.1:{upstream}{path}", upstream_proc.pid),
            Target("keel serve", f"http://127.0.0.1:{keel_port}{path}", keel.pid),
            Target("LiteLLM proxy", f"http://127.0.0.1:{lite_port}{path}", lite.pid),
        ]
        for target in targets:
            smoke_test(target, key)
            target.start_rss_mb = rss_mb(target.pid, "VmRSS")
        print(f"measuring {opts.seconds:g} s x {opts.rounds} rounds per cell", file=sys.stderr)
        wall, busy, ours = time.monotonic(), machine_busy_seconds(), cpu_seconds(os.getpid())
        results = measure(targets, key, opts.concurrency, opts.seconds, opts.rounds)
        others = machine_busy_seconds() - busy - (cpu_seconds(os.getpid()) - ours)
        others_cores = max(others, 0.0) / (time.monotonic() - wall)
        peaks = {t.name: rss_mb(t.pid, "VmHWM") for t in targets}
        for name in ("LiteLLM proxy", "keel serve"):
            servers.check_alive(name)
            servers.stop(name)  # keel flushes its ledger on a graceful stop
    finally:
        servers.stop_all()
    db = sqlite3.connect(workdir / "ledger.db")
    ledger_rows = db.execute("select count(*) from calls").fetchone()[0]
    db.close()
    report(opts, targets, results, peaks, ledger_rows, (load, others_cores))


def smoke_test(target: Target, key: str) -> None:
    """One request, checked for a 200 and the upstream's answer, before any timing."""
    req = urllib.request.Request(
        target.url,
        data=(BODY % 0).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as exc:
        raise BenchError(f"{target.name} answered {exc.code}: {exc.read()[:200]!r}") from exc
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise BenchError(f"{target.name} gave no chat completion: {exc}") from exc
    if not answer.startswith("You said: "):
        raise BenchError(f"{target.name} answered something the fake upstream never says: {answer[:100]!r}")


def report(
    opts: argparse.Namespace,
    targets: list[Target],
    results: dict[int, list[Sample]],
    peaks: dict[str, float],
    ledger_rows: int,
    load: tuple[float, float],
) -> None:
    """Print the Markdown for docs/benchmarks.md."""
    mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    print(
        f"\nMeasured {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"{mem_gib:.0f} GiB, Python {platform.python_version()}; keel {version('keel')}, LiteLLM "
        f"{opts.litellm_version} (litellm[proxy], uvicorn, one worker). {opts.seconds:g} s x {opts.rounds} "
        f"rounds per cell; ledger rows written by keel: {ledger_rows}. Load average before the run "
        f"{load[0]:.2f}; other processes used {load[1]:.2f} cores during the measurement.\n"
    )
    print(
        "| concurrency | server | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| server CPU ms/request |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for c, samples in results.items():
        direct = samples[0]
        for target, s in zip(targets, samples, strict=True):
            added = "– | –"
            if s is not direct:
                added = f"{s.pct(0.5) - direct.pct(0.5):.3f} | {s.pct(0.99) - direct.pct(0.99):.3f}"
            print(
                f"| {c} | {target.name} | {s.rps:,.0f} | {s.pct(0.5):.3f} | {s.pct(0.99):.3f} | {added} "
                f"| {s.cpu_ms:.3f} |"
            )
    print("\n| concurrency | keel ÷ LiteLLM req/s | LiteLLM added p50 ÷ keel added p50 |")
    print("|---:|---:|---:|")
    for c, (direct, keel, lite) in results.items():
        keel_added = keel.pct(0.5) - direct.pct(0.5)
        lite_added = lite.pct(0.5) - direct.pct(0.5)
        latency_ratio = f"{lite_added / keel_added:.1f}×" if keel_added > 0 else "–"
        print(f"| {c} | **{keel.rps / lite.rps:.1f}×** | {latency_ratio} |")
    print("\n| server | RSS after start-up MiB | peak RSS MiB |")
    print("|---|---:|---:|")
    for target in targets[1:]:
        print(f"| {target.name} | {target.start_rss_mb:.0f} | {peaks[target.name]:.0f} |")
    if 1 in results:
        direct, keel, lite = results[1]
        ratio = keel.rps / lite.rps
        keel_added = keel.pct(0.5) - direct.pct(0.5)
        print(
            f"\nGoals at concurrency 1: keel at least 10x LiteLLM's requests/s: "
            f"{'met' if ratio >= 10 else 'NOT met'} ({ratio:.1f}x); keel adds under 1 ms at p50: "
            f"{'met' if keel_added < 1 else 'NOT met'} ({keel_added:.3f} ms)."
        )


def main() -> None:
    """Parse the options, run, and turn failures and Ctrl-C into a one-line message and an exit code."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of one round of one server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--litellm-version", default=LITELLM_VERSION)
    ap.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    opts = ap.parse_args()
    if opts.seconds <= 0 or opts.rounds < 1 or min(opts.concurrency) < 1:
        ap.error("--seconds must be > 0, --rounds and --concurrency >= 1")
    if sys.platform != "linux":
        sys.exit("vs_litellm: error: Linux only (memory is read from /proc)")
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a kill: stop the servers, then exit
        signal.signal(sig, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="keel-vs-litellm-"))
    try:
        run(opts, workdir)
    except BenchError as exc:
        sys.exit(f"vs_litellm: error: {exc}")  # the work directory stays, for the logs it names
    except KeyboardInterrupt:
        shutil.rmtree(workdir, ignore_errors=True)
        print("vs_litellm: interrupted; every server it started is stopped", file=sys.stderr)
        sys.exit(130)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
