"""Managed API keys: what is stored about a key (never the key itself) and the store interface.

A key is issued once (``issue_key``): the caller sees the secret, the store keeps its SHA-256
hash, a short display prefix and its scopes. Rows are never deleted; revoking sets
``revoked_at`` once. Every store passes the contract suite in ``tests/keystore``.
"""

from __future__ import annotations

import re
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any

from keel.errors import InvalidRequest
from keel.keys import generate_key, hash_key
from keel.settings import NAME, Budget, KeyConfig, RateLimit

PREFIX_CHARS = 12
"""How much of a key is kept for display (``sk-keel-`` and 4 random characters)."""

_BUDGET = re.compile(r"^\$?(\d+(?:\.\d+)?)\s*/\s*(day|month)$")


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key may do: its name and scopes (None: every feature or model)."""

    name: str
    features: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    admin: bool = False
    rate_limit: RateLimit | None = None
    budget: Budget | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise InvalidRequest(
                f"invalid key name {self.name!r}: use letters, digits and _ . : - (at most 64 characters)"
            )


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A managed key as stored: its hash and display prefix, scopes and lifetime, never the key."""

    id: str
    spec: KeySpec
    hash: str  # sha256:<hex>, as keel.keys.hash_key makes it
    prefix: str
    created_at: float
    revoked_at: float | None = None

    @property
    def name(self) -> str:
        """The key's name (recorded in the ledger as the key id)."""
        return self.spec.name

    @property
    def active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None

    def to_key_config(self) -> KeyConfig:
        """The key as the gateway and the limit stages see every key, from keel.yaml or a store."""
        s = self.spec
        return KeyConfig(
            name=s.name,
            hash=self.hash,
            features=list(s.features) if s.features is not None else None,
            models=list(s.models) if s.models is not None else None,
            admin=s.admin,
            rate_limit=s.rate_limit,
            budget=s.budget,
        )

    def to_public(self) -> dict[str, Any]:
        """What ``keel keys list`` shows: everything but the hash."""
        s = self.spec
        return {
            "id": self.id,
            "name": s.name,
            "prefix": self.prefix,
            "features": list(s.features) if s.features is not None else None,
            "models": list(s.models) if s.models is not None else None,
            "admin": s.admin,
            "rate_limit": s.rate_limit.model_dump(exclude_none=True) if s.rate_limit else None,
            "budget": s.budget.model_dump(exclude_none=True) if s.budget else None,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class Revision:
    """A store's state in two numbers; it changes whenever a key is created or revoked."""

    keys: int  # rows ever created (revoked ones included)
    revoked: int

    @property
    def ever_had_keys(self) -> bool:
        """True once any key was created, even if every one was revoked since."""
        return self.keys > 0


class KeyStore(ABC):
    """Where managed keys live. Writes are rare (the CLI); the gateway reads a snapshot every few seconds."""

    @abstractmethod
    def add(self, key: StoredKey) -> None:
        """Store a new key; InvalidRequest when an active key already has its name (or its hash)."""

    @abstractmethod
    def list_keys(self, *, include_revoked: bool = False) -> list[StoredKey]:
        """Active keys (with ``include_revoked``, all of them), oldest first."""

    @abstractmethod
    def revoke(self, name: str, *, now: float | None = None) -> StoredKey:
        """Revoke the active key called ``name`` and return it; InvalidRequest when there is none."""

    @abstractmethod
    def revision(self) -> Revision:
        """The store's current revision (cheap: the gateway asks every couple of seconds)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; idempotent."""

    @property
    def location(self) -> str:
        """Where the keys are, for messages (never with a password)."""
        return repr(self)

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def issue_key(store: KeyStore, spec: KeySpec, *, now: float | None = None) -> tuple[str, StoredKey]:
    """Create a key for ``spec`` in ``store``: returns the secret (to show once) and what was stored."""
    secret = generate_key()
    record = StoredKey(
        id="key_" + secrets.token_hex(8),
        spec=spec,
        hash=hash_key(secret),
        prefix=secret[:PREFIX_CHARS],
        created_at=time.time() if now is None else now,
    )
    store.add(record)
    return secret, record


def revoked(key: StoredKey, now: float) -> StoredKey:
    """``key`` with its revocation time set."""
    return replace(key, revoked_at=now)


def parse_budgets(values: list[str]) -> Budget | None:
    """``["10/day", "200/month"]`` → a Budget; InvalidRequest names a malformed or repeated value."""
    per: dict[str, float] = {}
    for value in values:
        m = _BUDGET.match(value.strip())
        if m is None:
            raise InvalidRequest(
                f"--budget-usd {value!r}: expected AMOUNT/day or AMOUNT/month, e.g. 10/day or 200/month"
            )
        amount, period = float(m.group(1)), m.group(2)
        if amount <= 0:
            raise InvalidRequest(f"--budget-usd {value!r}: the amount must be more than 0")
        if period in per:
            raise InvalidRequest(f"--budget-usd: the {period} budget is given twice")
        per[period] = amount
    if not per:
        return None
    return Budget(usd_per_day=per.get("day"), usd_per_month=per.get("month"))
