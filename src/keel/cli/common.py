"""What every command shares: the --config option and loading settings from it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.config import Settings, load_config

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Path to keel.yaml (default: ./keel.yaml when present, else the embedded default).",
        show_default=False,
    ),
]


def settings_from(path: Path | None) -> Settings:
    """Load the settings a command runs with (raises ConfigError with a one-line message)."""
    return load_config(path)
