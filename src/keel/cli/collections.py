"""``keel collections``: list, show and drop the document index's collections."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from keel.cli.common import ConfigOption, settings_from
from keel.context.index import Index, open_index
from keel.context.settings import index_config
from keel.errors import InvalidRequest
from keel.settings import Settings

collections_app = typer.Typer(help="List, show and drop document collections.", no_args_is_help=True)

FormatOption = Annotated[str, typer.Option("--format", "-f", help="table or json.")]
_WIDE = 200


def register(app: typer.Typer) -> None:
    """Add the ``collections`` command group."""
    app.add_typer(collections_app, name="collections")


def _open(settings: Settings) -> Index:
    return open_index(index_config(settings), settings.base_dir)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise InvalidRequest(f"--format {fmt!r}: expected table or json")


def _print(table: Table) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=_WIDE)
    console.print(table)


@collections_app.command("list")
def list_(fmt: FormatOption = "table", config: ConfigOption = None) -> None:
    """Every collection with its documents, chunks, embedding model and last change."""
    _check_format(fmt)
    settings = settings_from(config)
    with _open(settings) as index:
        infos = index.collections()
    if fmt == "json":
        rows = [asdict(i) for i in infos]
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not infos:
        print("no collections yet (create one with: keel ingest PATH --collection NAME)")
        return
    table = Table("collection", "documents", "chunks", "model", "updated (UTC)")
    for i in infos:
        table.add_row(i.name, str(i.documents), str(i.chunks), f"{i.model} ({i.dim})", _when(i.updated_at))
    _print(table)


@collections_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The collection.")],
    fmt: FormatOption = "table",
    config: ConfigOption = None,
) -> None:
    """A collection's documents: source, title, chunks and when each was ingested."""
    _check_format(fmt)
    settings = settings_from(config)
    with _open(settings) as index:
        info = index.collection(name)
        if info is None:
            raise InvalidRequest(f"no collection {name!r} (see: keel collections list)")
        docs = index.documents(name)
    if fmt == "json":
        body = {
            "name": info.name,
            "model": info.model,
            "dim": info.dim,
            "chunks": info.chunks,
            "documents": [asdict(d) for d in docs],
        }
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(
        "source",
        "title",
        "chunks",
        "ingested (UTC)",
        title=f"{info.name}: {info.documents} documents, {info.chunks} chunks, {info.model} ({info.dim})",
    )
    for d in docs:
        table.add_row(d.source, d.title, str(d.chunks), _when(d.ingested_at))
    _print(table)


@collections_app.command("drop")
def drop(
    name: Annotated[str, typer.Argument(help="The collection.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete a collection and everything in it."""
    settings = settings_from(config)
    with _open(settings) as index:
        info = index.collection(name)
        if info is None:
            raise InvalidRequest(f"no collection {name!r} (see: keel collections list)")
        if not yes:
            if not sys.stdin.isatty():
                raise InvalidRequest(f"dropping {name!r} deletes {info.chunks} chunks: add --yes to confirm")
            typer.confirm(
                f"Delete collection {name!r} ({info.documents} documents, {info.chunks} chunks)?", abort=True
            )
        index.drop(name)
    print(f"dropped {name} ({info.documents} documents, {info.chunks} chunks)")
