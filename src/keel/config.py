"""keel.yaml → typed settings, validated once at load, with errors that name file, line and key."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from keel.errors import ConfigError
from keel.llm.providers import provider_class
from keel.monitor.prices import default_price
from keel.settings import FeatureConfig, KeyConfig, Limits, ModelConfig, Price, Settings

__all__ = [
    "FeatureConfig",
    "KeyConfig",
    "Limits",
    "ModelConfig",
    "Price",
    "Settings",
    "default_settings",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_NAME = "keel.yaml"


# ---------------------------------------------------------------------------------------------
# Loading: YAML with line numbers, then pydantic, then cross-references.

_MODEL_COMMON = {"name", "provider", "price", "retry", "breaker", "balance", "context_window"}


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
    """Validate a model entry's provider-specific keys with that provider's own Options model.

    ``deployments`` lists places the same model is served; each deployment's keys override the
    entry's own (e.g. another ``base_url``), plus an optional ``weight``.
    """
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
    own = {k: v for k, v in entry.items() if k not in _MODEL_COMMON and k != "deployments"}
    raw_deployments = entry.get("deployments")
    if raw_deployments is None:
        raw_deployments = [{}]
    elif not isinstance(raw_deployments, list) or not raw_deployments:
        where = _where(source, lines, ("models", i, "deployments"))
        raise ConfigError(f"{where}models[{i}].deployments: expected a non-empty list of deployments")
    deployments = []
    for j, dep in enumerate(raw_deployments):
        if not isinstance(dep, dict):
            where = _where(source, lines, ("models", i, "deployments", j))
            raise ConfigError(f"{where}models[{i}].deployments[{j}]: expected a mapping")
        weight = dep.get("weight", 1.0)
        prefix: tuple[Any, ...] = (
            ("models", i) if raw_deployments == [{}] else ("models", i, "deployments", j)
        )
        try:
            options = cls.Options.model_validate({**own, **{k: v for k, v in dep.items() if k != "weight"}})
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source, lines, cls.Options, prefix=prefix)) from None
        deployments.append({"weight": weight, "options": options})
    common = {k: v for k, v in entry.items() if k in _MODEL_COMMON}
    if "price" not in common:  # a common hosted model without price: gets the built-in one
        upstream = getattr(deployments[0]["options"], "model", None) or entry.get("name")
        builtin = default_price(upstream) if isinstance(upstream, str) else None
        if builtin is not None:
            common["price"] = builtin
    return common | {"options": deployments[0]["options"], "deployments": deployments}


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
        for j, fb in enumerate(f.fallbacks):
            if fb not in model_names:
                fail(("features", i, "fallbacks", j), f"unknown model {fb!r}{_suggest(fb, model_names)}")
        for name in f.models_used():
            if name not in model_names:
                fail(("features", i, "routing"), f"unknown model {name!r}{_suggest(name, model_names)}")
        judge = f.input.injection.judge
        if judge is not None and judge not in model_names:
            fail(
                ("features", i, "input", "injection", "judge"),
                f"unknown model {judge!r}{_suggest(judge, model_names)}",
            )
    for i, k in enumerate(s.keys):
        for j, mname in enumerate(k.models or ()):
            if mname not in model_names:
                fail(("keys", i, "models", j), f"unknown model {mname!r}{_suggest(mname, model_names)}")
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
        out = [n for n in out if n not in ("options", "deployments")]
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
