"""Fixtures of the dashboard tests: a headless Chromium per module and a fresh page per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from tests.server.dashboard.browser import launch  # the browser tests import it first (skip or fail)

    with launch() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    from tests.server.dashboard.browser import new_page

    with new_page(browser) as pg:
        yield pg
