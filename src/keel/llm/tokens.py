"""Offline token counting for OpenAI-style models (bpe-openai; no vocabulary download)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol


class Tokenizer(Protocol):
    """Anything that counts the tokens of a text."""

    def count(self, text: str) -> int: ...


@cache
def _bindings() -> ModuleType:
    """bpe-openai's Rust extension alone.

    The package's ``__init__`` builds Python vocabularies for its tiktoken-compatible API at
    import time (about 0.4 s, with a DeprecationWarning); keel needs only the Rust counter,
    which loads in milliseconds, so the extension module is loaded by itself.
    """
    package = importlib.util.find_spec("bpe_openai")
    if package is None or not package.submodule_search_locations:
        raise ImportError("bpe-openai is not installed")
    for folder in package.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_bindings{suffix}"
            if path.exists():
                spec = importlib.util.spec_from_file_location("bpe_openai._bindings", path)
                if spec is None or spec.loader is None:
                    break
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    raise ImportError("bpe-openai's _bindings extension was not found")


@lru_cache(maxsize=8)
def tokenizer(encoding: str = "o200k_base") -> Tokenizer:
    """The Rust BPE tokenizer for ``encoding`` (o200k_base or cl100k_base), built once."""
    tok: Tokenizer = _bindings().tokenizer_for_encoding(encoding)
    return tok


def count_tokens(text: str, encoding: str = "o200k_base") -> int:
    """Tokens in ``text`` under ``encoding``."""
    return tokenizer(encoding).count(text) if text else 0


# OpenAI's chat format costs a few tokens per message for role and separators, and three to
# prime the reply; these constants follow OpenAI's published counting recipe.
_PER_MESSAGE = 3
_REPLY_PRIMER = 3


def message_text(message: dict[str, Any]) -> str:
    """All the text a message carries: string content, text parts, tool-call arguments."""
    content = message.get("content")
    parts: list[str] = []
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            parts.append(str(fn.get("name", "")))
            parts.append(str(fn.get("arguments", "")))
    return "\n".join(parts)


def count_messages(messages: list[dict[str, Any]], encoding: str = "o200k_base") -> int:
    """Prompt tokens a chat request costs, following OpenAI's counting recipe."""
    tok = tokenizer(encoding)
    total = _REPLY_PRIMER
    for m in messages:
        total += _PER_MESSAGE + tok.count(str(m.get("role", ""))) + tok.count(message_text(m))
        if m.get("name"):
            total += 1 + tok.count(str(m["name"]))
    return total
