"""``keel fake-upstream``: the real console script in a subprocess, the way CI and benchmarks run it."""

from __future__ import annotations

import importlib
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

KEEL = str(Path(sys.executable).parent / "keel")


def _cli_missing() -> str | None:
    try:
        importlib.import_module("keel.cli.main")
    except ImportError as exc:  # other command modules may still be in the works
        return f"keel.cli.main does not import yet: {exc}"
    return None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_cli_missing() is not None, reason=_cli_missing() or ""),
]


@contextmanager
def fake_upstream(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``keel fake-upstream --port 0 ARGS`` and the base URL it says it listens on."""
    proc = subprocess.Popen(
        [KEEL, "fake-upstream", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)$", line.strip())
        assert match, f"unexpected first line: {line!r}"
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def post(url: str, body: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
    """POST JSON; the status, headers and body whatever the status."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_serves_with_its_knobs_and_stops_cleanly_on_a_signal(sig: signal.Signals) -> None:
    with fake_upstream("--error-rate", "1", "--error-status", "429") as (proc, base_url):
        status, headers, body = post(
            base_url + "/chat/completions", {"messages": [{"role": "user", "content": "x"}]}
        )
        assert status == 429 and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["type"] == "rate_limit_error"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err


def test_a_plain_run_answers_chat_completions() -> None:
    with fake_upstream("--no-usage", "--model", "m1") as (proc, base_url):
        status, _, body = post(
            base_url + "/chat/completions", {"messages": [{"role": "user", "content": "ping"}]}
        )
        reply = json.loads(body)
        assert status == 200 and "ping" in reply["choices"][0]["message"]["content"]
        assert "usage" not in reply and reply["model"] == "m1"
        proc.terminate()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--error-rate", "1.5"), "--error-rate must be between 0 and 1"),
        (("--error-status", "302"), "--error-status must be a 4xx or 5xx status"),
        (("--error-rate", "0.7", "--timeout-rate", "0.7"), "must be at most 1"),
        (("--hang-ms", "0"), "--hang-ms must be > 0"),
    ],
)
def test_bad_knobs_are_one_readable_line(args: tuple[str, ...], words: str) -> None:
    out = subprocess.run(
        [KEEL, "fake-upstream", "--port", "0", *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("keel: error: ") and words in lines[0]
