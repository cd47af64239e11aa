"""The Vectors contract: the nearest live vector of a scope by cosine similarity."""

from __future__ import annotations

import asyncio

import numpy as np
from state_helpers import run_with

from keel.stores.base import StateBackend

DIM = 16


def _vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def _b(v: np.ndarray) -> bytes:
    return (v / np.linalg.norm(v)).astype(np.float32).tobytes()


def test_nearest_is_the_most_similar_entry_with_its_cosine_score(url: str) -> None:
    async def go(s: StateBackend) -> None:
        assert await s.vectors.nearest("scope", _b(_vec(0))) is None
        for i in range(10):
            await s.vectors.add("scope", f"k{i}", _b(_vec(i)), 60, 100)
        query = _vec(3) + 0.1 * _vec(99)
        match = await s.vectors.nearest("scope", _b(query))
        assert match is not None and match.key == "k3"
        expected = float(np.dot(query, _vec(3)) / np.linalg.norm(query) / np.linalg.norm(_vec(3)))
        assert abs(match.score - expected) < 1e-5
        assert await s.vectors.nearest("other", _b(query)) is None  # scopes never mix

    run_with(url, go)


def test_entries_expire_after_their_ttl(url: str) -> None:
    async def go(s: StateBackend) -> None:
        await s.vectors.add("scope", "old", _b(_vec(1)), 0.1, 100)
        await s.vectors.add("scope", "kept", _b(_vec(2)), 60, 100)
        await asyncio.sleep(0.25)
        match = await s.vectors.nearest("scope", _b(_vec(1)))
        assert match is not None and match.key == "kept"

    run_with(url, go)


def test_a_scope_keeps_only_its_newest_max_entries(url: str) -> None:
    async def go(s: StateBackend) -> None:
        for i in range(40):
            await s.vectors.add("scope", f"k{i}", _b(_vec(i)), 60, 5)
            if i == 2:  # a lookup in between: the Redis mirror syncs incrementally from here
                assert (await s.vectors.nearest("scope", _b(_vec(0)))).key == "k0"  # type: ignore[union-attr]
        for i in range(35):
            match = await s.vectors.nearest("scope", _b(_vec(i)))
            assert match is not None and match.key != f"k{i}"
        for i in range(35, 40):
            match = await s.vectors.nearest("scope", _b(_vec(i)))
            assert match is not None and match.key == f"k{i}" and match.score > 0.999

    run_with(url, go)


def test_vectors_of_any_length_are_compared_by_direction(url: str) -> None:
    async def go(s: StateBackend) -> None:
        await s.vectors.add("scope", "a", (_vec(1) * 7).tobytes(), 60, 10)
        await s.vectors.add("scope", "b", (_vec(2) * 0.01).tobytes(), 60, 10)
        match = await s.vectors.nearest("scope", (_vec(2) * 3).tobytes())
        assert match is not None and match.key == "b" and abs(match.score - 1) < 1e-5

    run_with(url, go)
