"""Debian's Chromium, headless, driven by Playwright, for the dashboard tests.

Importing this module skips the importing test module when Playwright or ``/usr/bin/chromium``
is missing, or fails it when CI is set (``make setup-dev`` installs both). No browser is ever
downloaded: Playwright runs the system's Chromium (``$KEEL_CHROMIUM`` to use another).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("KEEL_CHROMIUM", "/usr/bin/chromium")
try:
    from playwright import sync_api
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("playwright is missing: pip install -e '.[dev]'", allow_module_level=True)
if shutil.which(CHROMIUM) is None:
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium (make setup-dev does)")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)


@contextmanager
def launch() -> Iterator[Any]:
    """A headless Chromium."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def new_page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context (its own sessionStorage); ``page.errors`` collects console errors."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.errors = errors
    try:
        yield pg
    finally:
        context.close()


def artefact_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$KEEL_ARTIFACTS`` when set (CI keeps it), else the test's tmp dir."""
    target = Path(os.environ.get("KEEL_ARTIFACTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def sign_in(page: Any, url: str, key: str) -> None:
    """Open ``url`` and enter ``key`` in the sign-in form the page shows."""
    page.goto(url)
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#login-key", key)
    page.click("#login button[type=submit]")
