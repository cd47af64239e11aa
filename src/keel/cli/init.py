"""``keel init``: write a commented keel.yaml and an example prompt to start from."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from keel.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the ``init`` command."""
    app.command()(init)


def init(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Where to write the config; prompts/ goes beside it.")
    ] = Path("keel.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write keel.yaml and prompts/support.yaml (a working setup on the embedded local model)."""
    templates = resources.files("keel.cli").joinpath("templates")
    targets = {
        config: templates.joinpath("keel.yaml").read_text(encoding="utf-8"),
        config.parent / "prompts" / "support.yaml": templates.joinpath("support.yaml").read_text(
            encoding="utf-8"
        ),
    }
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist; pass --force to overwrite")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    hint = "" if config == Path("keel.yaml") else f" --config {config}"
    print(
        f'next: `keel serve{hint}` (gateway) or `keel ask{hint} "How do I reset my password?"`',
        file=sys.stderr,
    )
