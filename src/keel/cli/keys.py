"""``keel keys``: managed API keys (create, list, revoke) and hashes for keel.yaml's ``keys:`` list.

Managed keys live hashed in the settings' SQLite file; a running gateway picks up a new key
within about a second and stops accepting a revoked one within about two.
"""

from __future__ import annotations

import difflib
import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from keel.cli.common import ConfigOption, settings_from
from keel.errors import InvalidRequest
from keel.keys import generate_key, hash_key
from keel.keystore import KeySpec, StoredKey, issue_key, open_key_store, parse_budgets
from keel.keystore.directory import REFRESH_EVERY
from keel.settings import RateLimit

keys_app = typer.Typer(
    help="Create, list and revoke API keys (stored hashed), or make keys for keel.yaml.", no_args_is_help=True
)

_WIDE = 200  # when piped, rich would wrap at 80 columns


def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group."""
    app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="A unique name (recorded in the ledger).")],
    features: Annotated[
        str | None, typer.Option(help="Comma-separated features the key may use (default: all).")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models; a feature is usable only if all its models are listed."),
    ] = None,
    budget_usd: Annotated[
        list[str] | None,
        typer.Option("--budget-usd", help="Spending cap, AMOUNT/day or AMOUNT/month (repeatable)."),
    ] = None,
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May use admin endpoints (/metrics).")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    settings = settings_from(config)
    spec = KeySpec(
        name=name,
        features=_names(features, [f.name for f in settings.features], "feature", "--features"),
        models=_names(models, [m.name for m in settings.models], "model", "--models"),
        admin=admin,
        rate_limit=RateLimit(rpm=rpm, tpm=tpm) if rpm is not None or tpm is not None else None,
        budget=parse_budgets(budget_usd or []),
    )
    if any(k.name == name for k in settings.keys):
        raise InvalidRequest(
            f"{settings.source} already has a key named {name!r} under keys:; choose another"
        )
    with open_key_store(settings) as store:
        secret, record = issue_key(store, spec)
    print(secret, flush=True)
    print(
        f"keel: created key {record.name!r} ({record.prefix}…) in {store.location}; "
        "this is the only time it is shown",
        file=sys.stderr,
    )


@keys_app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    config: ConfigOption = None,
) -> None:
    """List managed keys: name, prefix, scopes, limits, created and revoked (never a key or its hash)."""
    form = _format(fmt)
    settings = settings_from(config)
    with open_key_store(settings) as store:
        keys = store.list_keys(include_revoked=all_)
        where = store.location
    if form == "json":
        sys.stdout.write(json.dumps([_public(k) for k in keys], indent=2) + "\n")
        return
    if not keys:
        which = "keys" if all_ else "active keys"
        print(f"no {which} in {where} (create one: keel keys create --name NAME)")
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=_WIDE)
    console.print(_table(keys, revoked=all_))


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The name of the active key to revoke.")],
    config: ConfigOption = None,
) -> None:
    """Revoke a key: a running gateway refuses it within a few seconds."""
    settings = settings_from(config)
    with open_key_store(settings) as store:
        record = store.revoke(name)
    print(
        f"keel: revoked key {record.name!r} ({record.prefix}…); running gateways refuse it "
        f"within {REFRESH_EVERY:g} s",
        file=sys.stderr,
    )


@keys_app.command("generate")
def generate(
    name: Annotated[str, typer.Option("--name", "-n", help="A name for the key (shown in the ledger).")],
    features: Annotated[str | None, typer.Option(help="Comma-separated features the key may use.")] = None,
) -> None:
    """Print a new key once, and the keel.yaml entry that accepts it (for keys kept in keel.yaml)."""
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
    """Print the ``sha256:`` hash of an existing key (for keel.yaml's ``keys:``)."""
    if key is None or key == "-":
        key = sys.stdin.readline().strip()
    if not key:
        raise InvalidRequest("no key given")
    print(hash_key(key))


def _names(given: str | None, known: list[str], kind: str, option: str) -> tuple[str, ...] | None:
    """A comma-separated option as names checked against the config; None when not given."""
    if given is None:
        return None
    names = tuple(dict.fromkeys(n.strip() for n in given.split(",") if n.strip()))
    if not names:
        raise InvalidRequest(f"{option}: expected a comma-separated list of {kind}s")
    for n in names:
        if n not in known:
            close = difflib.get_close_matches(n, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidRequest(f"{option}: unknown {kind} {n!r}{hint} (configured: {', '.join(known)})")
    return names


def _format(fmt: str) -> Literal["table", "json"]:
    if fmt == "table":
        return "table"
    if fmt == "json":
        return "json"
    raise InvalidRequest(f"--format: expected table or json, got {fmt!r}")


def _when(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public(key: StoredKey) -> dict[str, object]:
    out = key.to_public()
    out["created_at"] = _when(key.created_at)
    out["revoked_at"] = _when(key.revoked_at)
    return out


def _limits(key: StoredKey) -> str:
    rl, b = key.spec.rate_limit, key.spec.budget
    parts = []
    if rl is not None:
        parts += [f"{rl.rpm} rpm"] if rl.rpm else []
        parts += [f"{rl.tpm} tpm"] if rl.tpm else []
    if b is not None:
        parts += [f"${b.usd_per_day:g}/day"] if b.usd_per_day else []
        parts += [f"${b.usd_per_month:g}/month"] if b.usd_per_month else []
    return ", ".join(parts) or "-"


def _table(keys: list[StoredKey], *, revoked: bool) -> Table:
    table = Table(title="API keys" if revoked else "active API keys")
    columns = ["name", "prefix", "features", "models", "admin", "limits", "created"]
    for c in [*columns, *(["revoked"] if revoked else [])]:
        table.add_column(c)
    for k in keys:
        s = k.spec
        row = [
            s.name,
            k.prefix + "…",
            ", ".join(s.features) if s.features is not None else "all",
            ", ".join(s.models) if s.models is not None else "all",
            "yes" if s.admin else "no",
            _limits(k),
            _when(k.created_at) or "",
        ]
        if revoked:
            row.append(_when(k.revoked_at) or "-")
        table.add_row(*row)
    return table
