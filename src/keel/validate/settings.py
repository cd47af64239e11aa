"""The typed shape of a feature's ``validation:`` key: the structured-output ladder, policy rules,
deterministic intent rules and the fallback answer.

Kept apart from ``keel.settings`` (which imports these classes) so the Validation layer owns its keys.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StructuredConfig(_Strict):
    """How a feature's output schema is enforced: constrained decoding → repair → validate → re-ask.

    The first rung is the provider's (a grammar for the local model, ``response_format`` for an
    OpenAI-compatible server that accepts it); these keys drive the rest.
    """

    # Put the schema into the system prompt: "auto" when the model cannot constrain its decoding.
    instruct: Literal["auto", "always", "never"] = "auto"
    repair: bool = True  # fences, prose around the JSON, trailing commas, truncation (json-repair)
    reasks: int = Field(3, ge=0, le=5)  # re-asks with the validation errors (the last model of a cascade)
    # A re-ask is made only while at least this many seconds of the feature's deadline are left.
    reask_min_seconds: float = Field(1.0, ge=0)
    max_errors: int = Field(5, ge=1, le=50)  # validation errors quoted in a verdict and a re-ask


def _regexes(patterns: list[str]) -> list[str]:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {p!r}: {exc}") from None
    return patterns


class BannedTerms(_Strict):
    """Words or phrases the answer must not contain (matched as whole words)."""

    terms: list[str] = Field(min_length=1)
    action: Literal["block", "flag", "redact"] = "block"
    case_sensitive: bool = False

    @field_validator("terms")
    @classmethod
    def _not_blank(cls, v: list[str]) -> list[str]:
        if any(not t.strip() for t in v):
            raise ValueError("a banned term must not be empty")
        return v


class BannedTopic(_Strict):
    """A subject the answer must not go into: found by patterns or by enough of its keywords."""

    name: str = Field(min_length=1, max_length=64)
    patterns: list[str] = Field(default_factory=list)  # regular expressions, searched case-insensitively
    keywords: list[str] = Field(default_factory=list)  # whole words, case-insensitive
    min_keywords: int = Field(2, ge=1)  # distinct keywords that must appear for the topic to match
    action: Literal["block", "flag"] = "block"

    @field_validator("patterns")
    @classmethod
    def _compile(cls, v: list[str]) -> list[str]:
        return _regexes(v)

    @model_validator(mode="after")
    def _something_to_match(self) -> BannedTopic:
        if not self.patterns and not self.keywords:
            raise ValueError("a topic needs patterns or keywords")
        return self


class UrlPolicy(_Strict):
    """Links in the answer must point at allowed hosts (a listed domain or one of its subdomains)."""

    allow: list[str] = Field(default_factory=list)  # e.g. [example.com, docs.python.org]; [] allows none
    schemes: list[str] = Field(default_factory=lambda: ["https", "http"])
    action: Literal["block", "flag", "redact"] = "redact"


class LengthPolicy(_Strict):
    """Bounds on the answer's size, in characters and words."""

    max_chars: int | None = Field(None, gt=0)
    max_words: int | None = Field(None, gt=0)
    min_chars: int | None = Field(None, ge=0)
    # truncate: cut a too-long answer at its last sentence end within the limit (text answers only)
    action: Literal["block", "flag", "truncate"] = "block"


class PolicyConfig(_Strict):
    """Policy checks on the answer; each is a stage with its own reason codes."""

    banned_terms: BannedTerms | None = None
    banned_topics: list[BannedTopic] = Field(default_factory=list)
    urls: UrlPolicy | None = None
    length: LengthPolicy | None = None


class Intent(_Strict):
    """A question answered by a rule, with no model call: matched by patterns or by similar examples.

    The answer is ``answer`` (a template: ``{name}`` is a named group of the matching pattern), a
    ``table`` entry chosen by the pattern's group ``key``, or what ``function`` returns
    (``module:function``, called with the Call and the match groups; None lets the model answer).
    """

    name: str = Field(min_length=1, max_length=64)
    patterns: list[str] = Field(default_factory=list)  # regular expressions, searched case-insensitively
    examples: list[str] = Field(default_factory=list)  # questions this intent answers (embedding match)
    # cosine similarity to the nearest example; MiniLM gives paraphrases about 0.6-0.75 (docs/config.md)
    threshold: float = Field(0.6, gt=0, le=1)
    answer: str | None = None
    table: dict[str, str] | None = None
    key: str = "key"  # the named group that picks the table row
    function: str | None = None

    @field_validator("patterns")
    @classmethod
    def _compile(cls, v: list[str]) -> list[str]:
        return _regexes(v)

    @model_validator(mode="after")
    def _one_source(self) -> Intent:
        if not self.patterns and not self.examples:
            raise ValueError("an intent needs patterns or examples")
        if sum(x is not None for x in (self.answer, self.table, self.function)) != 1:
            raise ValueError("give exactly one of answer, table or function")
        if self.table is not None and not any(f"(?P<{self.key}>" in p for p in self.patterns):
            raise ValueError(f"a table needs a pattern with a named group (?P<{self.key}>...)")
        return self


class PostStep(_Strict):
    """One deterministic edit of the model's answer: a regex replacement or a function."""

    replace: str | None = None  # a regular expression ...
    with_: str = Field("", alias="with")  # ... and what it becomes (\\1 refers to groups)
    function: str | None = None  # module:function, text -> text
    strip: bool = False  # strip surrounding whitespace

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("replace")
    @classmethod
    def _compile(cls, v: str | None) -> str | None:
        return None if v is None else _regexes([v])[0]

    @model_validator(mode="after")
    def _one(self) -> PostStep:
        if sum((self.replace is not None, self.function is not None, self.strip)) != 1:
            raise ValueError("give exactly one of replace, function or strip: true")
        return self


class GroundingConfig(_Strict):
    """Each answer sentence must be supported by the retrieved sources (features with retrieval)."""

    threshold: float = Field(0.5, ge=0, le=1)  # the weakest sentence's support below this: act
    weight: float = Field(0.5, ge=0, le=1)  # of the embedding similarity; the rest is lexical overlap
    action: Literal["flag", "reask", "idk"] = "flag"  # idk: "I don't know" with the sources
    reasks: int = Field(1, ge=0, le=3)  # for action reask
    # A model asked whether the sources support an answer that passed the score (SUPPORTED or
    # UNSUPPORTED): a changed detail barely moves the score (docs/benchmarks.md). None: no judge.
    judge: str | None = None


class ValidationConfig(_Strict):
    """The Validation layer's settings for one feature."""

    grounding: GroundingConfig | None = None

    intents: list[Intent] = Field(default_factory=list)  # answered before the model, without it
    postprocess: list[PostStep] = Field(default_factory=list)  # applied to the answer, in order

    structured: StructuredConfig = StructuredConfig()
    policy: PolicyConfig = PolicyConfig()
    # The answer sent when validation refuses the model's answer (after every re-ask): a JSON value
    # that satisfies the feature's schema, or text for a feature without one. None: a clear error.
    fallback: Any = None
