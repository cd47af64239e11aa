"""A prompt file: system and user templates, declared variables, model parameters, an output schema.

The version is a short hash of the file's meaning (its parsed content), so editing a comment or
reordering keys does not make a new version while any real change does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keel.call import Message
from keel.errors import ConfigError, InvalidRequest

VarType = Literal["string", "integer", "number", "boolean", "list", "object", "any"]
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
}
BUILTIN_VARIABLES = frozenset({"input", "feature"})
"""Names every template may use: ``input`` is the last user message, ``feature`` the feature name."""

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class VariableSpec(BaseModel):
    """A declared template variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: VarType = "string"
    required: bool = True
    default: Any = None
    description: str = ""
    from_request: bool = False  # the value comes with each request (``keel.variables``), not the feature


class PromptFile(BaseModel):
    """The YAML shape of ``prompts/<name>.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    description: str = ""
    system: str | None = None
    user: str | None = None
    variables: dict[str, VariableSpec | VarType] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = Field(None, alias="schema")


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A loaded, compiled prompt; ``version`` is a 12-character content hash."""

    name: str
    version: str
    description: str
    variables: dict[str, VariableSpec]
    params: dict[str, Any]
    schema: dict[str, Any] | None
    system: Template | None = field(repr=False)
    user: Template | None = field(repr=False)
    source: str = ""
    number: int | None = None  # the registry's version number, when served from the registry
    text: str = field(default="", repr=False)  # the YAML it was parsed from

    @property
    def served_version(self) -> str:
        """What the ledger records: the registry number when there is one, else the content hash."""
        return str(self.number) if self.number is not None else self.version

    def check_feature_variables(self, given: dict[str, Any], *, where: str) -> None:
        """ConfigError when a feature passes an undeclared variable or leaves a needed one out."""
        undeclared = sorted(given.keys() - self.variables.keys())
        if undeclared:
            raise ConfigError(
                f"{where}: variables {', '.join(undeclared)} are not declared by prompt "
                f"{self.name!r} (declared: {', '.join(sorted(self.variables)) or 'none'})"
            )
        missing = sorted(
            n
            for n, v in self.variables.items()
            if v.required and v.default is None and not v.from_request and n not in given
        )
        if missing:
            raise ConfigError(
                f"{where}: prompt {self.name!r} needs variable(s) {', '.join(missing)}; set them under the "
                f"feature's `variables`, or mark them `from_request: true` in the prompt file"
            )

    def render(self, messages: list[Message], variables: dict[str, Any], *, feature: str) -> list[Message]:
        """The messages to send: the rendered system message first, the last user message wrapped."""
        values = self._bind(variables, feature=feature, messages=messages)
        out = list(messages)
        if self.user is not None:
            for i in range(len(out) - 1, -1, -1):
                if out[i].get("role") == "user":
                    values["input"] = _text_of(out[i])
                    out[i] = {**out[i], "content": self._run(self.user, values)}
                    break
        if self.system is not None:
            out.insert(0, {"role": "system", "content": self._run(self.system, values)})
        return out

    def _bind(self, given: dict[str, Any], *, feature: str, messages: list[Message]) -> dict[str, Any]:
        values: dict[str, Any] = {"feature": feature, "input": _last_user_text(messages)}
        for name, spec in self.variables.items():
            if name in given:
                value = given[name]
                allowed = _PY_TYPES.get(spec.type)
                bad_bool = spec.type in {"integer", "number"} and isinstance(value, bool)
                if allowed is not None and (not isinstance(value, allowed) or bad_bool):
                    raise InvalidRequest(
                        f"prompt {self.name!r}: variable {name!r} must be {spec.type}, "
                        f"got {type(value).__name__}",
                        param=f"keel.variables.{name}",
                    )
                values[name] = value
            elif spec.default is not None or not spec.required:
                values[name] = spec.default
            else:
                raise InvalidRequest(
                    f"prompt {self.name!r} needs variable {name!r} ({spec.type}); pass it in the feature's "
                    f"`variables` or the request's `keel.variables`",
                    param=f"keel.variables.{name}",
                )
        return values

    def _run(self, template: Template, values: dict[str, Any]) -> str:
        try:
            return template.render(values)
        except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"prompt {self.name!r} failed to render: {exc}") from exc


def _text_of(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _last_user_text(messages: list[Message]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return _text_of(m)
    return ""


def load_prompt(path: Path, *, name: str | None = None) -> PromptTemplate:
    """Load, check and compile a prompt file; every problem is a ConfigError naming the file."""
    try:
        raw_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompt file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read prompt file: {exc}") from None
    return parse_prompt(raw_text, name=name or path.stem, where=str(path))


def parse_prompt(raw_text: str, *, name: str, where: str, number: int | None = None) -> PromptTemplate:
    """Check and compile a prompt's YAML text; ``where`` names it in every ConfigError."""
    path = where
    try:
        raw = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {yaml_problem(exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'system' and/or 'user' templates")
    try:
        spec = PromptFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {loc}: {err['msg']}") from None
    if spec.system is None and spec.user is None:
        raise ConfigError(f"{path}: a prompt needs a 'system' or a 'user' template")
    variables = {
        k: (v if isinstance(v, VariableSpec) else VariableSpec(type=v)) for k, v in spec.variables.items()
    }
    clash = BUILTIN_VARIABLES & variables.keys()
    if clash:
        raise ConfigError(f"{path}: variables: {sorted(clash)} are built in; choose another name")
    if spec.output_schema is not None:
        check_schema(spec.output_schema, where=f"{path}: schema")
    templates = {part: _compile(path, part, getattr(spec, part), variables) for part in ("system", "user")}
    return PromptTemplate(
        name=name,
        version=content_hash(spec),
        description=spec.description,
        variables=variables,
        params=dict(spec.params),
        schema=spec.output_schema,
        system=templates["system"],
        user=templates["user"],
        source=path,
        number=number,
        text=raw_text,
    )


def content_hash(spec: PromptFile) -> str:
    """The first 12 hex digits of a SHA-256 of the prompt's parsed content (comments, key order ignored)."""
    canonical = json.dumps(spec.model_dump(by_alias=True, mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _compile(path: str, part: str, text: str | None, variables: dict[str, VariableSpec]) -> Template | None:
    if text is None:
        return None
    try:
        ast = _ENV.parse(text)
        template = _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise ConfigError(
            f"{path}: {part}: template syntax error on line {exc.lineno}: {exc.message}"
        ) from None
    undeclared = meta.find_undeclared_variables(ast) - variables.keys() - BUILTIN_VARIABLES
    if undeclared:
        raise ConfigError(
            f"{path}: {part}: template uses undeclared variable(s) {', '.join(sorted(undeclared))}; "
            f"declare them under 'variables'"
        )
    return template


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (PyYAML's own message spans several)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def check_schema(schema: dict[str, Any], *, where: str) -> None:
    """Raise ConfigError unless ``schema`` is a valid JSON Schema."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.path)
        raise ConfigError(
            f"{where}: invalid JSON schema{f' at {path}' if path else ''}: {exc.message}"
        ) from None
