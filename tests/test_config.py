"""keel.yaml loading: the issue's example works; every mistake names file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.config import load_config, parse_config
from keel.errors import ConfigError

pytestmark = pytest.mark.unit

EXAMPLE = """\
models:
  - name: upstream
    provider: openai            # any OpenAI-compatible HTTP server
    base_url: http://127.0.0.1:9100/v1
    api_key_env: UPSTREAM_API_KEY
    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}
  - name: local
    provider: llamacpp          # embedded Gemma 3 270M
features:
  - name: support
    model: upstream
    prompt: support             # prompts/support.yaml, versioned by content
"""


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="keel.yaml")
    return str(info.value)


def test_the_issue_example_loads_into_typed_settings() -> None:
    s = parse_config(EXAMPLE, source="keel.yaml")
    assert [m.name for m in s.models] == ["upstream", "local"]
    up = s.model("upstream")
    assert up.provider == "openai"
    assert up.price.input_per_mtok == 0.15
    assert up.options.base_url == "http://127.0.0.1:9100/v1"  # type: ignore[attr-defined]
    assert s.feature("support").prompt == "support"
    assert s.db_path.name == "keel.db"


def test_price_computes_cost_per_call() -> None:
    price = parse_config(EXAMPLE).model("upstream").price
    assert price.cost(1_000_000, 0) == pytest.approx(0.15)
    assert price.cost(1000, 2000) == pytest.approx(0.00015 + 0.0012)


def test_a_typo_in_a_key_names_file_line_key_and_suggests_the_fix() -> None:
    msg = _error(EXAMPLE.replace("    model: upstream\n", "    modle: upstream\n"))
    assert msg.startswith("keel.yaml:11: features[0].modle: unknown key; did you mean 'model'?")


def test_a_typo_in_a_provider_option_is_reported_by_its_provider() -> None:
    msg = _error(EXAMPLE.replace("api_key_env:", "api_key_enc:"))
    assert "keel.yaml:5: models[0].api_key_enc: unknown key; did you mean 'api_key_env'?" in msg


def test_unknown_provider_lists_the_known_ones() -> None:
    msg = _error(EXAMPLE.replace("provider: llamacpp", "provider: llama"))
    assert "keel.yaml:8: models[1].provider: unknown provider 'llama'" in msg
    assert "llamacpp" in msg and "openai" in msg


def test_feature_pointing_at_unknown_model_is_an_error_with_suggestion() -> None:
    msg = _error(EXAMPLE.replace("model: upstream", "model: upstrem"))
    assert "features[0].model: unknown model 'upstrem'; did you mean 'upstream'?" in msg


def test_wrong_types_and_missing_keys_say_what_was_expected() -> None:
    assert "models[0].price.input_per_mtok" in _error(
        EXAMPLE.replace("input_per_mtok: 0.15", "input_per_mtok: cheap")
    )
    assert "greater than or equal to 0" in _error(EXAMPLE.replace("0.15", "-1"))
    assert "features[0].model: missing (required)" in _error(EXAMPLE.replace("    model: upstream\n", ""))
    assert "models[0].base_url: missing (required)" in _error(
        EXAMPLE.replace("    base_url: http://127.0.0.1:9100/v1\n", "")
    )


def test_invalid_yaml_names_the_line() -> None:
    msg = _error("models: [\n  {name: a\nfeatures: x\n")
    assert msg.startswith("keel.yaml:") and "invalid YAML" in msg


def test_duplicate_names_are_refused() -> None:
    msg = _error(EXAMPLE + "  - name: support\n    model: local\n")
    assert "features[1].name: duplicate name 'support'" in msg


def test_missing_sections_are_named() -> None:
    assert "models: missing" in _error("features: []\n")
    assert "expected a mapping" in _error("- just a list\n")


def test_keys_must_be_hashes_not_clear_keys() -> None:
    msg = _error(EXAMPLE + "keys:\n  - name: app\n    hash: sk-my-secret\n")
    assert "keys[0].hash" in msg


def test_no_config_file_gives_the_embedded_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_config()
    assert [m.provider for m in s.models] == ["llamacpp"]
    assert s.server.default_feature == "default"
    assert s.db_path == tmp_path / ".keel" / "keel.db"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "keel.yaml"
    path.write_text(EXAMPLE + "storage: {path: data/ledger.db}\n")
    s = load_config(path)
    assert s.db_path == tmp_path / "conf" / "data" / "ledger.db"
    assert s.source == str(path)


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_value_errors_read_as_plain_sentences() -> None:
    msg = _error(EXAMPLE.replace("name: support", "name: 'support bot'"))
    assert msg.endswith("features[0].name: use letters, digits and _ . : - (at most 64 characters)")
