"""Functions that test features name in keel.yaml: intent answers and post-processing steps."""

from __future__ import annotations

from typing import Any

ORDERS = {"12345": "shipped on Monday", "67890": "waiting for payment"}


def order_status(call: Any, groups: dict[str, str]) -> str | None:
    """The status of a known order; None lets the model answer about an unknown one."""
    status = ORDERS.get(groups.get("order", ""))
    return None if status is None else f"Order {groups['order']} is {status}."


async def store_count(call: Any, groups: dict[str, str]) -> str:
    """An async rule: answered from 'a database'."""
    return "We have 12 stores."


def shout(text: str) -> str:
    """A post-processing step."""
    return text.upper()


NOT_CALLABLE = 3
