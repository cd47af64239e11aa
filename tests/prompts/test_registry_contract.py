"""The prompt registry's contract, run on every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from keel.errors import ConfigError, InvalidRequest
from keel.prompts.open import open_registry
from keel.prompts.registry import PromptRegistry

pytestmark = pytest.mark.integration

V1 = "system: 'You help customers of {{ product }}.'\nvariables: {product: {default: Acme}}\n"
V2 = "system: 'You help customers of {{ product }}. Be brief.'\nvariables: {product: {default: Acme}}\n"
V3 = "system: 'Terse.'\n"


def test_each_change_is_a_new_numbered_version_and_unchanged_text_is_not(registry: PromptRegistry) -> None:
    a, new_a = registry.register("support", V1)
    same, new_same = registry.register("support", V1 + "# a comment only\n")
    b, new_b = registry.register("support", V2)
    assert (a.number, new_a, same.number, new_same, b.number, new_b) == (1, True, 1, False, 2, True)
    assert a.hash != b.hash and len(a.hash) == 12
    assert [v.number for v in registry.versions("support")] == [1, 2]
    assert registry.versions("support")[0].text == V1  # immutable: the first text is kept as it was
    assert registry.names() == ["support"]


def test_first_version_gets_production_and_latest_follows_the_newest(registry: PromptRegistry) -> None:
    registry.register("support", V1)
    registry.register("support", V2)
    assert registry.labels("support") == {"production": 1}
    assert registry.get("support@production").number == 1
    assert registry.get("support@latest").number == 2
    assert registry.get("support").number == 2


def test_labels_move_and_every_move_is_history(registry: PromptRegistry) -> None:
    registry.register("support", V1)
    registry.register("support", V2)
    registry.set_label("support@2", "production", actor="ana")
    registry.set_label("support@1", "staging")
    registry.set_label("support@1", "production", actor="rollback")
    assert registry.labels("support") == {"production": 1, "staging": 1}
    moves = [(e.label, e.previous, e.number, e.actor) for e in registry.history("support")]
    assert moves == [
        ("production", None, 1, "first version"),
        ("production", 1, 2, "ana"),
        ("staging", None, 1, ""),
        ("production", 2, 1, "rollback"),
    ]


def test_references_by_number_v_number_and_hash_prefix(registry: PromptRegistry) -> None:
    registry.register("support", V1)
    b, _ = registry.register("support", V2)
    assert registry.get("support@2") == registry.get("support@v2") == registry.get(f"support@{b.hash[:6]}")
    assert registry.template("support@2").number == 2
    assert (
        registry.template("support@1").render([], {}, feature="f")[0]["content"]
        == "You help customers of Acme."
    )


def test_unknown_names_versions_and_labels_are_clear_errors(registry: PromptRegistry) -> None:
    registry.register("support", V1)
    with pytest.raises(ConfigError, match=r"no prompt 'nope'.*registered: support"):
        registry.get("nope@production")
    with pytest.raises(ConfigError, match="no version 7"):
        registry.get("support@7")
    with pytest.raises(ConfigError, match=r"no label or version 'canary'.*production→1"):
        registry.get("support@canary")
    with pytest.raises(InvalidRequest, match="'latest' always means"):
        registry.set_label("support@1", "latest")
    with pytest.raises(InvalidRequest, match="bad label"):
        registry.set_label("support@1", "9lives")


def test_an_invalid_prompt_never_becomes_a_version(registry: PromptRegistry) -> None:
    with pytest.raises(ConfigError, match="undeclared variable"):
        registry.register("support", "system: 'Hi {{ who }}'\n")
    assert registry.versions("support") == []


def test_revision_changes_with_versions_and_label_moves(registry: PromptRegistry) -> None:
    r0 = registry.revision()
    registry.register("support", V1)
    r1 = registry.revision()
    registry.register("support", V3)
    r2 = registry.revision()
    registry.set_label("support@2", "production")
    r3 = registry.revision()
    assert len({r0, r1, r2, r3}) == 4
    assert registry.revision() == r3


def test_sync_dir_registers_changed_files_only(registry: PromptRegistry, tmp_path: Path) -> None:
    d = tmp_path / "prompts"
    d.mkdir()
    (d / "support.yaml").write_text(V1)
    (d / "terse.yml").write_text(V3)
    assert sorted((v.name, v.number) for v in registry.sync_dir(d)) == [("support", 1), ("terse", 1)]
    assert registry.sync_dir(d) == []
    (d / "support.yaml").write_text(V2)
    assert [(v.name, v.number) for v in registry.sync_dir(d)] == [("support", 2)]
    (d / "broken.yaml").write_text("system: '{{ nope }}'\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml.*undeclared variable"):
        registry.sync_dir(d)


def test_a_second_connection_sees_the_same_registry(
    registry: PromptRegistry, registry_target: str | Path
) -> None:
    registry.register("support", V1)
    with open_registry(registry_target) as other:
        other.register("support", V2)
        other.set_label("support@2", "production")
    assert registry.get("support@production").number == 2


def test_concurrent_writers_never_share_a_version_number(registry_target: str | Path) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with open_registry(registry_target) as reg:
                for j in range(3):
                    reg.register(f"p{i % 2}", f"system: 'text {i} {j}'\n")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_registry(registry_target) as reg:
        for name in ("p0", "p1"):
            assert [v.number for v in reg.versions(name)] == list(range(1, 7))


def test_a_postgres_registry_reconnects_after_its_connection_drops(postgres_url: str) -> None:
    import psycopg

    with open_registry(postgres_url) as reg:
        reg.register("support", V1)
        pid = reg._read("SELECT pg_backend_pid()")[0][0]  # type: ignore[attr-defined]
        with psycopg.connect(postgres_url.split("?")[0], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert reg.get("support@production").number == 1  # a gateway keeps following labels


def test_replicas_syncing_the_same_file_at_once_make_one_version(registry_target: str | Path) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            with open_registry(registry_target) as reg:
                barrier.wait()
                reg.register("support", V1)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=sync) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_registry(registry_target) as reg:
        assert [v.number for v in reg.versions("support")] == [1]
