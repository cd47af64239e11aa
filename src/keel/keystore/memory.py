"""Managed API keys in memory: the fake for tests, and the reference the SQLite store is checked against."""

from __future__ import annotations

import threading
import time

from keel.errors import InvalidRequest
from keel.keystore.base import KeyStore, Revision, StoredKey, revoked


class MemoryKeyStore(KeyStore):
    """Keys in a list, guarded by a lock (the gateway reads from a worker thread)."""

    def __init__(self) -> None:
        self._keys: list[StoredKey] = []
        self._lock = threading.Lock()

    def add(self, key: StoredKey) -> None:
        """Append ``key``; InvalidRequest when an active key has its name or any key its hash."""
        with self._lock:
            if any(k.active and k.name == key.name for k in self._keys):
                raise InvalidRequest(
                    f"an active key named {key.name!r} already exists; revoke it or choose another name"
                )
            if any(k.hash == key.hash for k in self._keys):
                raise InvalidRequest("a key with this hash already exists")
            self._keys.append(key)

    def list_keys(self, *, include_revoked: bool = False) -> list[StoredKey]:
        """Active keys (or all of them), oldest first."""
        with self._lock:
            out = [k for k in self._keys if include_revoked or k.active]
        return sorted(out, key=lambda k: (k.created_at, k.id))

    def revoke(self, name: str, *, now: float | None = None) -> StoredKey:
        """Mark the active key called ``name`` revoked."""
        with self._lock:
            for i, k in enumerate(self._keys):
                if k.active and k.name == name:
                    self._keys[i] = revoked(k, time.time() if now is None else now)
                    return self._keys[i]
        raise InvalidRequest(f"no active key named {name!r} (see: keel keys list)")

    def revision(self) -> Revision:
        """Keys ever created, keys revoked."""
        with self._lock:
            return Revision(len(self._keys), sum(not k.active for k in self._keys))

    def close(self) -> None:
        """Nothing to release."""
