"""Trained model files shipped inside the package, and the command line their training scripts share.

Two small classifiers ship with keel (the routing complexity scorer and the injection detector),
each a JSON file beside its module, written by a ``train_*`` script from labelled data in the
repository's ``data/`` folder. Reading such a file, and the ``--data/--out/--buckets/--seed``
command line, are the same for both.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from keel.errors import ConfigError


def read_model_file(package: str, shipped: str, path: Path | None, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (or the ``shipped`` file in ``package``); ConfigError if unusable."""
    where = str(path) if path is not None else f"{package}/{shipped}"
    try:
        if path is None:
            raw = resources.files(package).joinpath(shipped).read_text("utf-8")
        else:
            raw = path.read_text("utf-8")
        data = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot load the {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: cannot load the {what}: not a JSON object")
    return data


def repo_data(relative: str) -> Path:
    """``data/<relative>`` of the working directory, or else of the source checkout keel runs from."""
    here = Path.cwd() / "data" / relative
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / "data" / relative


def training_cli(
    argv: list[str] | None,
    *,
    prog: str,
    description: str | None,
    data: str,
    out: Path,
    buckets: int,
    train: Callable[..., dict[str, Any]],
) -> None:
    """Parse ``--data --out --buckets --seed``, call ``train(data, out, buckets=, seed=)``, print metrics."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument(
        "--data", type=Path, default=None, help=f"labelled prompts (JSON lines; default data/{data})"
    )
    ap.add_argument("--out", type=Path, default=out, help="model file to write")
    ap.add_argument("--buckets", type=int, default=buckets, help="hashed feature space (a power of two)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    metrics = train(args.data or repo_data(data), args.out, buckets=args.buckets, seed=args.seed)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    print(json.dumps(metrics, indent=2))
