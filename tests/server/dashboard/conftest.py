"""Fixtures of the dashboard tests: one gateway with traffic for the package, a headless Chromium per
module and a fresh page per test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.dashboard.gateway import DashboardGateway, admin_get, start


@pytest.fixture(scope="package")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardGateway]:
    """The gateway with the traffic sent, the alert raised and the sampled calls queued for review."""
    for d in start(tmp_path_factory.mktemp("dash")):
        deadline = time.monotonic() + 10  # the review queue is written every 0.5 s, off the request path
        while time.monotonic() < deadline:
            counts = admin_get(d.gw, "/dashboard/api/review/items").json()["counts"]
            if counts["pending"] >= d.traffic.calls["support"] - 1:
                break
            time.sleep(0.1)
        yield d


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
