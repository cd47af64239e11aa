"""Entry point of the ``keel`` command: assembles the command groups and prints errors as one line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import keel
from keel.cli import (
    ask,
    audit,
    collections,
    eval,
    fake_upstream,
    ingest,
    init,
    keys,
    loadtest,
    prompts,
    review,
    serve,
    tail,
    usage,
)
from keel.errors import KeelError

app = typer.Typer(
    name="keel",
    help="keel: the system around an LLM call (gateway, guards, routing, validation, monitoring).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

for module in (
    init,
    serve,
    ask,
    usage,
    tail,
    keys,
    fake_upstream,
    prompts,
    ingest,
    collections,
    eval,
    audit,
    loadtest,
    review,
):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        print(f"keel {keel.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """keel: the system around an LLM call."""


def main() -> None:
    """Run the CLI; bad input and KeelErrors become one readable line on stderr."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # usage errors (unknown option, missing argument, bad value)
        message = exc.format_message()
        if "\n" in message:  # `keel` with no command: the help text itself
            print(message, file=sys.stderr)
        else:
            ctx = getattr(exc, "ctx", None)
            where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            print(f"keel: error: {message}{where}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except KeelError as exc:
        print(f"keel: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
