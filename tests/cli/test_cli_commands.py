"""The CLI in a subprocess, as a user runs it: init, keys, ask, and one-line errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.gateway import KEEL

from keel import Pipeline
from keel.config import load_config
from keel.keys import hash_key
from keel.testing import FakeUpstream
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.integration


def keel(
    *args: str, cwd: Path | None = None, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEEL, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_init_writes_a_working_config_and_prompt_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = keel("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    settings = load_config(tmp_path / "keel.yaml")
    assert [f.name for f in settings.features] == ["support"]
    pipeline = Pipeline(settings, providers={"local": ScriptedProvider("local")}, ledger=False)
    feature = pipeline.features["support"]
    assert feature.prompt is not None and feature.prompt.name == "support"

    again = keel("init", cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "already exist; pass --force" in again.stderr
    assert keel("init", "--force", cwd=tmp_path).returncode == 0
    elsewhere = keel("init", "--config", str(tmp_path / "conf" / "gateway.yaml"))
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert load_config(tmp_path / "conf" / "gateway.yaml").features[0].prompt == "support"
    assert (tmp_path / "conf" / "prompts" / "support.yaml").exists()


def test_keys_generate_prints_a_key_once_and_the_hash_to_configure(tmp_path: Path) -> None:
    out = keel("keys", "generate", "--name", "app", "--features", "support,extract")
    assert out.returncode == 0
    key = out.stdout.strip()
    assert key.startswith("sk-keel-") and len(key) > 40
    assert hash_key(key) in out.stderr and "features: [support, extract]" in out.stderr
    assert key not in out.stderr
    hashed = keel("keys", "hash", stdin=key + "\n")
    assert hashed.stdout.strip() == hash_key(key)


def test_ask_runs_the_pipeline_and_prints_a_cost_line(tmp_path: Path) -> None:
    with FakeUpstream() as fake:
        cfg = tmp_path / "keel.yaml"
        cfg.write_text(
            f"models: [{{name: up, provider: openai, base_url: '{fake.base_url}', "
            "price: {input_per_mtok: 1000, output_per_mtok: 1000}}]\n"
            "features: [{name: support, model: up}]\nstorage: {path: l.db}\n"
        )
        out = keel("ask", "What are your opening hours?", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    summary = out.stderr.strip().splitlines()[-1]
    assert summary.startswith("feature=support model=up tokens=")
    cost = float(summary.split("cost=$")[1].split()[0])
    assert cost > 0
    usage = keel("usage", "--config", str(cfg), "--format", "csv")
    assert usage.returncode == 0 and "support" in usage.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("serve", "--bogus"), "No such option"),
        (("ask",), "Missing argument"),
        (("ask", "hi", "--config", "/nonexistent/keel.yaml"), "no such config file"),
        (("ask", "hi", "--feature", "nope"), "unknown feature 'nope'"),
    ],
)
def test_cli_mistakes_are_one_readable_line(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    (tmp_path / "keel.yaml").write_text(
        "models: [{name: up, provider: openai, base_url: 'http://127.0.0.1:9/v1'}]\n"
        "features: [{name: support, model: up}]\nstorage: {path: l.db}\n"
    )
    out = keel(*args, cwd=tmp_path)
    assert out.returncode in (1, 2)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("keel: error: ") and words in lines[0]


def test_version_and_help() -> None:
    assert keel("--version").stdout.startswith("keel ")
    helptext = keel("--help").stdout
    for command in ("serve", "ask", "usage", "init", "keys", "fake-upstream"):
        assert command in helptext
