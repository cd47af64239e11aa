"""Two ``keel serve`` replicas on one PostgreSQL key store: a key made or revoked once counts on both."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from keel.testing import FakeUpstream
from tests.gateway import Gateway
from tests.pg_schema import fresh_schema
from tests.server.test_gateway_keys import CONFIG, eventually, keel, status

pytestmark = pytest.mark.integration


def test_a_key_created_and_revoked_from_the_cli_counts_on_every_replica(tmp_path: Path) -> None:
    with fresh_schema() as url, FakeUpstream() as fake:
        configs = []
        for i in range(2):  # each replica has its own directory and SQLite ledger, as on two machines
            (tmp_path / f"r{i}").mkdir()
            config = tmp_path / f"r{i}" / "keel.yaml"
            config.write_text(CONFIG.replace("@URL@", fake.base_url) + f"key_store: {url}\n")
            configs.append(config)
        with Gateway(configs[0]) as a, Gateway(configs[1]) as b:
            key = keel(configs[0], "create", "--name", "shared", "--features", "support")
            # The first key closes both (open until they reload: an unknown key there counts as none).
            assert eventually(lambda: status(a, None) == 401 and status(b, None) == 401)
            assert status(a, key) == 200 and status(b, key) == 200
            assert status(a, key, "extract") == 403 and status(b, key, "extract") == 403
            listed = keel(configs[1], "list", "--format", "json")
            assert '"name": "shared"' in listed and key not in listed
            keel(configs[1], "revoke", "shared")
            assert eventually(lambda: status(a, key) == 401 and status(b, key) == 401)
    for i in range(2):  # the keys went to PostgreSQL, not to a replica's own SQLite file
        with closing(sqlite3.connect(tmp_path / f"r{i}" / "ledger.db")) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "api_keys" not in tables
