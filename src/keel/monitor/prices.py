"""Built-in prices of common hosted models, so a model entry without ``price:`` still gets a cost.

USD per million tokens: input, output, cached input (prompt-cache reads; Anthropic's cache
*writes* cost more than input and are not modelled). Recalled from the providers' public price
pages as they stood in mid-2025 (``PRICES_AS_OF``); they were not fetched, and providers change
them. A ``price:`` in keel.yaml always wins over this table: check your bill, then set it.

Lookup is by the upstream model id (the ``model:`` option, else the entry's name), tolerant of
a provider prefix (``openai/gpt-4o``) and of dated snapshots (``gpt-4o-2024-08-06``,
``claude-3-5-sonnet-20241022``, ``...-latest``), but never of a different model: ``gpt-4o-audio``
is not ``gpt-4o``.
"""

from __future__ import annotations

import re

from keel.settings import Price

PRICES_AS_OF = "2025-07"

# model id: (input, output, cached input) USD per million tokens
_TABLE: dict[str, tuple[float, float, float | None]] = {
    # OpenAI
    "gpt-5": (1.25, 10.00, 0.125),
    "gpt-5-mini": (0.25, 2.00, 0.025),
    "gpt-5-nano": (0.05, 0.40, 0.005),
    "gpt-4.1": (2.00, 8.00, 0.50),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
    "gpt-4o": (2.50, 10.00, 1.25),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4-turbo": (10.00, 30.00, None),
    "gpt-3.5-turbo": (0.50, 1.50, None),
    "o1": (15.00, 60.00, 7.50),
    "o3": (2.00, 8.00, 0.50),
    "o3-mini": (1.10, 4.40, 0.55),
    "o4-mini": (1.10, 4.40, 0.275),
    # Anthropic (cached input: cache reads)
    "claude-opus-4-1": (15.00, 75.00, 1.50),
    "claude-opus-4": (15.00, 75.00, 1.50),
    "claude-sonnet-4": (3.00, 15.00, 0.30),
    "claude-3-7-sonnet": (3.00, 15.00, 0.30),
    "claude-3-5-sonnet": (3.00, 15.00, 0.30),
    "claude-3-5-haiku": (0.80, 4.00, 0.08),
    "claude-3-opus": (15.00, 75.00, 1.50),
    "claude-3-haiku": (0.25, 1.25, 0.03),
    # Google (up to 200k prompt tokens for the 2.5 Pro tier; longer prompts cost more)
    "gemini-2.5-pro": (1.25, 10.00, 0.31),
    "gemini-2.5-flash": (0.30, 2.50, 0.075),
    "gemini-2.5-flash-lite": (0.10, 0.40, 0.025),
    "gemini-2.0-flash": (0.10, 0.40, 0.025),
    "gemini-2.0-flash-lite": (0.075, 0.30, None),
    # Mistral
    "mistral-large": (2.00, 6.00, None),
    "mistral-small": (0.10, 0.30, None),
    # DeepSeek (cached input: cache hits)
    "deepseek-chat": (0.27, 1.10, 0.07),
    "deepseek-reasoner": (0.55, 2.19, 0.14),
}

_PROVIDER_PREFIX = re.compile(r"^[a-z0-9_.-]+/")
# Dated or labelled snapshots: -2024-08-06, -20241022, -0125, @20240620, -latest, -001 (Gemini)
_SNAPSHOT = re.compile(r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3}|latest|preview(?:-\d{2}-\d{2})?))+$")


def builtin_prices() -> dict[str, Price]:
    """The whole built-in table, as keel ``Price`` objects (a copy)."""
    return {name: _price(v) for name, v in _TABLE.items()}


def default_price(model_id: str) -> Price | None:
    """The built-in price of the upstream model ``model_id``, or None when the table has no such model."""
    key = model_id.strip().lower()
    for candidate in (key, _PROVIDER_PREFIX.sub("", key)):
        if candidate in _TABLE:
            return _price(_TABLE[candidate])
        base = _SNAPSHOT.sub("", candidate)
        if base in _TABLE:
            return _price(_TABLE[base])
    return None


def _price(v: tuple[float, float, float | None]) -> Price:
    return Price(input_per_mtok=v[0], output_per_mtok=v[1], cached_input_per_mtok=v[2])
