"""``keel keys``: make API keys for keel.yaml's ``keys:`` list (only hashes are stored)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from keel.errors import InvalidRequest
from keel.keys import generate_key, hash_key

keys_app = typer.Typer(help="Create API keys and their hashes for keel.yaml.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group."""
    app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def generate(
    name: Annotated[str, typer.Option("--name", "-n", help="A name for the key (shown in the ledger).")],
    features: Annotated[str | None, typer.Option(help="Comma-separated features the key may use.")] = None,
) -> None:
    """Print a new key once, and the keel.yaml entry that accepts it."""
    key = generate_key()
    print(key)
    entry = f"  - name: {name}\n    hash: {hash_key(key)}\n"
    if features:
        names = [f.strip() for f in features.split(",") if f.strip()]
        entry += f"    features: [{', '.join(names)}]\n"
    print(
        f"# add under `keys:` in keel.yaml (the key above is not stored anywhere):\n{entry}", file=sys.stderr
    )


@keys_app.command("hash")
def hash_(
    key: Annotated[str | None, typer.Argument(help="The key ('-' or omitted: read stdin).")] = None,
) -> None:
    """Print the ``sha256:`` hash of an existing key."""
    if key is None or key == "-":
        key = sys.stdin.readline().strip()
    if not key:
        raise InvalidRequest("no key given")
    print(hash_key(key))
