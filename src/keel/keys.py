"""API keys: generated with enough entropy that a plain SHA-256 is a safe way to store them."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-keel-"


def generate_key() -> str:
    """A new random API key (shown once; store only its hash)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of ``key``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
