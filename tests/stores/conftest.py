"""Every store contract runs against each backend: in-process, and a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from state_helpers import state_url

BACKENDS = [
    pytest.param("memory", marks=pytest.mark.unit),
    pytest.param("redis", marks=pytest.mark.integration),
]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A state URL (``memory`` or Redis under a prefix of its own, cleaned up afterwards)."""
    with state_url(request.param) as u:
        yield u
