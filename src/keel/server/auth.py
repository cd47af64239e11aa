"""Bearer-key authentication against the configured key hashes."""

from __future__ import annotations

from keel.config import KeyConfig
from keel.errors import AuthenticationError, PermissionDenied
from keel.keys import hash_key


class KeyRing:
    """The keys a gateway accepts; empty means the gateway is open (no ``keys:`` configured)."""

    def __init__(self, keys: list[KeyConfig]) -> None:
        self._by_hash = {k.hash: k for k in keys}

    @property
    def enabled(self) -> bool:
        """True when requests must carry a key."""
        return bool(self._by_hash)

    def authenticate(self, authorization: str | None) -> KeyConfig | None:
        """The key behind an ``Authorization`` header; None when keys are not configured."""
        if not self._by_hash:
            return None
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme and scheme.lower() != "bearer":
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <key>'")
        if not token:
            raise AuthenticationError("missing API key: send the header 'Authorization: Bearer <key>'")
        # The lookup is by hash of a high-entropy key, so its timing reveals nothing about a valid key.
        key = self._by_hash.get(hash_key(token))
        if key is None:
            raise AuthenticationError("invalid API key")
        return key

    @staticmethod
    def check_feature(key: KeyConfig | None, feature: str) -> None:
        """Raise PermissionDenied when ``key`` may not use ``feature``."""
        if key is not None and key.features is not None and feature not in key.features:
            raise PermissionDenied(f"API key {key.name!r} may not use feature {feature!r}")

    @staticmethod
    def check_admin(key: KeyConfig | None) -> None:
        """Raise PermissionDenied unless ``key`` is an admin key (or keys are not configured)."""
        if key is not None and not key.admin:
            raise PermissionDenied(f"API key {key.name!r} is not an admin key")

    @staticmethod
    def may_use(key: KeyConfig | None, feature: str) -> bool:
        """True when ``key`` may use ``feature``."""
        return key is None or key.features is None or feature in key.features
