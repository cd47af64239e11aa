"""The schema an answer must satisfy, and the two middle rungs of the ladder: parse (and repair), validate.

A feature declares its output as a JSON Schema or as a Pydantic model by import path
(``myapp.models:Invoice`` or ``myapp.models.Invoice``). Either way ``OutputSchema`` holds the
JSON Schema (sent to the provider for constrained decoding) and validates answers with
jsonschema, then with the model's own validators when there is a model, so a custom
``field_validator`` is enforced too. Errors carry a JSON-pointer-like path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import json_repair
import jsonschema
import orjson
from pydantic import BaseModel, ValidationError

from keel.errors import ConfigError
from keel.validate.imports import import_object

_FENCE = re.compile(r"```")


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One way a value fails its schema: where (``/items/0/price``, ``(root)``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"at {self.path}: {self.message}"


class NotJSON(ValueError):
    """The answer is not JSON, and repair (when on) found none in it."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed answer; ``repair`` says what json-repair fixed (None when it parsed as it was)."""

    value: Any
    repair: str | None = None


class OutputSchema:
    """A feature's output contract: a JSON Schema, and the Pydantic model it came from (if any)."""

    def __init__(self, schema: dict[str, Any], model: type[BaseModel] | None = None) -> None:
        self.schema = schema
        self.model = model
        cls = jsonschema.validators.validator_for(schema)
        self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def errors(self, value: Any, limit: int = 5) -> list[SchemaError]:
        """Up to ``limit`` reasons ``value`` is not valid, in document order ([] when it is valid)."""
        found = sorted(self._validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        errors = [SchemaError(_pointer(e.absolute_path), e.message) for e in found[:limit]]
        if errors or self.model is None:
            return errors
        try:
            self.model.model_validate(value)
        except ValidationError as exc:
            return [SchemaError(_pointer(e["loc"]), e["msg"]) for e in exc.errors()[:limit]]
        return []


def _pointer(parts: Any) -> str:
    path = "/".join(str(p) for p in parts)
    return f"/{path}" if path else "(root)"


def parse(text: str, *, repair: bool) -> Parsed:
    """``text`` as JSON; with ``repair``, broken JSON is mended. NotJSON when nothing usable is found."""
    try:
        return Parsed(orjson.loads(text))
    except orjson.JSONDecodeError as exc:
        if not repair:
            raise NotJSON(f"the answer is not valid JSON: {exc}") from exc
        strict = exc
    stripped = text.strip()
    try:
        value = json_repair.loads(stripped)
    except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
        raise NotJSON(f"the answer is not valid JSON and could not be repaired: {strict}") from exc
    # json-repair answers "" when it finds no JSON at all; only a quoted empty string means "".
    if value == "" and '""' not in stripped:
        raise NotJSON(f"the answer is not JSON: {strict}")
    # Round-trip: what is validated is exactly what is sent on (json-repair reads NaN as a float NaN).
    try:
        value = orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. a lone surrogate escape, which is no text
        raise NotJSON(f"the answer is not valid JSON and could not be repaired: {exc}") from exc
    return Parsed(value, _what_was_repaired(stripped))


def _what_was_repaired(text: str) -> str:
    """A short description of what was wrong, for the verdict (not a full diagnosis)."""
    if _FENCE.search(text):
        return "code fence"
    if text[:1] not in '{["' or text[-1:] not in '}]"':
        return "truncated or surrounded by text"
    return "syntax"


def load_output_schema(spec: dict[str, Any] | str, *, where: str) -> OutputSchema:
    """The ``OutputSchema`` of a feature's ``schema:`` key: a JSON Schema or a Pydantic model's path."""
    if isinstance(spec, dict):
        return OutputSchema(spec)
    model = _import_model(spec, where=where)
    try:
        schema = model.model_json_schema()
    except (TypeError, ValueError) as exc:  # pydantic's PydanticUserError subclasses TypeError
        raise ConfigError(f"{where}: {spec} has no JSON schema: {exc}") from exc
    return OutputSchema(schema, model)


def _import_model(path: str, *, where: str) -> type[BaseModel]:
    model = import_object(path, where=where, what="a JSON schema or a Pydantic model")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"{where}: {path} is not a Pydantic model (a BaseModel subclass)")
    return model
