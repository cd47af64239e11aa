"""Providers are found in a registry by kind (the ``provider:`` key of a model in keel.yaml).

Each kind names the class that implements it; modules are imported only when a model of
that kind is configured, so an optional backend's library is never imported by accident.
"""

from __future__ import annotations

import importlib

from keel.llm.providers.base import Chunk, ModelRequest, Provider, Trace

__all__ = ["Chunk", "ModelRequest", "Provider", "Trace", "provider_class", "register_provider"]

_REGISTRY: dict[str, str | type[Provider]] = {
    "openai": "keel.llm.providers.openai:OpenAIProvider",
    "llamacpp": "keel.llm.providers.llamacpp:LlamaCppProvider",
}


def register_provider(kind: str, cls: type[Provider] | str) -> None:
    """Make ``kind`` usable as ``provider:`` in keel.yaml (a class or ``module:Class``)."""
    _REGISTRY[kind] = cls


def provider_class(kind: str) -> type[Provider]:
    """The provider class registered as ``kind``; KeyError with a readable message if none."""
    entry = _REGISTRY.get(kind)
    if entry is None:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown provider {kind!r} (expected one of: {known})")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        cls: type[Provider] = getattr(importlib.import_module(module), attr)
        _REGISTRY[kind] = cls
        return cls
    return entry
