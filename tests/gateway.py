"""Run ``keel serve`` as a real subprocess, the way a user does, and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEEL = str(Path(sys.executable).parent / "keel")


@dataclass
class HTTPReply:
    """Status, headers and body of one HTTP exchange."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> HTTPReply:
    """One HTTP request with the standard library (no client-side validation in the way)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return HTTPReply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return HTTPReply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


class Gateway:
    """A ``keel serve`` subprocess on a free port."""

    def __init__(
        self, config: Path | None, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.config = config
        args = ["--config", str(config)] if config is not None else []
        self.proc = subprocess.Popen(
            [KEEL, "serve", *args, "--port", "0"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd or (config.parent if config else None),
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        match = re.search(r"on (http://[\d.]+:\d+)/v1", line)
        if match is None:
            rest = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"keel serve did not start: {line}{rest}")
        self.url = match.group(1)
        self._log: list[str] = []
        # Drain stderr so a chatty server can never block on a full pipe.
        self._drain = threading.Thread(target=self._log.extend, args=(self.proc.stderr,), daemon=True)
        self._drain.start()
        self.base_url = self.url + "/v1"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if http("GET", self.url + "/healthz").status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("keel serve did not become healthy")

    def stop(self) -> str:
        """Stop gracefully (SIGTERM) and return what it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        drain = getattr(self, "_drain", None)
        if drain is not None:
            drain.join(timeout=5)
            err = "".join(self._log)
        else:
            err = self.proc.stderr.read() if self.proc.stderr else ""
        if self.proc.stderr:
            self.proc.stderr.close()
        return err

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
