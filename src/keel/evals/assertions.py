"""Assertions: each turns one output into a pass/fail, a score in [0, 1] and a reason.

``value`` strings are Jinja2 templates (sandboxed) over the case: ``{{ expected }}``,
``{{ input }}`` and the case's variables. ``not-`` inverts the verdict and the score. A custom
assertion is ``{type: python, value: "checks.py:polite"}`` (a file beside the suite, or an
importable module): ``polite(output, context) -> bool | float | {"pass", "score", "reason"}``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from keel.context.embed import Embedder
from keel.errors import ConfigError
from keel.evals.suite import AssertionSpec, Case
from keel.validate.grounding import GroundingScorer

Judge = Callable[[str, str, str], Awaitable[tuple[bool, float, str]]]
"""(rubric, input, output) → (pass, score, reason), asked of the judge model."""

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one assertion concluded."""

    type: str
    passed: bool
    score: float
    reason: str
    weight: float = 1.0


@dataclass(slots=True)
class Observed:
    """One case's output and how it was produced."""

    case: Case
    output: str
    latency_ms: float
    cost_usd: float
    error: str | None = None
    sources: list[str] = field(default_factory=list)  # the texts the Context layer gave the model


@dataclass(slots=True)
class Services:
    """What the model-backed assertions need; missing ones make those assertions fail clearly."""

    base_dir: Path
    embedder: Embedder | None = None
    judge: Judge | None = None
    _python: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def python(self, ref: str) -> Callable[..., Any]:
        """The function ``file.py:name`` or ``module:name``, loaded once."""
        if ref not in self._python:
            self._python[ref] = load_function(ref, self.base_dir)
        return self._python[ref]


def load_function(ref: str, base_dir: Path) -> Callable[..., Any]:
    """Import ``file.py:name`` (relative to ``base_dir``) or ``package.module:name``."""
    target, _, name = ref.rpartition(":")
    if not target or not name:
        raise ConfigError(f"python assertion {ref!r}: expected file.py:function or module:function")
    if target.endswith(".py"):
        path = base_dir / target
        spec = importlib.util.spec_from_file_location(f"keel_eval_{path.stem}", path)
        if spec is None or spec.loader is None or not path.exists():
            raise ConfigError(f"python assertion {ref!r}: no file {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"python assertion {ref!r}: {exc}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"python assertion {ref!r}: {target} has no function {name!r}")
    return fn  # type: ignore[no-any-return]


def render(value: Any, case: Case) -> Any:
    """``value`` with its Jinja2 templates filled from the case (strings only; lists element-wise)."""
    if isinstance(value, list):
        return [render(v, case) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    scope = {**case.vars, "expected": case.expected, "input": case.input or ""}
    try:
        return _ENV.from_string(value).render(scope)
    except TemplateError as exc:
        raise ConfigError(f"case {case.id}: assertion value {value!r}: {exc}") from None


async def check(spec: AssertionSpec, seen: Observed, services: Services) -> Outcome:
    """Evaluate one assertion on one output."""
    value = render(spec.value if spec.value is not None else spec.rubric, seen.case)
    passed, score, reason = await _CHECKS[spec.kind](spec, value, seen, services)
    if spec.negated:
        passed, score, reason = not passed, 1.0 - score, f"not: {reason}"
    return Outcome(spec.type, passed, round(score, 4), reason, spec.weight)


Verdict = tuple[bool, float, str]


def _bool(ok: bool, reason: str) -> Verdict:
    return ok, 1.0 if ok else 0.0, reason


async def _equals(spec: AssertionSpec, value: Any, seen: Observed, _: Services) -> Verdict:
    if isinstance(value, dict | list):
        try:
            same = _json(seen.output) == value
        except json.JSONDecodeError:
            return _bool(False, "output is not JSON")
        return _bool(same, "JSON equal" if same else "JSON differs")
    ok = seen.output.strip() == str(value).strip()
    return _bool(ok, "equal" if ok else f"expected {str(value)[:80]!r}")


async def _contains(spec: AssertionSpec, value: Any, seen: Observed, _: Services) -> Verdict:
    wanted = [str(v) for v in (value if isinstance(value, list) else [value])]
    text = seen.output.lower() if spec.kind == "icontains" else seen.output
    missing = [w for w in wanted if (w.lower() if spec.kind == "icontains" else w) not in text]
    return _bool(not missing, f"missing {missing[0][:80]!r}" if missing else "contains all")


async def _regex(spec: AssertionSpec, value: Any, seen: Observed, _: Services) -> Verdict:
    try:
        found = re.search(str(value), seen.output, re.MULTILINE)
    except re.error as exc:
        raise ConfigError(f"case {seen.case.id}: regex {value!r}: {exc}") from None
    return _bool(
        found is not None, f"matched {found.group(0)[:60]!r}" if found else f"no match for {value!r}"
    )


def _json(output: str) -> Any:
    text = output.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    return json.loads(text)


async def _is_json(spec: AssertionSpec, value: Any, seen: Observed, _: Services) -> Verdict:
    try:
        _json(seen.output)
    except json.JSONDecodeError as exc:
        return _bool(False, f"not JSON: {exc.msg}")
    return _bool(True, "valid JSON")


async def _json_schema(spec: AssertionSpec, value: Any, seen: Observed, _: Services) -> Verdict:
    if not isinstance(value, dict):
        raise ConfigError(f"case {seen.case.id}: json-schema needs a schema object as value")
    try:
        doc = _json(seen.output)
    except json.JSONDecodeError as exc:
        return _bool(False, f"not JSON: {exc.msg}")
    errors = list(jsonschema.validators.validator_for(value)(value).iter_errors(doc))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        return _bool(False, f"{where}: {errors[0].message[:100]}")
    return _bool(True, "matches the schema")


async def _similar(spec: AssertionSpec, value: Any, seen: Observed, services: Services) -> Verdict:
    if services.embedder is None:
        return _bool(False, "no embedder configured (embeddings in keel.yaml)")
    vectors = await services.embedder.embed([seen.output, str(value)])
    a, b = np.asarray(vectors[0], dtype=np.float64), np.asarray(vectors[1], dtype=np.float64)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b)) or 1.0
    cosine = max(0.0, float(a @ b) / denom)
    threshold = spec.threshold if spec.threshold is not None else 0.8
    return cosine >= threshold, cosine, f"cosine {cosine:.3f} vs threshold {threshold}"


async def _grounded(spec: AssertionSpec, value: Any, seen: Observed, services: Services) -> Verdict:
    """The Validation layer's grounding score: the weakest answer sentence's support by the sources.

    Sources are the ones the call retrieved; a case without retrieval names its own in ``value``
    (a text or a list of texts, e.g. ``"{{ context }}"``). With an embedder the score mixes
    embedding similarity and lexical overlap as the Validation layer does; without one it is lexical.
    """
    sources = list(seen.sources)
    if not sources and value:
        sources = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if not sources:
        return _bool(False, "no sources: the call retrieved none and the assertion names none (value)")
    found = await GroundingScorer(services.embedder).sentences(seen.output, sources)
    if not found:
        return _bool(True, "nothing to check")
    weakest = min(found, key=lambda s: s.support)
    threshold = spec.threshold if spec.threshold is not None else 0.5
    reason = f"weakest sentence support {weakest.support:.3f} vs threshold {threshold}: {weakest.text[:80]!r}"
    return weakest.support >= threshold, weakest.support, reason


async def _rubric(spec: AssertionSpec, value: Any, seen: Observed, services: Services) -> Verdict:
    if services.judge is None:
        return _bool(False, "no judge model")
    if not value:
        raise ConfigError(f"case {seen.case.id}: llm-rubric needs a rubric (value or rubric)")
    ok, score, reason = await services.judge(str(value), seen.case.input or "", seen.output)
    if spec.threshold is not None:
        ok = score >= spec.threshold
    return ok, score, f"judge: {reason[:120]}"


async def _latency(spec: AssertionSpec, value: Any, seen: Observed, _: Services) -> Verdict:
    limit = float(value)
    return _bool(seen.latency_ms <= limit, f"{seen.latency_ms:.0f} ms (limit {limit:.0f})")


async def _cost(spec: AssertionSpec, value: Any, seen: Observed, _: Services) -> Verdict:
    limit = float(value)
    return _bool(seen.cost_usd <= limit, f"${seen.cost_usd:.6f} (limit ${limit:.6f})")


async def _python(spec: AssertionSpec, value: Any, seen: Observed, services: Services) -> Verdict:
    fn = services.python(str(value))
    context = {
        "case": seen.case.model_dump(by_alias=True),
        "latency_ms": seen.latency_ms,
        "cost": seen.cost_usd,
    }
    got = fn(seen.output, context)
    if hasattr(got, "__await__"):
        got = await got
    threshold = spec.threshold if spec.threshold is not None else 0.5
    if isinstance(got, bool):
        return _bool(got, f"{value} returned {got}")
    if isinstance(got, int | float):
        return float(got) >= threshold, float(got), f"{value} scored {float(got):.3f}"
    if isinstance(got, dict) and "pass" in got:
        score = float(got.get("score", 1.0 if got["pass"] else 0.0))
        return bool(got["pass"]), score, str(got.get("reason", value))
    raise ConfigError(f"python assertion {value}: return a bool, a number or a dict with 'pass'")


_CHECKS: dict[str, Callable[[AssertionSpec, Any, Observed, Services], Awaitable[Verdict]]] = {
    "equals": _equals,
    "contains": _contains,
    "icontains": _contains,
    "regex": _regex,
    "is-json": _is_json,
    "json-schema": _json_schema,
    "similar": _similar,
    "grounded": _grounded,
    "llm-rubric": _rubric,
    "latency": _latency,
    "cost": _cost,
    "python": _python,
}


def combine(outcomes: list[Outcome]) -> tuple[bool, float]:
    """A case passes when every weighted assertion passes; its score is the weighted mean."""
    weighted = [o for o in outcomes if o.weight > 0]
    if not weighted:
        return True, 1.0
    total = sum(o.weight for o in weighted)
    return all(o.passed for o in weighted), sum(o.score * o.weight for o in weighted) / total


def parse_judgement(text: str) -> tuple[bool, float, str]:
    """The judge's JSON answer ``{"pass", "score", "reason"}`` (the first object in the text)."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is None:
        return False, 0.0, f"judge did not answer JSON: {text[:80]!r}"
    try:
        doc = json.loads(match.group(0))
    except json.JSONDecodeError:
        return False, 0.0, f"judge did not answer JSON: {text[:80]!r}"
    score = doc.get("score")
    passed = doc.get("pass")
    if not isinstance(score, int | float):
        score = 1.0 if passed else 0.0
    if not isinstance(passed, bool):
        passed = float(score) >= 0.5
    return passed, min(1.0, max(0.0, float(score))), str(doc.get("reason", ""))
