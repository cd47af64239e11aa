"""``keel ingest``: put text, Markdown, HTML and PDF files into a collection of the document index."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from keel.cli.common import ConfigOption, settings_from
from keel.context.build import build_embedder
from keel.context.index import open_index
from keel.context.ingest import FileOutcome, Ingester, IngestReport, discover, parse_metadata
from keel.context.settings import check_collection, index_config
from keel.errors import InvalidRequest
from keel.settings import Settings


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` command."""
    app.command()(ingest)


def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files and directories (walked for .md .txt .html .pdf ...).")
    ],
    collection: Annotated[str, typer.Option("--collection", "-C", help="The collection to write into.")],
    meta: Annotated[
        list[str] | None, typer.Option("--meta", "-m", help="key=value metadata on every chunk (repeatable).")
    ] = None,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Remove documents under the given directories whose files are gone."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One line per file, not only skipped.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Chunk, embed and index files; unchanged files cost nothing, changed ones are replaced whole."""
    try:
        check_collection(collection)
    except ValueError as exc:
        raise InvalidRequest(f"--collection {collection!r}: {exc}") from None
    settings = settings_from(config)
    metadata = parse_metadata(meta or [])
    report = asyncio.run(_run(settings, paths, collection, metadata, prune, verbose))
    print(report.summary())


async def _run(
    settings: Settings,
    paths: list[Path],
    collection: str,
    metadata: dict[str, object],
    prune: bool,
    verbose: bool,
) -> IngestReport:
    config = index_config(settings)
    embedder = build_embedder(settings)
    index = open_index(config, settings.base_dir)
    console = Console(stderr=True)
    try:
        ingester = Ingester(
            index,
            embedder,
            model=settings.embeddings.model,
            chunking=config.chunking,
            base_dir=settings.base_dir,
        )
        files, missing = discover(paths)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as bar:
            task = bar.add_task(f"ingesting into {collection}", total=len(files) + len(missing))

            def progress(outcome: FileOutcome) -> None:
                bar.advance(task)
                if outcome.status == "skipped" or verbose:
                    print(outcome.line(), file=sys.stderr, flush=True)

            for m in missing:
                progress(m)
            report = await ingester.ingest(
                paths, collection, metadata=metadata, prune=prune, progress=progress, files=files
            )
            report.outcomes[:0] = missing
        return report
    finally:
        await embedder.aclose()
        index.close()
