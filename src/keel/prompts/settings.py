"""The ``prompts`` section of keel.yaml: where the registry lives and how often the gateway polls it.

Plain pydantic models with no imports from the rest of keel, so ``keel.settings`` can use them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PromptsSettings(BaseModel):
    """The prompt registry: a SQLite file (default: keel's state file) or a PostgreSQL URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry: str | None = (
        None  # postgresql://user@host/db[?schema=name], a SQLite path, or None: storage.path
    )
    refresh_seconds: float = Field(2.0, gt=0, le=3600)  # how stale a label may be on a running gateway
    sync: bool = True  # register changed files of prompts_dir as new versions when keel loads
