"""``keel tail``: the last calls, then each new one as it is recorded, in a real subprocess."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from keel.monitor.ledger import LedgerRow
from keel.monitor.sqlite_ledger import SQLiteLedger

pytestmark = pytest.mark.integration

KEEL = str(Path(sys.executable).parent / "keel")
KEEL_YAML = """\
models: [{name: up, provider: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini}]
features: [{name: support, model: up}, {name: extract, model: up}]
storage: {path: ledger.db}
"""


def _row(id: str, feature: str = "support", **kw: object) -> LedgerRow:
    base: dict[str, object] = {
        "ts": time.time(),
        "model": "up",
        "input_tokens": 12,
        "output_tokens": 3,
        "cost_usd": 0.0000036,
        "latency_ms": 41.0,
    }
    return LedgerRow(id=id, feature=feature, **{**base, **kw})  # type: ignore[arg-type]


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "keel.yaml"
    path.write_text(KEEL_YAML)
    return path


class _Reader:
    """The lines a process prints, read on a thread so a test can wait for them with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._lines: queue.Queue[str] = queue.Queue()
        self._stdout = proc.stdout
        self._thread = threading.Thread(
            target=lambda: [self._lines.put(x) for x in self._stdout], daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Wait for the end of the output, then close the pipe (call after the process ended)."""
        self._thread.join(10)
        self._stdout.close()

    def next(self, n: int, timeout: float = 20) -> list[str]:
        """The next ``n`` lines (fails after ``timeout`` seconds without them)."""
        deadline = time.monotonic() + timeout
        out: list[str] = []
        while len(out) < n:
            try:
                out.append(self._lines.get(timeout=max(deadline - time.monotonic(), 0.01)).rstrip("\n"))
            except queue.Empty:
                pytest.fail(f"only {out} within {timeout}s")
        return out


def test_tail_prints_the_last_calls_then_follows_new_ones_until_ctrl_c(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        ledger.write([_row(f"old{i}") for i in range(5)])
        proc = subprocess.Popen(
            [KEEL, "tail", "--config", str(config), "-n", "2", "--interval", "0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TZ": "UTC"},
        )
        reader = _Reader(proc)
        try:
            first = reader.next(2)
            assert [line.split()[-1] for line in first] == ["old3", "old4"]
            ledger.write([_row("new1", cache="exact", key_id="team-a"), _row("new2", status="error")])
            second = reader.next(2)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
            reader.close()
            assert proc.stderr is not None
            err = proc.stderr.read()
            proc.stderr.close()
    assert proc.returncode == 0, err
    new1, new2 = second
    assert new1.endswith("new1")
    assert "support  up  ok  12 in 3 out  $0.000004  41 ms  cache=exact  key=team-a" in new1
    assert "  error 200  " in new2
    assert err == ""


def test_tail_filters_by_feature_and_without_follow_exits(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with SQLiteLedger(tmp_path / "ledger.db") as ledger:
        ledger.write([_row("s1"), _row("x1", feature="extract"), _row("s2")])
    done = subprocess.run(
        [KEEL, "tail", "--config", str(config), "--feature", "extract", "--no-follow"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split()[-1] for line in done.stdout.splitlines()] == ["x1"]


def test_tail_of_a_ledger_nothing_was_recorded_in_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        [KEEL, "tail", "--config", str(_config(tmp_path)), "--no-follow"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("no calls recorded yet (ledger: ")


def test_a_bad_option_is_one_line_on_stderr(tmp_path: Path) -> None:
    done = subprocess.run(
        [KEEL, "tail", "--config", str(_config(tmp_path)), "--lines", "-3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["keel: error: --lines -3: expected 0 or more"]
