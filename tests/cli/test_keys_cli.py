"""``keel keys create|list|revoke`` in a subprocess: shown once, stored hashed, listed without secrets."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from tests.gateway import KEEL

from keel.keys import hash_key

pytestmark = pytest.mark.integration

CONFIG = """\
models:
  - {name: small, provider: openai, base_url: "http://127.0.0.1:9/v1"}
  - {name: big, provider: openai, base_url: "http://127.0.0.1:9/v1"}
features:
  - {name: support, model: small}
  - {name: extract, model: big, fallbacks: [small]}
keys:
  - {name: from-yaml, hash: "sha256:%s"}
storage: {path: state/keel.db}
""" % ("0" * 64)


def keel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEEL, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "keel.yaml").write_text(CONFIG)
    return tmp_path


def _one_line_error(out: subprocess.CompletedProcess[str], text: str) -> None:
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("keel: error: "), out.stderr
    assert text in out.stderr, out.stderr


def test_create_prints_the_key_once_and_stores_only_its_hash(project: Path) -> None:
    out = keel(
        "keys", "create", "--name", "app", "--features", "support,extract", "--models", "small,big",
        "--budget-usd", "10/day", "--budget-usd", "200/month", "--rpm", "60", "--tpm", "5000", "--admin",
        cwd=project,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("sk-keel-") and out.stdout == key + "\n"
    assert key not in out.stderr and "only time it is shown" in out.stderr and key[:12] in out.stderr
    db = project / "state" / "keel.db"
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name, hash, prefix FROM api_keys").fetchall()
    assert rows == [("app", hash_key(key), key[:12])]

    listed = keel("keys", "list", "--format", "json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["name"] == "app" and entry["prefix"] == key[:12] and entry["admin"] is True
    assert entry["features"] == ["support", "extract"] and entry["models"] == ["small", "big"]
    assert entry["budget"] == {"usd_per_day": 10.0, "usd_per_month": 200.0}
    assert entry["rate_limit"] == {"rpm": 60, "tpm": 5000}
    assert entry["created_at"].endswith("Z") and entry["revoked_at"] is None
    table = keel("keys", "list", cwd=project)
    assert "app" in table.stdout and key[:12] in table.stdout and "$10/day" in table.stdout
    for shown in (listed.stdout, table.stdout, table.stderr):
        assert key not in shown and key[12:20] not in shown and hash_key(key)[7:] not in shown


def test_revoke_removes_a_key_from_the_list_but_list_all_still_shows_it(project: Path) -> None:
    assert keel("keys", "create", "--name", "old", cwd=project).returncode == 0
    assert keel("keys", "create", "--name", "keep", cwd=project).returncode == 0
    out = keel("keys", "revoke", "old", cwd=project)
    assert out.returncode == 0 and out.stdout == "" and "revoked key 'old'" in out.stderr
    active = json.loads(keel("keys", "list", "-f", "json", cwd=project).stdout)
    assert [k["name"] for k in active] == ["keep"]
    every = json.loads(keel("keys", "list", "--all", "-f", "json", cwd=project).stdout)
    assert {k["name"]: k["revoked_at"] is not None for k in every} == {"old": True, "keep": False}
    again = keel("keys", "create", "--name", "old", cwd=project)  # the name is free again
    assert again.returncode == 0, again.stderr
    _one_line_error(keel("keys", "revoke", "nobody", cwd=project), "no active key named 'nobody'")


def test_an_empty_store_says_so_and_is_not_created_by_listing(project: Path) -> None:
    out = keel("keys", "list", cwd=project)
    assert out.returncode == 0 and "no active keys in" in out.stdout
    assert json.loads(keel("keys", "list", "-f", "json", cwd=project).stdout) == []
    assert not (project / "state").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--features", "suport"], "--features: unknown feature 'suport'; did you mean 'support'?"),
        (["--models", "huge"], "--models: unknown model 'huge'"),
        (["--budget-usd", "10/week"], "--budget-usd '10/week': expected AMOUNT/day or AMOUNT/month"),
        (["--budget-usd", "1/day", "--budget-usd", "2/day"], "the day budget is given twice"),
        (["--rpm", "0"], "--rpm"),
    ],
)
def test_bad_options_are_one_line_errors_and_create_nothing(
    project: Path, args: list[str], message: str
) -> None:
    _one_line_error(keel("keys", "create", "--name", "app", *args, cwd=project), message)
    assert not (project / "state").exists()


def test_duplicate_names_are_refused_among_active_store_keys_and_keel_yaml_keys(project: Path) -> None:
    assert keel("keys", "create", "--name", "app", cwd=project).returncode == 0
    _one_line_error(keel("keys", "create", "--name", "app", cwd=project), "an active key named 'app'")
    _one_line_error(
        keel("keys", "create", "--name", "from-yaml", cwd=project), "already has a key named 'from-yaml'"
    )
    _one_line_error(keel("keys", "create", "--name", "no spaces", cwd=project), "invalid key name")
    assert len(json.loads(keel("keys", "list", "-f", "json", cwd=project).stdout)) == 1
