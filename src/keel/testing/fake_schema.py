"""Deterministic instances of a JSON schema, for the fake upstream's structured output and tool calls.

``instance(schema)`` returns a value valid against the common subset of JSON Schema that
structured-output APIs accept: typed objects (every property, required or not), strings
(``enum``, ``const``, ``minLength``/``maxLength``, simple ``format`` values), integers and
numbers within their bounds and ``multipleOf``, booleans, arrays within ``minItems``/``maxItems``,
``anyOf``/``oneOf`` (the first branch), ``allOf`` (merged) and ``$ref`` into the same document.
``pattern`` is not honoured: no small generator can satisfy an arbitrary regex.
"""

from __future__ import annotations

import math
from typing import Any

_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "12:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
# Past this depth only required properties and minimum item counts are generated, so a
# recursive schema (a tree of nodes) still terminates.
_SHALLOW_DEPTH = 6
_MAX_DEPTH = 32


def instance(schema: Any) -> Any:
    """A deterministic value valid against ``schema``."""
    return _Generator(schema).value(schema, "value", 0, 0)


class _Generator:
    def __init__(self, root: Any) -> None:
        self.root = root

    def value(self, schema: Any, name: str, index: int, depth: int) -> Any:
        if schema is True or not isinstance(schema, dict):
            return f"example {name}"
        if depth > _MAX_DEPTH:
            return None
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][index % len(schema["enum"])]
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.value(schema[key][0], name, index, depth + 1)
        if isinstance(schema.get("allOf"), list):
            return self.value(self.merge(schema), name, index, depth + 1)
        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "integer":
            return int(self.number(schema, 1 + index, integer=True))
        if kind == "number":
            return self.number(schema, 1.5 + index, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(schema, name, index)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen < _MAX_DEPTH:
            ref: str = schema["$ref"]
            target: Any = self.root
            if not ref.startswith("#"):
                break  # remote references are not followed; the rest of the schema still applies
            for part in ref[1:].split("/"):
                if part:
                    key = part.replace("~1", "/").replace("~0", "~")
                    target = target.get(key) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                break
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest}
            seen += 1
        return schema

    def merge(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if not isinstance(part, dict):
                continue
            part = self.resolve(part)
            for key, val in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **val}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *val]
                else:
                    merged.setdefault(key, val)
        return merged

    @staticmethod
    def kind(schema: dict[str, Any]) -> str:
        t = schema.get("type")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), t[0] if t else None)
        if isinstance(t, str):
            return t
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties") or {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        names = list(props) if depth < _SHALLOW_DEPTH else [n for n in props if n in required]
        out = {n: self.value(props[n], n, 0, depth + 1) for n in names}
        for r in required:  # required but undeclared: any value will do
            out.setdefault(r, f"example {r}")
        return out

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        lo = int(schema.get("minItems") or 0)
        hi = schema.get("maxItems")
        count = lo if depth >= _SHALLOW_DEPTH else max(lo, 1)
        if isinstance(hi, int):
            count = min(count, hi)
        given = schema.get("prefixItems")
        prefix: list[Any] = given if isinstance(given, list) else []
        items = schema.get("items", {})
        out = []
        for i in range(count):
            item_schema = prefix[i] if i < len(prefix) else items
            out.append(self.value(item_schema, name, i, depth + 1))
        return out

    @staticmethod
    def number(schema: dict[str, Any], preferred: float, *, integer: bool) -> float:
        lo, hi = _bound(schema, "minimum", -math.inf), _bound(schema, "maximum", math.inf)
        xlo, xhi = _bound(schema, "exclusiveMinimum", -math.inf), _bound(schema, "exclusiveMaximum", math.inf)
        if integer:
            if xlo > -math.inf:
                lo = max(lo, math.floor(xlo) + 1)
            if xhi < math.inf:
                hi = min(hi, math.ceil(xhi) - 1)
            value = min(max(preferred, lo), hi)
            value = float(math.ceil(value) if math.ceil(value) <= hi else math.floor(value))
        else:
            a, b = max(lo, xlo), min(hi, xhi)
            value = min(max(preferred, a), b)
            if value <= xlo or value >= xhi:  # landed on an exclusive bound: step inside it
                value = (
                    (a + b) / 2
                    if math.isfinite(a) and math.isfinite(b)
                    else (a + 0.5 if value == a else b - 0.5)
                )
        multiple = _bound(schema, "multipleOf", 0.0)
        if multiple > 0:
            up = math.ceil(value / multiple) * multiple
            value = up if up <= min(hi, xhi) and up != xhi else math.floor(value / multiple) * multiple
        return value

    @staticmethod
    def string(schema: dict[str, Any], name: str, index: int) -> str:
        text = _FORMATS.get(str(schema.get("format")), f"example {name}" + (f" {index + 1}" if index else ""))
        lo = int(schema.get("minLength") or 0)
        hi = schema.get("maxLength")
        if len(text) < lo:
            text += "x" * (lo - len(text))
        if isinstance(hi, int) and len(text) > hi:
            text = text[:hi]
        return text


def _bound(schema: dict[str, Any], key: str, default: float) -> float:
    """A numeric keyword's value, or ``default`` when absent or not a number."""
    v = schema.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default
