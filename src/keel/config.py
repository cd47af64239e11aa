"""keel.yaml → typed settings, validated once at load, with errors that name file, line and key."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keel.errors import ConfigError
from keel.llm.providers import provider_class

DEFAULT_CONFIG_NAME = "keel.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class ModelConfig(_Strict):
    """A model keel can call: a name, a provider kind, a price, and the provider's own options."""

    name: str
    provider: str
    price: Price = Price()
    options: BaseModel = Field(exclude=True)  # validated by the provider's own Options model

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use letters, digits and _ . : - (at most 64 characters)")
        return v


class Limits(_Strict):
    """Size limits checked by the Input layer (413 when exceeded)."""

    max_input_chars: int | None = Field(200_000, gt=0)
    max_input_tokens: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    max_messages: int | None = Field(500, gt=0)


class FeatureConfig(_Strict):
    """A named pipeline configuration: which model, which prompt, which output schema, which limits."""

    name: str
    model: str
    prompt: str | None = None
    output_schema: dict[str, Any] | None = Field(None, alias="schema")
    description: str = ""
    limits: Limits = Limits()
    variables: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use letters, digits and _ . : - (at most 64 characters)")
        return v


class KeyConfig(_Strict):
    """An API key the gateway accepts, stored only as a hash (``keel keys hash`` prints one)."""

    name: str
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    features: list[str] | None = None  # None: every feature
    admin: bool = False


class StorageConfig(_Strict):
    """Where keel keeps its state. Relative paths are relative to the config file."""

    path: Path = Path(".keel/keel.db")


class LedgerConfig(_Strict):
    """The usage ledger: one row per call, written in batches off the request path."""

    enabled: bool = True
    flush_interval: float = Field(1.0, gt=0, le=60)
    batch_size: int = Field(1000, gt=0)


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
    storage: StorageConfig = StorageConfig()
    ledger: LedgerConfig = LedgerConfig()
    server: ServerConfig = ServerConfig()
    prompts_dir: Path = Path("prompts")
    source: str = Field("<default>", exclude=True)  # the file this came from, for messages
    base_dir: Path = Field(Path("."), exclude=True)  # relative paths resolve against this

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


# ---------------------------------------------------------------------------------------------
# Loading: YAML with line numbers, then pydantic, then cross-references.

_MODEL_COMMON = {"name", "provider", "price"}


def load_config(path: str | Path | None = None) -> Settings:
    """Load and validate ``path``; with no path, ``./keel.yaml`` if present, else the embedded default."""
    if path is None:
        candidate = Path(DEFAULT_CONFIG_NAME)
        if not candidate.exists():
            return default_settings()
        path = candidate
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc}") from None
    return parse_config(text, source=str(p), base_dir=p.resolve().parent)


def default_settings(base_dir: Path | None = None) -> Settings:
    """The zero-config embedded default: one feature on the local Gemma model."""
    data = {
        "models": [{"name": "local", "provider": "llamacpp"}],
        "features": [{"name": "default", "model": "local", "description": "The embedded local model"}],
        "server": {"default_feature": "default"},
    }
    return _validate(data, source="<embedded default>", base_dir=base_dir or Path.cwd(), lines={})


def parse_config(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> Settings:
    """Validate YAML ``text`` into settings; ``source`` names it in error messages."""
    data, lines = _load_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'models' and 'features' at the top level")
    return _validate(data, source=source, base_dir=base_dir or Path.cwd(), lines=lines)


def _validate(
    data: dict[str, Any], *, source: str, base_dir: Path, lines: dict[tuple[Any, ...], int]
) -> Settings:
    data = dict(data)
    data["models"] = [_split_model(m, i, source, lines) for i, m in enumerate(_list(data, "models", source))]
    try:
        settings = Settings.model_validate({**data, "source": source, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, lines, Settings)) from None
    _check_references(settings, lines)
    return settings


def _list(data: dict[str, Any], key: str, source: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        raise ConfigError(f"{source}: {key}: missing (expected a list)")
    if not isinstance(value, list):
        raise ConfigError(f"{source}: {key}: expected a list, got {type(value).__name__}")
    return value


def _split_model(entry: Any, i: int, source: str, lines: dict[tuple[Any, ...], int]) -> Any:
    """Validate a model entry's provider-specific keys with that provider's own Options model."""
    if not isinstance(entry, dict):
        return entry  # pydantic reports the type error with its location
    kind = entry.get("provider")
    if not isinstance(kind, str):
        where = _where(source, lines, ("models", i))
        raise ConfigError(
            f"{where}models[{i}].provider: missing (expected a provider such as openai or llamacpp)"
        )
    try:
        cls = provider_class(kind)
    except KeyError as exc:
        where = _where(source, lines, ("models", i, "provider"))
        raise ConfigError(f"{where}models[{i}].provider: {exc.args[0]}") from None
    own = {k: v for k, v in entry.items() if k not in _MODEL_COMMON}
    try:
        options = cls.Options.model_validate(own)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, lines, cls.Options, prefix=("models", i))) from None
    return {k: v for k, v in entry.items() if k in _MODEL_COMMON} | {"options": options}


def _check_references(s: Settings, lines: dict[tuple[Any, ...], int]) -> None:
    def fail(loc: tuple[Any, ...], msg: str) -> None:
        raise ConfigError(f"{_where(s.source, lines, loc)}{_path(loc)}: {msg}")

    model_names = [m.name for m in s.models]
    feature_names = [f.name for f in s.features]
    for kind, names in (("models", model_names), ("features", feature_names)):
        seen: set[str] = set()
        for i, n in enumerate(names):
            if n in seen:
                fail((kind, i, "name"), f"duplicate name {n!r}")
            seen.add(n)
    if not s.features:
        fail(("features",), "at least one feature is required")
    for i, f in enumerate(s.features):
        if f.model not in model_names:
            fail(("features", i, "model"), f"unknown model {f.model!r}{_suggest(f.model, model_names)}")
    for i, k in enumerate(s.keys):
        for j, fname in enumerate(k.features or ()):
            if fname not in feature_names:
                fail(("keys", i, "features", j), f"unknown feature {fname!r}{_suggest(fname, feature_names)}")
    df = s.server.default_feature
    if df is not None and df not in feature_names:
        fail(("server", "default_feature"), f"unknown feature {df!r}{_suggest(df, feature_names)}")


def _describe(
    exc: ValidationError,
    source: str,
    lines: dict[tuple[Any, ...], int],
    root: type[BaseModel],
    prefix: tuple[Any, ...] = (),
) -> str:
    """The first validation error as one line: file:line: key.path: what was expected."""
    errors = exc.errors(include_url=False)
    # A misspelt key also makes the right one "missing"; the misspelling is the useful message.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = prefix + tuple(err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        owner = _owner_fields(root, tuple(err["loc"])[:-1])
        msg = f"unknown key{_suggest(key, owner)}"
        if owner:
            msg += f" (expected one of: {', '.join(sorted(owner))})"
    elif err["type"] == "missing":
        msg = "missing (required)"
    else:
        msg = msg.removeprefix("Value error, ")
        msg = msg[0].lower() + msg[1:]
        if "input" in err and err["type"] not in {"value_error"}:
            msg += f", got {json.dumps(err['input'], default=str)[:80]}"
    return f"{_where(source, lines, loc)}{_path(loc)}: {msg}"


def _owner_fields(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that sits at ``loc`` under ``root``, following nested models."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _inner_model(field.annotation)
        if model is None:
            return []
    fields = model.model_fields if hasattr(model, "model_fields") else {}
    out = [f.alias or n for n, f in fields.items() if not f.exclude]
    if model is ModelConfig:
        out = [n for n in out if n != "options"]
    return out


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(source: str, lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> str:
    for n in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:n]))
        if line is not None:
            return f"{source}:{line}: "
    return f"{source}: "


def _load_yaml(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML and remember the line of every key path, for error messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is None:
        return None, lines

    def walk(n: yaml.Node, loc: tuple[Any, ...]) -> None:
        lines[loc] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                lines[(*loc, key)] = k.start_mark.line + 1
                walk(v, (*loc, key))
                lines[(*loc, key)] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*loc, i))

    walk(node, ())
    data = yaml.safe_load(text)
    return data, lines
