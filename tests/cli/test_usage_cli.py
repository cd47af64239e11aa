"""``keel usage``: the report a user reads, in process (this command alone) and through the console script."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keel.cli import usage as usage_command
from keel.config import load_config
from keel.errors import InvalidRequest
from keel.monitor.ledger import LedgerRow
from keel.monitor.sqlite_ledger import SQLiteLedger

KEEL = str(Path(sys.executable).parent / "keel")
KEEL_YAML = """\
models: [{name: local, provider: llamacpp}]
features: [{name: support, model: local}]
storage: {path: ledger.db}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "keel.yaml"
    path.write_text(KEEL_YAML)
    try:
        load_config(path)
    except ModuleNotFoundError as exc:
        pytest.skip(f"keel.yaml cannot load yet (a provider module is still being written): {exc}")
    return path


def _fill(config: Path) -> None:
    now = time.time()
    with SQLiteLedger(config.parent / "ledger.db") as ledger:
        ledger.write(
            [
                LedgerRow(
                    id="1", ts=now - 60, feature="support", model="local", key_id="team-a", input_tokens=812,
                    output_tokens=164, cost_usd=0.000221, latency_ms=410.0,
                ),
                LedgerRow(
                    id="2", ts=now - 30, feature="support", model="local", key_id="team-b", input_tokens=100,
                    output_tokens=20, cost_usd=0.0001, latency_ms=200.0, status="error", http_status=502,
                ),
                LedgerRow(
                    id="3", ts=now - 20, feature="extract", model="local", key_id="team-a", cost_usd=0.00005,
                    status="blocked", http_status=400,
                ),
                LedgerRow(id="old", ts=now - 3 * 86400, feature="support", cost_usd=5.0),
            ]
        )  # fmt: skip


# -- in process: a Typer app with only this command ----------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """keel (only the usage command)."""

    usage_command.register(app)
    return app


def invoke(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(_app(), ["usage", *args])
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output, exc


@pytest.mark.unit
def test_usage_prints_a_table_per_feature_for_the_last_day(config: Path) -> None:
    _fill(config)
    code, out, exc = invoke("--config", str(config))
    assert (code, exc) == (0, None)
    support = next(line for line in out.splitlines() if "support" in line)
    assert "0.000321" in support  # the 3-day-old row is outside the default 24h window
    assert "912" in support
    assert "extract" in out
    assert "total" in out


@pytest.mark.unit
def test_usage_groups_by_key_as_csv(config: Path) -> None:
    _fill(config)
    code, out, _ = invoke("--config", str(config), "--by", "key", "--format", "csv")
    assert code == 0
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(out))}
    assert set(rows) == {"team-a", "team-b"}
    assert (rows["team-a"]["calls"], rows["team-a"]["blocked"], rows["team-b"]["errors"]) == ("2", "1", "1")


@pytest.mark.unit
def test_usage_as_json_over_a_week_by_model(config: Path) -> None:
    _fill(config)
    code, out, _ = invoke("--config", str(config), "--since", "7d", "--by", "model", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["by"] == "model"
    assert [(g["model"], g["calls"]) for g in doc["groups"]] == [(None, 1), ("local", 3)]


@pytest.mark.unit
def test_usage_before_any_call_says_so_and_creates_nothing(config: Path) -> None:
    code, out, _ = invoke("--config", str(config))
    assert code == 0
    assert out.strip() == f"no calls recorded yet (ledger: {config.parent / 'ledger.db'})"
    assert not (config.parent / "ledger.db").exists()


@pytest.mark.unit
def test_usage_with_no_call_in_the_window_says_since_when(config: Path) -> None:
    _fill(config)
    code, out, _ = invoke("--config", str(config), "--since", "5s")
    assert code == 0
    assert out.startswith("no calls recorded since ")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since 'yesterday': expected a duration"),
        (("--by", "tenant"), "--by 'tenant': expected one of feature, model, key"),
        (("--format", "xml"), "--format 'xml': expected one of table, csv, json"),
    ],
)
def test_bad_options_raise_one_readable_request_error(args: tuple[str, ...], message: str) -> None:
    code, _, exc = invoke(*args)
    assert code != 0
    assert isinstance(exc, InvalidRequest)
    assert str(exc).startswith(message)


# -- the real console script ---------------------------------------------------------------------


@cache
def _cli_import_problem() -> str | None:
    done = subprocess.run([sys.executable, "-c", "import keel.cli.main"], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    errors = [line for line in done.stderr.splitlines() if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return f"`import keel.cli.main` fails (modules still being written): {(errors or ['?'])[-1]}"


@pytest.fixture
def keel(config: Path) -> Path:
    problem = _cli_import_problem()
    if problem:
        pytest.skip(problem)
    return config


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEEL, "usage", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.integration
def test_keel_usage_prints_the_table(keel: Path) -> None:
    _fill(keel)
    done = run("--config", str(keel))
    assert done.returncode == 0, done.stderr
    assert "support" in done.stdout
    assert "0.000321" in done.stdout


@pytest.mark.integration
def test_keel_usage_prints_valid_csv_and_json(keel: Path) -> None:
    _fill(keel)
    as_csv = run("--config", str(keel), "--format", "csv")
    as_json = run("--config", str(keel), "--format", "json", "--by", "key")
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_json.returncode == 0, as_json.stderr
    assert {r["feature"] for r in csv.DictReader(io.StringIO(as_csv.stdout))} == {"support", "extract"}
    assert {g["key"] for g in json.loads(as_json.stdout)["groups"]} == {"team-a", "team-b"}


@pytest.mark.integration
def test_keel_usage_before_any_call(keel: Path) -> None:
    done = run("--config", str(keel))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"no calls recorded yet (ledger: {keel.parent / 'ledger.db'})"


@pytest.mark.integration
def test_keel_usage_with_a_bad_since_prints_one_line_and_fails(keel: Path) -> None:
    done = run("--config", str(keel), "--since", "yesterday")
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("keel: error: --since 'yesterday': expected a duration")


@pytest.mark.unit
def test_usage_shows_latency_per_layer_and_what_cache_and_routing_saved(config: Path) -> None:
    now = time.time()
    with SQLiteLedger(config.parent / "ledger.db") as ledger:
        ledger.write(
            [
                LedgerRow(
                    id=f"r{i}", ts=now - 60, feature="support", model="local", latency_ms=100.0 + i,
                    t_input_ms=1.0 + i, t_llm_ms=90.0 + i, t_validation_ms=0.5, ttft_ms=20.0 + i,
                    cost_usd=0.001, saved_usd=0.0004,  # routed to a cheaper model than the baseline
                )
                for i in range(11)
            ]
            + [LedgerRow(id="hit", ts=now - 30, feature="support", cache="exact", saved_usd=0.002)]
        )  # fmt: skip
    code, out, exc = invoke("--config", str(config), "--format", "json")
    assert (code, exc) == (0, None)
    (support,) = json.loads(out)["groups"]
    assert support["cache_saved_usd"] == pytest.approx(0.002)
    assert support["route_saved_usd"] == pytest.approx(0.0044)
    assert (support["llm_p50_ms"], support["llm_p95_ms"]) == (pytest.approx(95.0), pytest.approx(99.5))
    assert support["input_p50_ms"] == pytest.approx(6.0)
    assert support["context_p50_ms"] is None
    code, out, exc = invoke("--config", str(config))
    assert (code, exc) == (0, None)
    assert "latency per layer" in out
    layers = out[out.index("latency per layer") :]
    assert "95.0" in layers and "99.5" in layers
