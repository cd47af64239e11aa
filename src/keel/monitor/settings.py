"""The Monitoring layer's part of keel.yaml: ``ledger``, ``tracing`` and ``alerts``.

Plain pydantic models with no imports from the rest of keel, so ``keel.settings`` can use them
without an import cycle. Durations are seconds, or a string such as ``90s``, ``15m``, ``1h``, ``7d``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string like ``15m``; anything else is left for pydantic to refuse."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(f"expected a duration such as 90s, 15m, 1h or 7d, got {value!r}")
        return float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    return value


def is_postgres_url(target: str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return target.startswith(_POSTGRES_SCHEMES)


# -- ledger -----------------------------------------------------------------------------------------


class LedgerSettings(_Strict):
    """The usage ledger: where it lives, how often it is written, how long rows are kept.

    ``ledger: postgresql://...`` is short for ``ledger: {url: postgresql://...}``.
    """

    enabled: bool = True
    # postgresql://user@host:5432/db[?schema=name] (the password from PGPASSWORD or ~/.pgpass),
    # or a SQLite file path; None: the SQLite file at storage.path.
    url: str | None = None
    flush_interval: float = Field(1.0, gt=0, le=60)  # at most this long between batches (lost on kill -9)
    batch_size: int = Field(1000, gt=0)  # write sooner when this many rows wait
    max_pending: int = Field(100_000, gt=0)  # while the ledger is down, older rows beyond this are dropped
    retention_days: float | None = Field(None, gt=0)  # None: keep every row
    retention_check: float = Field(3600.0, gt=0)  # seconds between deletions of expired rows

    @model_validator(mode="before")
    @classmethod
    def _url_alone(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @field_validator("retention_check", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)

    @field_validator("url")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip()
        if not v:
            raise ValueError("expected a postgresql:// URL or a SQLite file path")
        if "://" in v and not is_postgres_url(v):
            raise ValueError(
                f"unsupported ledger URL scheme {v.split('://', 1)[0]!r}: "
                "expected postgresql://user@host:5432/db or a SQLite file path"
            )
        return v

    @property
    def retention_seconds(self) -> float | None:
        """``retention_days`` in seconds."""
        return None if self.retention_days is None else self.retention_days * 86400


# -- tracing ------------------------------------------------------------------------------------------


class TracingSettings(_Strict):
    """OpenTelemetry traces: spans per call, layer and stage, sent over OTLP/HTTP when an endpoint is set."""

    endpoint: str | None = None  # e.g. http://127.0.0.1:4318/v1/traces; None: tracing off (no cost)
    headers_env: dict[str, str] = Field(default_factory=dict)  # header name → env var holding its value
    service_name: str = "keel"
    include_content: bool = (
        False  # messages and answers as span events (redacted input, when redaction is on)
    )
    sample_ratio: float = Field(1.0, ge=0, le=1)
    timeout: float = Field(10.0, gt=0)  # seconds per export request

    @field_validator("endpoint")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an OTLP/HTTP URL such as http://127.0.0.1:4318/v1/traces")
        return v

    @property
    def enabled(self) -> bool:
        """True when spans are exported."""
        return self.endpoint is not None


# -- alerts -------------------------------------------------------------------------------------------

AlertMetric = Literal["cost_usd", "error_rate", "p95_latency_ms", "guard_blocks", "eval_score"]
_LOWER_IS_WORSE: frozenset[str] = frozenset({"eval_score"})


class AlertRule(_Strict):
    """A threshold on one metric per feature over a sliding window: ``warn`` first, then ``alert``.

    ``cost_usd`` (sum), ``error_rate`` (errors / calls, 0..1), ``p95_latency_ms`` (whole call),
    ``guard_blocks`` (blocked calls; with ``stage``: that stage's blocks) and ``eval_score`` (mean
    score of the verdicts of ``stage``, default every ``eval.*`` stage; lower is worse).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    metric: AlertMetric
    feature: str | None = None  # None: every feature, each on its own
    window: float = Field(3600.0, gt=0)  # seconds (or 15m, 1h, 1d)
    warn: float | None = None
    alert: float | None = None
    direction: Literal["above", "below"] | None = None  # default: below for eval_score, else above
    min_calls: int = Field(1, ge=1)  # fewer calls in the window: no verdict (rates need a sample)
    stage: str | None = None
    webhooks: list[str] | None = None  # None: alerts.webhooks

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [_check_webhook(u) for u in v]

    @model_validator(mode="after")
    def _thresholds(self) -> AlertRule:
        if self.warn is None and self.alert is None:
            raise ValueError("give warn, alert or both")
        if self.warn is not None and self.alert is not None:
            if self.lower_is_worse and self.warn < self.alert:
                raise ValueError(f"{self.metric} alerts below its thresholds: warn must be >= alert")
            if not self.lower_is_worse and self.warn > self.alert:
                raise ValueError("warn must be <= alert")
        if self.stage is not None and self.metric not in ("guard_blocks", "eval_score"):
            raise ValueError("stage applies to guard_blocks and eval_score only")
        return self

    @property
    def lower_is_worse(self) -> bool:
        """True when values below the thresholds are bad (eval scores, unless told otherwise)."""
        if self.direction is not None:
            return self.direction == "below"
        return self.metric in _LOWER_IS_WORSE


class AlertSettings(_Strict):
    """Alert rules evaluated from the ledger every ``interval`` seconds; changes POSTed to webhooks."""

    interval: float = Field(30.0, gt=0)
    webhooks: list[str] = Field(default_factory=list)
    rules: list[AlertRule] = Field(default_factory=list)
    timeout: float = Field(5.0, gt=0)  # seconds per delivery attempt
    attempts: int = Field(5, ge=1, le=20)  # per delivery, with exponential backoff between them
    backoff: float = Field(1.0, ge=0)  # first delay between attempts, in seconds

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return [_check_webhook(u) for u in v]

    @model_validator(mode="after")
    def _unique(self) -> AlertSettings:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return self


def _check_webhook(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook {url!r}: expected an http:// or https:// URL")
    return url
