"""``keel review``: the human review queue from the command line: where it stands, and its export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from keel.cli.common import ConfigOption, settings_from
from keel.errors import InvalidRequest
from keel.evals.review import ExportFormat, ReviewStore, open_review_store

review_app = typer.Typer(
    help="The human review queue: sampled calls people label at /dashboard/review.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``review`` command group."""
    app.add_typer(review_app, name="review")


def _store(config: Path | None) -> ReviewStore:
    return open_review_store(settings_from(config))


@review_app.command("status")
def status(
    feature: Annotated[str | None, typer.Option("--feature", help="Only this feature's items.")] = None,
    config: ConfigOption = None,
) -> None:
    """How many items wait for review, and how the reviewed ones were judged."""
    c = _store(config).counts(feature=feature)
    rate = f"{100 * c['passed'] / c['reviewed']:.0f}%" if c["reviewed"] else "-"
    print(
        f"pending {c['pending']}, reviewed {c['reviewed']} "
        f"(passed {c['passed']}, failed {c['failed']}, pass rate {rate})"
    )


@review_app.command("export")
def export(
    feature: Annotated[str | None, typer.Option("--feature", help="Only this feature's items.")] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="cases: eval-suite cases (messages, vars, expected); full: every field and label.",
        ),
    ] = "cases",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: standard output).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Reviewed items as JSONL, one object per line (``dataset:`` of an eval suite reads the cases)."""
    if fmt not in ("cases", "full"):
        raise InvalidRequest(f"--format {fmt!r}: expected cases or full", param="format")
    form: ExportFormat = "cases" if fmt == "cases" else "full"
    lines = [
        json.dumps(item, ensure_ascii=False) + "\n"
        for item in _store(config).export(feature=feature, fmt=form)
    ]
    if output is None:
        sys.stdout.writelines(lines)
        return
    try:
        output.write_text("".join(lines), encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"--output {output}: cannot write: {exc.strerror}", param="output") from None
    print(f"wrote {len(lines)} item{'s' if len(lines) != 1 else ''} to {output}", file=sys.stderr)
