"""The gateway's view of every key: keel.yaml plus the store, in memory, reloaded within seconds."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from keel.errors import AuthenticationError, ConfigError, PermissionDenied
from keel.keys import hash_key
from keel.keystore import KeyDirectory, KeySpec, MemoryKeyStore, Revision, SQLiteKeyStore, issue_key
from keel.server.auth import KeyRing
from keel.settings import FeatureConfig, KeyConfig, RateLimit

pytestmark = pytest.mark.unit

YAML_KEY = "sk-test-from-yaml"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryKeyStore):
    """A memory store that counts how often the gateway read it, and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.broken = False

    def revision(self) -> Revision:
        self.reads += 1
        if self.broken:
            raise ConfigError("key store: disk I/O error")
        return super().revision()


def closed(directory: KeyDirectory) -> bool:
    """True when requests must carry a key (a call, so that type checkers do not pin the value)."""
    return directory.enabled


def _yaml_key(**kw: object) -> KeyConfig:
    return KeyConfig(name="yaml", hash=hash_key(YAML_KEY), **kw)


def test_a_key_created_or_revoked_while_running_is_seen_at_the_next_reload() -> None:
    async def go() -> None:
        store = CountingStore()
        directory = KeyDirectory([], store)
        await directory.start()
        assert not closed(directory)
        secret, _ = issue_key(store, KeySpec("app", rate_limit=RateLimit(rpm=3)))
        assert directory.by_hash(hash_key(secret)) is None  # not before a reload
        await directory.refresh()
        key = directory.by_hash(hash_key(secret))
        assert key is not None and key.rate_limit == RateLimit(rpm=3) and directory.by_name("app") is key
        await directory.refresh()
        assert directory.by_name("app") is key  # unchanged keys keep their identity (limit caches)
        store.revoke("app")
        await directory.refresh()
        assert directory.by_hash(hash_key(secret)) is None and directory.by_name("app") is None
        assert closed(directory)  # every key revoked: the gateway stays closed
        await directory.aclose()

    asyncio.run(go())


def test_the_background_reload_runs_every_refresh_interval() -> None:
    async def go() -> None:
        store = CountingStore()
        directory = KeyDirectory([], store, refresh_every=0.01)
        await directory.start()
        secret, _ = issue_key(store, KeySpec("app"))
        for _ in range(500):
            if directory.by_hash(hash_key(secret)) is not None:
                break
            await asyncio.sleep(0.01)
        assert directory.by_name("app") is not None
        await directory.aclose()

    asyncio.run(go())


def test_unknown_keys_reload_the_store_at_most_once_per_interval() -> None:
    async def go() -> None:
        store, clock = CountingStore(), Clock()
        directory = KeyDirectory([_yaml_key()], store, clock=clock)
        ring = KeyRing(directory)
        await directory.refresh()
        reads = store.reads
        for _ in range(20):
            with pytest.raises(AuthenticationError, match="invalid API key"):
                await ring.authenticate("Bearer sk-keel-made-up")
        assert store.reads == reads  # the last reload is less than a second old
        clock.now += 1.0
        secret, _ = issue_key(store, KeySpec("fresh"))
        key = await ring.authenticate(f"Bearer {secret}")
        assert key is not None and key.name == "fresh" and store.reads == reads + 1
        assert await ring.authenticate(f"Bearer {YAML_KEY}") == _yaml_key()
        assert store.reads == reads + 1  # known keys never touch the store

    asyncio.run(go())


def test_keel_yaml_wins_over_a_store_key_of_the_same_name(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryKeyStore()
    secret, _ = issue_key(store, KeySpec("yaml", admin=True))
    directory = KeyDirectory([_yaml_key()], store)
    with caplog.at_level(logging.WARNING, logger="keel.keys"):
        directory.load()
    assert directory.by_hash(hash_key(secret)) is None and directory.by_name("yaml") == _yaml_key()
    assert "event=key_shadowed name=yaml" in caplog.text


def test_an_unreadable_store_keeps_the_last_keys_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        store = CountingStore()
        secret, _ = issue_key(store, KeySpec("app"))
        directory = KeyDirectory([], store)
        await directory.refresh()
        store.broken = True
        with caplog.at_level(logging.WARNING, logger="keel.keys"):
            await directory.refresh()
        assert directory.by_hash(hash_key(secret)) is not None
        assert "event=key_store_unreadable" in caplog.text and "disk I/O error" in caplog.text

    asyncio.run(go())


def test_a_store_unreadable_from_the_start_closes_the_gateway_until_it_can_be_read() -> None:
    async def go() -> None:
        store = CountingStore()
        secret, _ = issue_key(store, KeySpec("app"))
        store.broken = True
        directory, clock = KeyDirectory([_yaml_key()], store), Clock()
        directory.clock = clock
        ring = KeyRing(directory)
        await directory.start()
        assert directory.enabled  # fail closed: requests need a key even though none is known
        with pytest.raises(AuthenticationError, match="missing API key"):
            await ring.authenticate(None)
        assert await ring.authenticate(f"Bearer {YAML_KEY}") == _yaml_key()
        with pytest.raises(AuthenticationError, match="invalid API key"):
            await ring.authenticate(f"Bearer {secret}")
        store.broken, clock.now = False, clock.now + 1.0
        key = await ring.authenticate(f"Bearer {secret}")  # readable again: the next miss reloads it
        assert key is not None and key.name == "app"
        await directory.aclose()

    asyncio.run(go())


def test_an_open_gateway_lets_requests_without_a_key_through_until_a_key_exists(tmp_path: Path) -> None:
    async def go() -> None:
        store, clock = SQLiteKeyStore(tmp_path / "k.db"), Clock()
        ring = KeyRing(KeyDirectory([], store, clock=clock))
        assert await ring.authenticate(None) is None
        assert await ring.authenticate("Bearer unused-without-keys") is None
        issue_key(store, KeySpec("first"))
        clock.now += 1.0
        with pytest.raises(AuthenticationError, match="invalid API key"):
            await ring.authenticate("Bearer unused-without-keys")
        with pytest.raises(AuthenticationError, match="missing API key"):
            await ring.authenticate(None)

    asyncio.run(go())


def test_scopes_name_the_feature_or_the_model_a_key_may_not_use() -> None:
    feature = FeatureConfig(name="support", model="small", fallbacks=["big"])
    anything = _yaml_key()
    only_extract = _yaml_key(features=["extract"])
    only_small = _yaml_key(models=["small"])
    both = _yaml_key(features=["support"], models=["small", "big"])
    for key in (None, anything, both):
        KeyRing.check_feature(key, feature)
        assert KeyRing.may_use(key, feature)
    with pytest.raises(PermissionDenied, match="may not use feature 'support'"):
        KeyRing.check_feature(only_extract, feature)
    with pytest.raises(PermissionDenied, match="may not use model 'big', which feature 'support' may call"):
        KeyRing.check_feature(only_small, feature)
    assert not KeyRing.may_use(only_extract, feature) and not KeyRing.may_use(only_small, feature)
    with pytest.raises(PermissionDenied, match="is not an admin key"):
        KeyRing.check_admin(anything)
    KeyRing.check_admin(_yaml_key(admin=True))
    KeyRing.check_admin(None)
