"""``keel prompts``: list, show, diff, label and the history of versioned prompts.

Every command first registers the files of ``prompts_dir`` that changed (each change a new
version), then reads the registry the configuration names.
"""

from __future__ import annotations

import difflib
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keel.cli.common import ConfigOption, settings_from
from keel.prompts.open import settings_registry
from keel.prompts.registry import PromptRef, PromptRegistry

app = typer.Typer(help="Versioned prompts: list, show, diff, label (deploy or roll back), history.")
_out = Console(width=200, highlight=False, soft_wrap=True)


def register(root: typer.Typer) -> None:
    """Add the ``prompts`` command group."""
    root.add_typer(app, name="prompts")


def _registry(config: ConfigOption) -> PromptRegistry:
    return settings_registry(settings_from(config))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_prompts(config: ConfigOption = None) -> None:
    """Every prompt: its latest version, hash and labels."""
    with _registry(config) as reg:
        table = Table("prompt", "versions", "latest", "hash", "labels", box=None, pad_edge=False)
        for name in reg.names():
            versions = reg.versions(name)
            labels = ", ".join(f"{k}→v{n}" for k, n in sorted(reg.labels(name).items()))
            latest = versions[-1]
            table.add_row(name, str(len(versions)), f"v{latest.number}", latest.hash, labels)
        if not table.rows:
            print(f"no prompts registered yet (registry: {reg.where})")
            return
        _out.print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@LABEL, NAME@VERSION or NAME@HASH.")],
    config: ConfigOption = None,
) -> None:
    """Print one version's file, with its number, hash and labels."""
    with _registry(config) as reg:
        v = reg.get(PromptRef.parse(ref))
        labels = sorted(k for k, n in reg.labels(v.name).items() if n == v.number)
        if v.number == reg.versions(v.name)[-1].number:
            labels.append("latest")
        print(f"# {v.name} v{v.number} ({v.hash}) registered {_when(v.created_at)} UTC", end="")
        print(f"; labels: {', '.join(labels)}" if labels else "")
        sys.stdout.write(v.text if v.text.endswith("\n") else v.text + "\n")


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="The old version: NAME@LABEL or NAME@VERSION.")],
    b: Annotated[str, typer.Argument(help="The new version (a bare label or number means the same prompt).")],
    config: ConfigOption = None,
) -> None:
    """A unified diff between two versions."""
    ra = PromptRef.parse(a)
    rb = PromptRef(ra.name, b) if "@" not in b and ra.ref != "latest" else PromptRef.parse(b)
    with _registry(config) as reg:
        va, vb = reg.get(ra), reg.get(rb)
    lines = difflib.unified_diff(
        va.text.splitlines(keepends=True),
        vb.text.splitlines(keepends=True),
        fromfile=f"{va.name}@v{va.number} ({va.hash})",
        tofile=f"{vb.name}@v{vb.number} ({vb.hash})",
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    sys.stdout.write(text or f"no difference between {va.name}@v{va.number} and {vb.name}@v{vb.number}\n")


@app.command("label")
def label(
    ref: Annotated[str, typer.Argument(help="The version to point at: NAME@VERSION (or NAME@LABEL).")],
    name: Annotated[str, typer.Argument(help="The label to set or move, e.g. production.")],
    actor: Annotated[str, typer.Option("--by", help="Who moved it (recorded in the history).")] = "",
    config: ConfigOption = None,
) -> None:
    """Point a label at a version: a deploy, or a rollback. Running gateways follow within seconds."""
    with _registry(config) as reg:
        event = reg.set_label(PromptRef.parse(ref), name, actor=actor)
    was = f" (was v{event.previous})" if event.previous is not None else " (new label)"
    print(f"{event.name}@{event.label} → v{event.number}{was}")


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="The prompt's name.")],
    config: ConfigOption = None,
) -> None:
    """Every version and every label move of one prompt, oldest first."""
    with _registry(config) as reg:
        ref = PromptRef.parse(name)
        reg.get(ref)  # a clear error for an unknown prompt
        rows: list[tuple[float, str, str]] = [
            (v.created_at, "version", f"v{v.number} {v.hash}" + (f"  {v.note}" if v.note else ""))
            for v in reg.versions(ref.name)
        ]
        for e in reg.history(ref.name):
            moved = f"v{e.previous} → v{e.number}" if e.previous is not None else f"→ v{e.number}"
            rows.append((e.at, "label", f"{e.label} {moved}" + (f"  by {e.actor}" if e.actor else "")))
    table = Table("time (UTC)", "event", "what", box=None, pad_edge=False)
    for at, kind, what in sorted(rows, key=lambda r: r[0]):
        table.add_row(_when(at), kind, what)
    _out.print(table)
