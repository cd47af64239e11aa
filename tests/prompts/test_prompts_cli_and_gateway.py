"""``keel prompts`` in a subprocess, and a label moved under a running ``keel serve`` (no restart)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import openai
import pytest
from tests.gateway import KEEL, Gateway
from typer.testing import CliRunner, Result

from keel.cli.main import app
from keel.errors import KeelError
from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

V1 = "system: 'You help customers of {{ product }}.'\nvariables: {product: {default: Acme}}\n"
V2 = V1.replace("{{ product }}.", "{{ product }}. Answer in one line.")


def _keel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEEL, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def _run(*args: str, cwd: Path) -> Result:
    """The command in process (each ``keel`` subprocess costs seconds of imports)."""
    return CliRunner().invoke(app, [*args, "--config", str(cwd / "keel.yaml")], catch_exceptions=True)


def _project(tmp_path: Path, base_url: str = "http://127.0.0.1:9/v1") -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "support.yaml").write_text(V1)
    (tmp_path / "keel.yaml").write_text(
        f"""\
models:
  - {{name: up, provider: openai, base_url: "{base_url}", price: {{input_per_mtok: 1, output_per_mtok: 1}}}}
features:
  - {{name: support, model: up, prompt: support@production}}
storage: {{path: keel.db}}
ledger: {{flush_interval: 0.05}}
prompts: {{refresh_seconds: 0.1}}
"""
    )
    return tmp_path


def test_prompts_commands_list_show_diff_label_history(tmp_path: Path) -> None:
    cwd = _project(tmp_path)
    listed = _run("prompts", "list", cwd=cwd)
    assert listed.exit_code == 0, listed.output
    assert "support" in listed.stdout and "production→v1" in listed.stdout
    (cwd / "prompts" / "support.yaml").write_text(V2)  # an edit: the next command registers v2
    shown = _run("prompts", "show", "support@latest", cwd=cwd)
    assert shown.stdout.startswith("# support v2 (") and "labels: latest" in shown.stdout
    assert "Answer in one line." in shown.stdout
    diff = _run("prompts", "diff", "support@1", "2", cwd=cwd)
    assert "-system: 'You help customers of {{ product }}.'" in diff.stdout
    assert "+system: 'You help customers of {{ product }}. Answer in one line.'" in diff.stdout
    moved = _run("prompts", "label", "support@2", "production", "--by", "ana", cwd=cwd)
    assert moved.stdout.strip() == "support@production → v2 (was v1)"
    back = _run("prompts", "label", "support@1", "production", cwd=cwd)
    assert back.stdout.strip() == "support@production → v1 (was v2)"
    hist = _run("prompts", "history", "support", cwd=cwd).stdout
    assert "production v1 → v2  by ana" in hist and "production v2 → v1" in hist and "v2 " in hist


def test_prompts_errors_are_one_line(tmp_path: Path) -> None:
    cwd = _project(tmp_path)
    for args, expected in [
        (("prompts", "show", "support@canary"), "no label or version 'canary'"),
        (("prompts", "label", "support@9", "production"), "has no version 9"),
        (("prompts", "label", "support@1", "latest"), "'latest' always means the newest version"),
        (("prompts", "history", "nope"), "no prompt 'nope'"),
    ]:
        r = _run(*args, cwd=cwd)
        assert isinstance(r.exception, KeelError) and expected in str(r.exception) and r.stdout == ""
    r = _keel("prompts", "show", "support@canary", cwd=cwd)  # what the user sees: one line
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1
    assert r.stderr.startswith("keel: error: ") and "no label or version 'canary'" in r.stderr


def test_a_label_move_reaches_the_running_gateway_without_restart(tmp_path: Path) -> None:
    with FakeUpstream() as fake:
        cwd = _project(tmp_path, fake.base_url)
        assert _run("prompts", "list", cwd=cwd).exit_code == 0  # registers v1 (production)
        (cwd / "prompts" / "support.yaml").write_text(V2)
        assert "v2" in _run("prompts", "show", "support@latest", cwd=cwd).stdout
        with Gateway(cwd / "keel.yaml") as gw, openai.OpenAI(base_url=gw.base_url, api_key="x") as client:

            def served() -> str:
                raw = client.chat.completions.with_raw_response.create(
                    model="support", messages=[{"role": "user", "content": "hello"}]
                )
                return raw.headers["x-keel-prompt-version"]

            assert served() == "1"
            moved = _keel("prompts", "label", "support@2", "production", cwd=cwd)
            assert moved.returncode == 0, moved.stderr
            deadline = time.monotonic() + 20
            while (version := served()) != "2" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert version == "2"
            assert served() == "2"
            assert gw.proc.poll() is None  # the same process, never restarted


def test_two_replicas_on_one_postgres_registry_follow_a_label_move(tmp_path: Path, postgres_url: str) -> None:
    with FakeUpstream() as fake:
        cwd = _project(tmp_path, fake.base_url)
        config = (
            (cwd / "keel.yaml")
            .read_text()
            .replace(
                "prompts: {refresh_seconds: 0.1}",
                f'prompts: {{refresh_seconds: 0.1, registry: "{postgres_url}"}}',
            )
        )
        (cwd / "keel.yaml").write_text(config)
        assert _run("prompts", "list", cwd=cwd).exit_code == 0  # v1 (production), in PostgreSQL
        (cwd / "prompts" / "support.yaml").write_text(V2)
        assert "v2" in _run("prompts", "show", "support@latest", cwd=cwd).stdout
        with Gateway(cwd / "keel.yaml") as one, Gateway(cwd / "keel.yaml") as two:
            clients = [openai.OpenAI(base_url=gw.base_url, api_key="x") for gw in (one, two)]

            def served(client: openai.OpenAI) -> str:
                raw = client.chat.completions.with_raw_response.create(
                    model="support", messages=[{"role": "user", "content": "hello"}]
                )
                return raw.headers["x-keel-prompt-version"]

            assert [served(c) for c in clients] == ["1", "1"]
            assert _keel("prompts", "label", "support@2", "production", cwd=cwd).returncode == 0
            deadline = time.monotonic() + 20
            while [served(c) for c in clients] != ["2", "2"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [served(c) for c in clients] == ["2", "2"]
            for c in clients:
                c.close()
