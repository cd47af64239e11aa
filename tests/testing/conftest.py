"""Fixtures of the fake upstream's tests: one shared server, and the official OpenAI client on it."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from keel.testing import FakeUpstream


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="unused", max_retries=0) as c:
        yield c
