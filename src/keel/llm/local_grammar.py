"""JSON schema → llama.cpp grammar (GBNF), so the local model can only write JSON the schema allows.

llama-cpp-python ships a schema converter; this module adds what it leaves out:

- numeric bounds (``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``) on integers
  and numbers, written as digit-range rules. Non-integral bounds on numbers are rounded inward
  (``minimum: 0.5`` admits 1, 1.25, ... but not 0.75): everything the grammar admits is valid,
  at the price of a few valid values it cannot produce. A range with no integer inside it
  (``0.2..0.8``) is left unbounded and the Validation layer checks it;
- strings without raw control characters (the stock rule lets a raw newline into a string,
  which is not JSON);
- ``type: [..]`` unions that keep the other keywords (the stock converter drops them).

Everything else (``multipleOf``, ``uniqueItems``, ``not``) is left to the Validation layer.
Import this module only where llama_cpp is installed: it extends llama_cpp's converter.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any, TypeGuard

from llama_cpp.llama_grammar import RESERVED_NAMES, BuiltinRule, SchemaConverter

from keel.errors import InvalidRequest

_CHAR = BuiltinRule(r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})', [])
_MAX_DIGITS = 16  # as the stock rules: longer numbers are not what a model should be writing
_FRACTION = '("." [0-9]{1,15})'
_ZERO_FRACTION = '("." "0"{1,15})'
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def schema_grammar(schema: dict[str, Any]) -> str:
    """The GBNF grammar (root rule ``root``) of the JSON values ``schema`` admits; cached by schema."""
    try:
        key = json.dumps(schema)  # not sorted: property order is the order the model writes them in
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"the JSON schema is not JSON-serialisable: {exc}", param="response_format"
        ) from exc
    return _grammar(key)


@lru_cache(maxsize=256)
def _grammar(schema_json: str) -> str:
    converter = _Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        schema = converter.resolve_refs(json.loads(schema_json), "input")
        converter.visit(schema, "")
    # The vendored converter reports unsupported schemas with asserts, KeyErrors and ValueErrors.
    except (AssertionError, KeyError, ValueError, TypeError, NotImplementedError, RecursionError) as exc:
        raise InvalidRequest(
            f"the local model cannot constrain its output to this JSON schema: {exc or type(exc).__name__}",
            param="response_format",
        ) from exc
    grammar: str = converter.format_grammar()
    return grammar


_UntypedConverter: Any = SchemaConverter  # llama_cpp's converter has no annotations


class _Converter(_UntypedConverter):  # type: ignore[misc]
    def _add_primitive(self, name: str, rule: BuiltinRule) -> str:
        result: str = super()._add_primitive(name, _CHAR if name == "char" else rule)
        return result

    def visit(self, schema: dict[str, Any], name: str) -> str:
        kind = schema.get("type")
        rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
        if isinstance(kind, list) and not any(k in schema for k in ("$ref", "oneOf", "anyOf")):
            alternatives = [{**schema, "type": t} for t in kind]
            return str(self._add_rule(rule_name, self._generate_union_rule(name, alternatives)))
        plain = not any(k in schema for k in ("$ref", "oneOf", "anyOf", "const", "enum"))
        if kind in ("integer", "number") and plain and any(k in schema for k in _BOUNDS):
            body = bounded_number(schema, integer=kind == "integer")
            if body is not None:
                return str(self._add_rule(rule_name, f"({body}) space"))
        result: str = super().visit(schema, name)
        return result


# ---------------------------------------------------------------------------------------------
# Numeric ranges as grammar rules.


def bounded_number(schema: dict[str, Any], *, integer: bool) -> str | None:
    """A GBNF expression for the integers (or decimals) within the schema's bounds; None if it has none."""
    lo, hi = _integer_bounds(schema)
    if lo is not None and hi is not None and lo > hi:
        return None  # no integer inside (or contradictory bounds): leave it to the Validation layer
    if integer:
        return _signed(lo, hi, _int_magnitudes)
    return _signed(lo, hi, _decimal_magnitudes)


def _integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The tightest integer bounds inside the schema's bounds (draft-4 boolean exclusives included)."""
    lo: int | None = None
    hi: int | None = None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_number(minimum):
        lo = math.floor(minimum) + 1 if ex_min is True else math.ceil(minimum)
    if _is_number(maximum):
        hi = math.ceil(maximum) - 1 if ex_max is True else math.floor(maximum)
    if _is_number(ex_min):
        lo = max(lo, math.floor(ex_min) + 1) if lo is not None else math.floor(ex_min) + 1
    if _is_number(ex_max):
        hi = min(hi, math.ceil(ex_max) - 1) if hi is not None else math.ceil(ex_max) - 1
    return lo, hi


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _signed(lo: int | None, hi: int | None, magnitudes: Any) -> str:
    """Non-negative values in [max(lo, 0), hi], then negative ones as "-" and a magnitude range."""
    alternatives: list[str] = []
    if hi is None or hi >= 0:
        alternatives.append(magnitudes(max(lo, 0) if lo is not None else 0, hi, negative=False))
    if lo is None or lo < 0:
        low = max(-hi, 0) if hi is not None else 0
        alternatives.append('"-" (' + magnitudes(low, -lo if lo is not None else None, negative=True) + ")")
    return " | ".join(f"({a})" for a in alternatives)


def _int_magnitudes(lo: int, hi: int | None, *, negative: bool) -> str:
    """Integers with magnitude in [lo, hi]; no "-0"."""
    if negative:
        lo = max(lo, 1)
    return uint_range(lo, hi)


def _decimal_magnitudes(lo: int, hi: int | None, *, negative: bool) -> str:
    """Decimals with magnitude in [lo, hi]: an integer part below hi with any fraction, or hi itself."""
    if hi is None:
        return f"({uint_range(lo, None)}) {_FRACTION}?"
    if lo == hi:
        return f'"{hi}" {_ZERO_FRACTION}?'
    return f'({uint_range(lo, hi - 1)}) {_FRACTION}? | "{hi}" {_ZERO_FRACTION}?'


def uint_range(lo: int, hi: int | None) -> str:
    """GBNF for the decimal integers in [lo, hi] (``hi=None``: unbounded), no leading zeros."""
    if hi is None:
        width = len(str(lo))
        head = uint_range(lo, 10**width - 1)
        return head if width >= _MAX_DIGITS else f"{head} | [1-9] [0-9]{{{width},{_MAX_DIGITS - 1}}}"
    alternatives = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (width - 1) if width > 1 else 0)
        b = min(hi, 10**width - 1)
        if a <= b:
            alternatives.append(_same_width(str(a), str(b)))
    return " | ".join(alternatives)


def _same_width(a: str, b: str) -> str:
    """GBNF for the digit strings from ``a`` to ``b`` (same length, a <= b)."""
    rest = len(a) - 1
    if a[0] == b[0]:
        return f'"{a[0]}"' + (f" ({_same_width(a[1:], b[1:])})" if rest else "")
    if a[1:] == "0" * rest and b[1:] == "9" * rest:
        return f"[{a[0]}-{b[0]}]" + _any_digits(rest)
    alternatives = [f'"{a[0]}" ({_same_width(a[1:], "9" * rest)})']
    if int(a[0]) + 1 <= int(b[0]) - 1:
        alternatives.append(f"[{int(a[0]) + 1}-{int(b[0]) - 1}]" + _any_digits(rest))
    alternatives.append(f'"{b[0]}" ({_same_width("0" * rest, b[1:])})')
    return " | ".join(alternatives)


def _any_digits(n: int) -> str:
    return "" if n == 0 else " [0-9]" if n == 1 else f" [0-9]{{{n}}}"
