"""Objects named in keel.yaml by import path (``myapp.models:Invoice`` or ``myapp.models.Invoice``)."""

from __future__ import annotations

import importlib
from typing import Any

from keel.errors import ConfigError


def import_object(path: str, *, where: str, what: str) -> Any:
    """The object at ``path``; ConfigError naming ``where`` when it cannot be imported."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{where}: expected {what}'s import path such as myapp.module:name, got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r} (for {path}): {exc}") from exc
    if not hasattr(module, attr):
        raise ConfigError(f"{where}: {module_name!r} has no {attr!r}")
    return getattr(module, attr)
