"""Bearer-key authentication and key scopes: which features, models and endpoints a key may reach.

Keys come from a ``KeyDirectory`` (keel.yaml plus the key store, in memory). With no key
anywhere the gateway is open, as before any key was made; see ``KeyDirectory.enabled``.
"""

from __future__ import annotations

from keel.errors import AuthenticationError, PermissionDenied
from keel.keys import hash_key
from keel.keystore import KeyDirectory
from keel.settings import FeatureConfig, KeyConfig


class KeyRing:
    """Authenticates requests against a key directory and checks what the key may do."""

    def __init__(self, keys: KeyDirectory | list[KeyConfig]) -> None:
        self.directory = keys if isinstance(keys, KeyDirectory) else KeyDirectory(keys)

    @property
    def enabled(self) -> bool:
        """True when requests must carry a key."""
        return self.directory.enabled

    async def authenticate(self, authorization: str | None) -> KeyConfig | None:
        """The key behind an ``Authorization`` header; None when the gateway is open and none was sent.

        Only an unknown key touches the store (a reload at most once a second); a known one is a dict read.
        """
        directory = self.directory
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if not directory.enabled and not token:
            return None
        if scheme and scheme.lower() != "bearer":
            if not directory.enabled:
                return None
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <key>'")
        if not token:
            raise AuthenticationError("missing API key: send the header 'Authorization: Bearer <key>'")
        # The lookup is by hash of a high-entropy key, so its timing reveals nothing about a valid key.
        digest = hash_key(token)
        key = directory.by_hash(digest)
        if key is None:
            await directory.refresh_on_miss()
            key = directory.by_hash(digest)
        if key is None and directory.enabled:
            raise AuthenticationError("invalid API key")
        return key

    @staticmethod
    def check_feature(key: KeyConfig | None, feature: FeatureConfig) -> None:
        """Raise PermissionDenied naming the feature or model ``key`` may not use."""
        if key is None:
            return
        if key.features is not None and feature.name not in key.features:
            raise PermissionDenied(f"API key {key.name!r} may not use feature {feature.name!r}")
        if key.models is not None:
            for model in feature.models_used():
                if model not in key.models:
                    raise PermissionDenied(
                        f"API key {key.name!r} may not use model {model!r}, "
                        f"which feature {feature.name!r} may call"
                    )

    @staticmethod
    def check_admin(key: KeyConfig | None) -> None:
        """Raise PermissionDenied unless ``key`` is an admin key (or the gateway is open)."""
        if key is not None and not key.admin:
            raise PermissionDenied(f"API key {key.name!r} is not an admin key")

    @staticmethod
    def may_use(key: KeyConfig | None, feature: FeatureConfig) -> bool:
        """True when ``key`` may use ``feature`` (its name and every model it may call)."""
        if key is None:
            return True
        if key.features is not None and feature.name not in key.features:
            return False
        return key.models is None or all(m in key.models for m in feature.models_used())

    async def require_admin(self, authorization: str | None) -> KeyConfig | None:
        """Authenticate an admin endpoint's request: 401 without a valid key, 403 for a non-admin key."""
        key = await self.authenticate(authorization)
        self.check_admin(key)
        return key
