"""The typed shape of keel.yaml; ``keel.config`` loads files into it and docs/config.md describes each key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel.context.settings import IndexConfig, RetrievalConfig
from keel.evals.review_settings import ReviewSettings
from keel.evals.settings import EvalsSettings, LiveScoring
from keel.monitor.settings import AlertSettings, LedgerSettings, TracingSettings
from keel.prompts.settings import PromptsSettings
from keel.validate.settings import ValidationConfig

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(v: str) -> str:
    if not NAME.match(v):
        raise ValueError("use letters, digits and _ . : - (at most 64 characters)")
    return v


# -- models ---------------------------------------------------------------------------------------


class Price(_Strict):
    """USD per million tokens."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    cached_input_per_mtok: float | None = Field(None, ge=0)

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """USD for a call with these token counts."""
        cached_rate = (
            self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        )
        fresh = max(input_tokens - cached_input_tokens, 0)
        return (
            fresh * self.input_per_mtok
            + cached_input_tokens * cached_rate
            + output_tokens * self.output_per_mtok
        ) / 1_000_000


class RetryConfig(_Strict):
    """Retries of one model on failures that may pass (429, 5xx, timeouts, connection errors)."""

    attempts: int = Field(3, ge=1, le=10)  # tries in all, the first included
    backoff: float = Field(0.2, ge=0)  # base delay in seconds; exponential with full jitter
    max_backoff: float = Field(5.0, gt=0)


class BreakerConfig(_Strict):
    """Per deployment: open after ``failures`` within ``window`` seconds; probe again after ``cooldown``."""

    failures: int = Field(5, ge=1)
    window: float = Field(30.0, gt=0)
    cooldown: float = Field(15.0, gt=0)


class Deployment(_Strict):
    """One place a model is served: the provider's options for it, and its share of traffic."""

    weight: float = Field(1.0, gt=0)
    options: BaseModel = Field(exclude=True)  # validated by the provider's own Options model


class ModelConfig(_Strict):
    """A model keel can call: a name, a provider kind, a price, resilience, and where it is deployed."""

    name: str
    provider: str
    price: Price = Price()
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    balance: Literal["weighted", "least_in_flight", "latency"] = "weighted"
    context_window: int | None = Field(None, gt=0)
    options: BaseModel = Field(exclude=True)  # the provider's options (the first deployment's)
    deployments: list[Deployment] = Field(default_factory=list)  # at least one once loaded

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return _check_name(v)


# -- features -------------------------------------------------------------------------------------


class Limits(_Strict):
    """Size limits checked by the Input layer (413 when exceeded)."""

    max_input_chars: int | None = Field(200_000, gt=0)
    max_input_tokens: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    max_messages: int | None = Field(500, gt=0)


class ExactCacheConfig(_Strict):
    """Answers reused for the same normalised request."""

    ttl: float = Field(3600.0, gt=0)
    deterministic_only: bool = True  # only temperature 0 or a seed, unless false


class SemanticCacheConfig(_Strict):
    """Answers reused for a paraphrase of the same last question, with the same history."""

    # MiniLM scores true rewordings low and near-misses high, so the threshold only keeps different
    # intents out; the guard refuses near-misses (changed numbers, dates, negations, ...). Measured on
    # data/paraphrases: 0.75 with the guard served no wrong answer (bench/semantic_cache.py).
    threshold: float = Field(0.75, gt=0, le=1)
    guard: bool = True
    ttl: float = Field(86400.0, gt=0)
    max_entries: int = Field(10_000, gt=0)  # per scope (feature, prompt version, model)
    deterministic_only: bool = True


class CacheConfig(_Strict):
    """Caching for one feature; each kind is off unless given."""

    exact: ExactCacheConfig | None = None
    semantic: SemanticCacheConfig | None = None


class RouteWhen(_Strict):
    """Conditions of a routing rule; all given ones must hold."""

    input_tokens_over: int | None = Field(None, ge=0)
    input_tokens_under: int | None = Field(None, gt=0)
    pattern: str | None = None  # a regular expression searched in the last user message

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v


class RouteRule(_Strict):
    """Send a call to ``model`` when the condition holds (rules are tried in order)."""

    when: RouteWhen
    model: str


class ComplexityRouting(_Strict):
    """A trained scorer sends hard calls to ``large`` and the rest to ``small``."""

    small: str
    large: str
    target_large_share: float = Field(0.3, ge=0, le=1)  # calibrates the threshold
    threshold: float | None = Field(None, ge=0, le=1)  # an explicit threshold wins over the target


class CascadeRouting(_Strict):
    """Try the cheap model first and escalate when its answer fails validation."""

    models: list[str] = Field(min_length=2)


class RoutingConfig(_Strict):
    """How a feature picks its model per call: rules first, then complexity or cascade."""

    rules: list[RouteRule] = Field(default_factory=list)
    complexity: ComplexityRouting | None = None
    cascade: CascadeRouting | None = None

    @model_validator(mode="after")
    def _one_strategy(self) -> RoutingConfig:
        if self.complexity is not None and self.cascade is not None:
            raise ValueError("use either complexity or cascade routing, not both")
        return self


class RateLimit(_Strict):
    """Requests and tokens per minute."""

    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)


class Budget(_Strict):
    """USD that may be spent per calendar day and month (UTC)."""

    usd_per_day: float | None = Field(None, gt=0)
    usd_per_month: float | None = Field(None, gt=0)


# -- guards (Input and Validation layers) ----------------------------------------------------------

GuardAction = Literal["off", "flag", "redact", "block"]
Role = Literal["system", "developer", "user", "assistant", "tool"]


class InjectionGuard(_Strict):
    """Prompt-injection and jailbreak detection: signatures, then a classifier, then an optional judge."""

    enabled: bool = True
    action: Literal["block", "flag", "strip"] = "block"  # for scores at or above block_threshold
    block_threshold: float = Field(0.85, ge=0, le=1)
    flag_threshold: float = Field(0.5, ge=0, le=1)  # at or above: answered, but recorded
    judge: str | None = None  # a model name asked about the grey zone (flag_threshold..block_threshold)
    # whose messages are scanned; the app's own system prompt is trusted
    roles: tuple[Role, ...] = ("user", "tool")

    @model_validator(mode="after")
    def _ordered(self) -> InjectionGuard:
        if self.flag_threshold > self.block_threshold:
            raise ValueError("flag_threshold must not exceed block_threshold")
        return self


class PIIGuard(_Strict):
    """Personal data in the input: found with pattern recognisers, then redacted or pseudonymised."""

    action: Literal["off", "flag", "redact", "pseudonymize", "block"] = "off"
    entities: list[str] | None = None  # None: every supported entity type
    restore: bool = False  # put the original values back into the answer (pseudonymize)
    score_threshold: float = Field(0.5, ge=0, le=1)


class InputGuards(_Strict):
    """The Input layer's defences for one feature."""

    injection: InjectionGuard = InjectionGuard()
    pii: PIIGuard = PIIGuard()
    secrets: GuardAction = "redact"  # API keys, tokens, private keys pasted into a prompt


class OutputGuards(_Strict):
    """The Validation layer's leakage checks for one feature."""

    pii: GuardAction = "off"
    secrets: GuardAction = "redact"
    canary: bool = True  # a secret token in the system prompt; an answer repeating it is blocked
    system_prompt_leak: bool = True  # a long verbatim run of the system prompt is blocked
    min_leak_chars: int = Field(80, ge=20)


class ToolSpec(_Strict):
    """A tool the model may call, with the JSON schema its arguments must satisfy."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    side_effects: bool = False  # changes something outside (send, buy, delete) rather than reads
    confirm: bool = False  # a side-effecting call must be confirmed by the caller before it is returned


class FeatureConfig(_Strict):
    """A named pipeline configuration: model, prompt, schema, limits, caching, routing, resilience."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    model: str
    prompt: str | None = None  # NAME (the file as it is), NAME@LABEL or NAME@VERSION (from the registry)
    prompt_split: dict[str, float] | None = None  # A/B: label → weight, e.g. {production: 90, staging: 10}
    # A JSON schema, or a Pydantic model's import path (myapp.models:Invoice)
    output_schema: dict[str, Any] | str | None = Field(None, alias="schema")
    description: str = ""
    limits: Limits = Limits()
    variables: dict[str, Any] = Field(default_factory=dict)
    fallbacks: list[str] = Field(default_factory=list)
    deadline: float = Field(60.0, gt=0)  # seconds for the whole call: every retry and fallback included
    cache: CacheConfig = CacheConfig()
    coalesce: bool = True  # identical deterministic requests in flight share one upstream call
    routing: RoutingConfig | None = None
    rate_limit: RateLimit | None = None
    budget: Budget | None = None
    input: InputGuards = InputGuards()
    output: OutputGuards = OutputGuards()
    tools: list[ToolSpec] | None = None  # None: tools in requests pass through unchecked
    retrieval: RetrievalConfig | None = None  # keel.context.settings: sources put into the prompt
    validation: ValidationConfig = ValidationConfig()
    scoring: LiveScoring | None = None  # a sample of answered calls scored by assertions (keel.evals.live)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return _check_name(v)

    def models_used(self) -> list[str]:
        """Every model this feature may call: primary, fallbacks, routes and the judges."""
        names = [self.model, *self.fallbacks]
        if self.input.injection.judge is not None:
            names.append(self.input.injection.judge)
        grounding = self.validation.grounding
        if grounding is not None and grounding.judge is not None:
            names.append(grounding.judge)
        r = self.routing
        if r is not None:
            names += [rule.model for rule in r.rules]
            if r.complexity is not None:
                names += [r.complexity.small, r.complexity.large]
            if r.cascade is not None:
                names += r.cascade.models
        return list(dict.fromkeys(names))


# -- the rest -------------------------------------------------------------------------------------


class KeyConfig(_Strict):
    """An API key the gateway accepts, stored only as a hash (``keel keys hash`` prints one)."""

    name: str
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    features: list[str] | None = None  # None: every feature
    models: list[str] | None = None  # None: every model; else a feature is usable only if all its models are
    admin: bool = False
    rate_limit: RateLimit | None = None
    budget: Budget | None = None


class EmbeddingsConfig(_Strict):
    """The embedding model for the semantic cache (and retrieval): local MiniLM or an HTTP endpoint."""

    provider: Literal["local", "openai"] = "local"
    model: str = "all-MiniLM-L6-v2"
    base_url: str | None = None  # for provider: openai
    api_key_env: str | None = None
    runtime: Literal["auto", "onnx", "torch"] = "auto"  # for provider: local (see context/local_embed.py)
    threads: int | None = Field(None, gt=0)  # the local model's threads (default: the cores, at most 4)
    batch_size: int = Field(32, gt=0)
    batch_wait_ms: float = Field(0.0, ge=0)  # how long a lone request waits for company (busy: always)

    @model_validator(mode="after")
    def _url_for_http(self) -> EmbeddingsConfig:
        if self.provider == "openai" and not self.base_url:
            raise ValueError("provider openai needs base_url")
        return self


class StorageConfig(_Strict):
    """Where keel keeps its state. Relative paths are relative to the config file."""

    path: Path = Path(".keel/keel.db")


class ServerConfig(_Strict):
    """The gateway's listening address and request limits."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    default_feature: str | None = None


class Settings(_Strict):
    """The whole configuration."""

    models: list[ModelConfig]
    features: list[FeatureConfig]
    keys: list[KeyConfig] = Field(default_factory=list)
    key_store: str | None = None  # keel.keystore: postgresql://… shares managed keys; None: storage.path
    state: str = "memory"  # caches, limits, budgets, breakers: "memory" (in-process) or redis://host:port/db
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    storage: StorageConfig = StorageConfig()
    ledger: LedgerSettings = LedgerSettings()  # keel.monitor.settings
    tracing: TracingSettings = TracingSettings()  # keel.monitor.settings
    alerts: AlertSettings = AlertSettings()  # keel.monitor.settings
    review: ReviewSettings = ReviewSettings()  # keel.evals.review_settings: calls sampled for human review
    server: ServerConfig = ServerConfig()
    index: IndexConfig = IndexConfig()  # keel.context.settings: where retrieved documents live
    prompts_dir: Path = Path("prompts")
    prompts: PromptsSettings = PromptsSettings()
    evals: EvalsSettings = EvalsSettings()
    source: str = Field("<default>", exclude=True)  # the file this came from, for messages
    base_dir: Path = Field(Path("."), exclude=True)  # relative paths resolve against this

    @field_validator("state")
    @classmethod
    def _state_url(cls, v: str) -> str:
        if v != "memory" and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected 'memory' or a Redis URL such as redis://127.0.0.1:6379/0")
        return v

    def model(self, name: str) -> ModelConfig:
        """The model called ``name``."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def feature(self, name: str) -> FeatureConfig:
        """The feature called ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def resolve(self, path: Path) -> Path:
        """``path`` made absolute against the config file's directory."""
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def db_path(self) -> Path:
        """The SQLite file for the ledger and other embedded state."""
        return self.resolve(self.storage.path)
