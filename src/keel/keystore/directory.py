"""Every key a gateway accepts, from keel.yaml and from the key store, looked up in memory.

The hot path never touches the disk: lookups by hash and by name are dict reads on a snapshot.
The snapshot is reloaded in a worker thread every ``refresh_every`` seconds (2 s) when the
store's revision changed, and when a request brings an unknown key, at most once per
``miss_every`` seconds (1 s) however many such requests come. So a new key works within about
a second, and a revoked key stops working within ``refresh_every`` plus one reload. When the
store cannot be read, the last snapshot stays in force and a warning is logged; a store never
read yet (e.g. PostgreSQL down at start-up) closes the gateway to all but keel.yaml keys rather
than leave it open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from keel.errors import KeelError
from keel.keystore.base import KeyStore, Revision
from keel.settings import KeyConfig

log = logging.getLogger("keel.keys")

REFRESH_EVERY = 2.0
MISS_EVERY = 1.0

KeyLookup = Callable[[str], KeyConfig | None]
"""A key's scopes and limits by name (what the rate-limit and budget stages need)."""


class KeyDirectory:
    """keel.yaml keys plus a store's active keys; keel.yaml wins when a name is in both."""

    def __init__(
        self,
        configured: list[KeyConfig],
        store: KeyStore | None = None,
        *,
        refresh_every: float = REFRESH_EVERY,
        miss_every: float = MISS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_every = refresh_every
        self.miss_every = miss_every
        self.clock = clock
        self._configured = list(configured)
        self._by_hash: dict[str, KeyConfig] = {k.hash: k for k in configured}
        self._by_name: dict[str, KeyConfig] = {k.name: k for k in configured}
        self._revision: Revision | None = None
        self._store_ever = False
        self._loaded_at = -float("inf")
        self._loading: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._shadowed: set[str] = set()

    # -- lookups (hot path: no I/O) ---------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """True when requests must carry a key: keel.yaml lists keys, or the store ever held one.

        A store whose keys were all revoked keeps the gateway closed rather than opening it.
        """
        return bool(self._configured) or self._store_ever

    def by_hash(self, key_hash: str) -> KeyConfig | None:
        """The active key with this ``sha256:`` hash."""
        return self._by_hash.get(key_hash)

    def by_name(self, name: str) -> KeyConfig | None:
        """The active key called ``name`` (a ``KeyLookup``)."""
        return self._by_name.get(name)

    # -- reloading ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the store now, in this thread (at start-up, and from the CLI)."""
        if self.store is not None:
            self._install(*self._read(None))

    async def refresh(self) -> None:
        """Reload from the store in a worker thread if it changed; concurrent callers share one reload."""
        if self.store is None:
            return
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._reload())
        await asyncio.shield(self._loading)

    async def refresh_on_miss(self) -> None:
        """Reload for a request with an unknown key, unless the last reload is under ``miss_every`` old."""
        if self.store is None:
            return
        if self._loading is not None and not self._loading.done():
            await asyncio.shield(self._loading)  # a reload under way may bring this very key
        elif self.clock() - self._loaded_at >= self.miss_every:
            await self.refresh()

    async def start(self) -> None:
        """Load the store and keep reloading it every ``refresh_every`` seconds until ``aclose``."""
        if self.store is None or self._ticker is not None:
            return
        await self.refresh()
        self._ticker = asyncio.ensure_future(self._tick())

    async def aclose(self) -> None:
        """Stop reloading and close the store."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if self._loading is not None and not self._loading.done():
            await asyncio.shield(self._loading)
        if self.store is not None:
            self.store.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_every)
            await self.refresh()

    async def _reload(self) -> None:
        self._loaded_at = self.clock()
        try:
            revision, keys = await asyncio.to_thread(self._read, self._revision)
        except KeelError as exc:
            log.warning("event=key_store_unreadable store=%r error=%s", self.store, exc.message)
            if self._revision is None:
                self._store_ever = True  # never read: closed (keel.yaml keys only) rather than open
            return
        self._install(revision, keys)

    def _read(self, known: Revision | None) -> tuple[Revision, list[KeyConfig] | None]:
        """The store's revision, and its active keys when that differs from ``known``."""
        assert self.store is not None
        revision = self.store.revision()
        if revision == known:
            return revision, None
        return revision, [k.to_key_config() for k in self.store.list_keys()]

    def _install(self, revision: Revision, keys: list[KeyConfig] | None) -> None:
        """Swap in a new snapshot (one assignment each, so a lookup never sees half of one)."""
        self._loaded_at = self.clock()
        self._store_ever = revision.ever_had_keys
        if keys is None:
            return
        by_hash = {k.hash: k for k in self._configured}
        by_name = {k.name: k for k in self._configured}
        for k in keys:
            if k.name in by_name or k.hash in by_hash:
                if k.name not in self._shadowed:
                    self._shadowed.add(k.name)
                    log.warning("event=key_shadowed name=%s reason=a keel.yaml key has its name", k.name)
                continue
            old = self._by_name.get(k.name)
            k = old if old is not None and old == k else k  # unchanged keys keep their identity
            by_hash[k.hash] = k
            by_name[k.name] = k
        self._by_hash, self._by_name = by_hash, by_name
        self._revision = revision
