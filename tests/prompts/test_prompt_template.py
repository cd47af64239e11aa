"""Prompt files: rendered in a sandbox, versioned by content, every mistake caught at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import ConfigError, InvalidRequest
from keel.prompts import load_prompt

pytestmark = pytest.mark.unit

SUPPORT = """\
description: support answers
system: |
  You help customers of {{ product }}. Tier: {{ tier }}.
user: "Question: {{ input }}"
variables:
  product: {type: string, default: Acme}
  tier: integer
params: {temperature: 0.1, max_tokens: 50}
"""


def _write(tmp_path: Path, text: str, name: str = "support") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_render_prepends_system_and_wraps_the_last_user_message(tmp_path: Path) -> None:
    p = load_prompt(_write(tmp_path, SUPPORT))
    msgs = p.render(
        [
            {"role": "user", "content": "old"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "Where is my invoice?"},
        ],
        {"tier": 2},
        feature="support",
    )
    assert msgs[0] == {"role": "system", "content": "You help customers of Acme. Tier: 2."}
    assert msgs[1]["content"] == "old"
    assert msgs[-1] == {"role": "user", "content": "Question: Where is my invoice?"}
    assert p.params == {"temperature": 0.1, "max_tokens": 50}


def test_version_is_a_short_content_hash_that_ignores_comments_and_key_order(tmp_path: Path) -> None:
    a = load_prompt(_write(tmp_path, SUPPORT, "a"))
    b = load_prompt(
        _write(
            tmp_path,
            SUPPORT.replace("description: support answers\n", "") + "description: support answers  # same\n",
            "b",
        )
    )
    c = load_prompt(_write(tmp_path, SUPPORT.replace("Tier", "Level"), "c"))
    assert len(a.version) == 12 and all(ch in "0123456789abcdef" for ch in a.version)
    assert a.version == b.version
    assert a.version != c.version


def test_undeclared_variable_is_a_load_time_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"undeclared variable\(s\) plan"):
        load_prompt(_write(tmp_path, "system: 'Plan {{ plan }}'\n"))


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"support.yaml: system: template syntax error on line 1"):
        load_prompt(_write(tmp_path, "system: 'Hello {{ name '\nvariables: {name: string}\n"))


def test_missing_required_variable_is_a_request_error(tmp_path: Path) -> None:
    p = load_prompt(_write(tmp_path, SUPPORT))
    with pytest.raises(InvalidRequest, match="needs variable 'tier'"):
        p.render([{"role": "user", "content": "hi"}], {}, feature="f")


def test_variable_of_wrong_type_is_a_request_error(tmp_path: Path) -> None:
    p = load_prompt(_write(tmp_path, SUPPORT))
    with pytest.raises(InvalidRequest, match="variable 'tier' must be integer, got str"):
        p.render([{"role": "user", "content": "hi"}], {"tier": "gold"}, feature="f")


def test_sandbox_refuses_attribute_tricks(tmp_path: Path) -> None:
    p = load_prompt(_write(tmp_path, 'system: "{{ input.__class__.__mro__[1].__subclasses__() }}"\n'))
    with pytest.raises(InvalidRequest, match="failed to render"):
        p.render([{"role": "user", "content": "x"}], {}, feature="f")


def test_invalid_output_schema_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid JSON schema"):
        load_prompt(_write(tmp_path, "system: hi\nschema: {type: objekt}\n"))


def test_unknown_key_and_empty_prompt_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sytem"):
        load_prompt(_write(tmp_path, "sytem: hi\n"))
    with pytest.raises(ConfigError, match="needs a 'system' or a 'user'"):
        load_prompt(_write(tmp_path, "description: nothing\n"))
