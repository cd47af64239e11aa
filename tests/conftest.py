"""Shared fixtures: configs in temp dirs, the scripted provider registered as a provider kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.config import Settings, load_config
from keel.llm.providers import register_provider
from keel.testing.scripted import ScriptedProvider

register_provider("scripted", ScriptedProvider)


@pytest.fixture
def make_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write keel.yaml (and prompt files) into a temp dir and load it."""

    def make(yaml_text: str, prompts: dict[str, str] | None = None) -> Settings:
        for name, text in (prompts or {}).items():
            (tmp_path / "prompts").mkdir(exist_ok=True)
            (tmp_path / "prompts" / f"{name}.yaml").write_text(text)
        path = tmp_path / "keel.yaml"
        path.write_text(yaml_text)
        return load_config(path)

    return make
