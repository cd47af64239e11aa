"""An eval suite in YAML: what is under test (feature, prompt version, models), the cases, the assertions.

    name: support-answers
    feature: support                # a feature of keel.yaml: its whole pipeline is under test
    prompt: support@staging         # optional: serve this prompt version instead of the feature's
    models: [small, large]          # optional: one run per model (default: the feature's model)
    judge: large                    # the model llm-rubric asks (default: the first model under test)
    dataset: cases.jsonl            # a CSV or JSONL file (relative to the suite), or inline below
    cases:
      - input: Where is my parcel?
        vars: {product: Acme}
        expected: parcel
        assert: [{type: contains, value: "{{ expected }}"}]
    defaults:                       # assertions every case gets, besides its own
      assert: [{type: latency, value: 2000}, {type: not-contains, value: "I cannot", weight: 2}]

A CSV's columns ``input``, ``expected``, ``id`` and ``assert`` (JSON) mean what they mean inline;
every other column is a prompt variable. A JSONL line is a case object.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from keel.errors import ConfigError
from keel.prompts.template import yaml_problem

NEGATABLE = frozenset(
    {
        "equals",
        "contains",
        "icontains",
        "regex",
        "json-schema",
        "is-json",
        "similar",
        "grounded",
        "llm-rubric",
        "python",
    }
)
KINDS = NEGATABLE | {"latency", "cost"}


class AssertionSpec(BaseModel):
    """One check of an output: ``type`` (``not-`` negates it), ``value``, ``threshold``, ``weight``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    value: Any = None
    # similar: minimum cosine; grounded: minimum support of the weakest sentence; llm-rubric: judge score
    threshold: float | None = None
    weight: float = Field(1.0, ge=0)
    rubric: str | None = None  # llm-rubric: the rubric (or use ``value``)

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        base = v.removeprefix("not-")
        if base not in KINDS:
            raise ValueError(f"unknown assertion {v!r}; known: {', '.join(sorted(KINDS))}")
        if v.startswith("not-") and base not in NEGATABLE:
            raise ValueError(f"{base!r} cannot be negated")
        return v

    @property
    def kind(self) -> str:
        """The assertion without its ``not-`` prefix."""
        return self.type.removeprefix("not-")

    @property
    def negated(self) -> bool:
        """True for a ``not-`` assertion."""
        return self.type.startswith("not-")


class Case(BaseModel):
    """One input and what its output must satisfy."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = ""
    input: str | None = None
    messages: list[dict[str, Any]] | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    expected: Any = None
    # Documents the call brings itself ({id, text, source}), for a feature with retrieval
    # ``documents: true``: a RAG feature is evaluated on fixed sources, and ``grounded`` scores
    # its answer against what was packed from them.
    documents: list[dict[str, Any]] = Field(default_factory=list)
    asserts: list[AssertionSpec] = Field(default_factory=list, alias="assert")

    @model_validator(mode="after")
    def _has_input(self) -> Case:
        if (self.input is None) == (self.messages is None):
            raise ValueError("a case needs exactly one of 'input' or 'messages'")
        return self

    def chat(self) -> list[dict[str, Any]]:
        """The messages to send."""
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.input}]


class Defaults(BaseModel):
    """What every case gets."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    asserts: list[AssertionSpec] = Field(default_factory=list, alias="assert")
    vars: dict[str, Any] = Field(default_factory=dict)


class Suite(BaseModel):
    """A whole suite, its dataset loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    feature: str
    prompt: str | None = None
    models: list[str] = Field(default_factory=list)
    judge: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)  # request parameters for every case
    dataset: str | None = None
    cases: list[Case] = Field(default_factory=list)
    defaults: Defaults = Defaults()
    source: str = Field("", exclude=True)

    def checks(self, case: Case) -> list[AssertionSpec]:
        """The case's assertions: the defaults, then its own."""
        return [*self.defaults.asserts, *case.asserts]


def load_suite(path: Path) -> Suite:
    """Read and check a suite file; every problem is a ConfigError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: eval suite not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the eval suite: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'feature' and 'cases' or 'dataset'")
    raw.setdefault("name", path.stem)
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {loc}: {err['msg'].removeprefix('Value error, ')}") from None
    cases = list(suite.cases)
    if suite.dataset:
        cases += _read_dataset(path.parent / suite.dataset)
    if not cases:
        raise ConfigError(f"{path}: the suite has no cases (give 'cases' or a 'dataset' file)")
    cases = [c if c.id else c.model_copy(update={"id": f"case-{i + 1}"}) for i, c in enumerate(cases)]
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise ConfigError(f"{path}: two cases share the id {c.id!r}")
        seen.add(c.id)
    return suite.model_copy(update={"cases": cases, "source": str(path)})


def _read_dataset(path: Path) -> list[Case]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the dataset: {exc}") from None
    rows: list[tuple[int, dict[str, Any]]]
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
    elif path.suffix == ".csv":
        rows = [(n, _csv_case(path, n, r)) for n, r in enumerate(csv.DictReader(text.splitlines()), start=2)]
    else:
        raise ConfigError(f"{path}: a dataset is a .csv or .jsonl file")
    cases = []
    for n, row in rows:
        try:
            cases.append(Case.model_validate(row))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}:{n}: {loc}: {err['msg'].removeprefix('Value error, ')}") from None
    return cases


def _csv_case(path: Path, line: int, row: dict[str, str]) -> dict[str, Any]:
    case: dict[str, Any] = {"vars": {}}
    for key, value in row.items():
        if key in ("input", "expected", "id"):
            case[key] = value
        elif key == "assert":
            try:
                case["assert"] = json.loads(value) if value else []
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{line}: assert: invalid JSON: {exc.msg}") from None
        elif key:
            case["vars"][key] = value
    return case
