"""A stored key as one table row, the same in every SQL store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

from keel.keystore.base import KeySpec, StoredKey
from keel.settings import Budget, RateLimit

COLUMNS = (
    "id, name, hash, prefix, features, models, admin, rpm, tpm, usd_per_day, usd_per_month, "
    "created_at, revoked_at"
)
"""The ``api_keys`` columns in row order (features and models as JSON lists, admin as 0 or 1)."""


def _json_list(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def to_row(key: StoredKey) -> tuple[Any, ...]:
    """``key`` as the values of ``COLUMNS``."""
    s = key.spec
    rl, b = s.rate_limit, s.budget
    return (
        key.id, s.name, key.hash, key.prefix, _json_list(s.features), _json_list(s.models), int(s.admin),
        rl.rpm if rl else None, rl.tpm if rl else None,
        b.usd_per_day if b else None, b.usd_per_month if b else None,
        key.created_at, key.revoked_at,
    )  # fmt: skip


def from_row(r: tuple[Any, ...]) -> StoredKey:
    """The key a row of ``COLUMNS`` holds."""
    (id_, name, hash_, prefix, features, models, admin, rpm, tpm, day, month, created, revoked_at) = r
    spec = KeySpec(
        name=name,
        features=tuple(json.loads(features)) if features is not None else None,
        models=tuple(json.loads(models)) if models is not None else None,
        admin=bool(admin),
        rate_limit=RateLimit(rpm=rpm, tpm=tpm) if rpm is not None or tpm is not None else None,
        budget=Budget(usd_per_day=day, usd_per_month=month) if day is not None or month is not None else None,
    )
    return StoredKey(id_, spec, hash_, prefix, created, revoked_at)
