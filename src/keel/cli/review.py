"""``keel review``: the human review queue from the command line: where it stands, eval outputs into
it, and its export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from keel.cli.common import ConfigOption, settings_from
from keel.errors import InvalidRequest
from keel.evals.review import ExportFormat, ReviewStore, items_from_eval, open_review_store
from keel.evals.store import eval_store_target, open_eval_store
from keel.evals.suite import load_suite

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


@review_app.command("add-eval")
def add_eval(
    run: Annotated[str, typer.Argument(help="The eval run: an id (or a unique prefix), latest or latest~N.")],
    suite: Annotated[
        Path, typer.Option("--suite", help="The suite file the run ran (for its cases' messages).")
    ],
    failed_only: Annotated[
        bool, typer.Option("--failed-only", help="Only the cases the run failed.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Queue an eval run's outputs for human review, beside the sampled production calls."""
    settings = settings_from(config)
    with open_eval_store(eval_store_target(settings)) as evals:
        loaded = evals.load(run)
    items = items_from_eval(loaded, load_suite(suite), failed_only=failed_only)
    store = open_review_store(settings)
    try:
        added = store.add(items) if items else 0
    finally:
        store.close()
    again = len(items) - added
    what = f"eval run {loaded.id} ({loaded.suite}, {loaded.model})"
    print(
        f"queued {added} output{'s' if added != 1 else ''} of {what}"
        + (f"; {again} already queued" if again else "")
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
