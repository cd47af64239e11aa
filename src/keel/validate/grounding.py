"""Grounding: is each sentence of the answer supported by the sources the Context layer retrieved?

Each answer sentence gets a support score in [0, 1] from two signals:

- **lexical**: the share of its content words found in the sources, where numbers and code-like
  tokens (``__cause__``, ``-O``, ``x[1]``) weigh three times as much, since a changed number or a
  swapped name is the typical unsupported detail;
- **semantic**: its highest cosine similarity to a source sentence (the feature's embedder).

``support = weight * semantic + (1 - weight) * lexical``; the answer's score is its weakest
sentence's. Below ``threshold`` the feature's action applies: ``flag`` (answered, with a
verdict), ``reask`` (the model is asked again, told to state only what the sources say), or
``idk`` (the answer is replaced by "I don't know" with the sources). How well the score separates
supported from unsupported answers is measured in docs/benchmarks.md (bench/grounding_auroc.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from keel.call import Action, Call, Spend, Verdict
from keel.context.citations import Source
from keel.context.embed import Embedder
from keel.errors import OutputRejected
from keel.stage import Layer, Stage
from keel.validate.answer import rewrite
from keel.validate.grounding_judge import GroundingJudge
from keel.validate.settings import GroundingConfig

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])")
_CITATION = re.compile(r"\s*\[\d{1,4}(?:\s*,\s*\d{1,4})*\]")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|[-+*/%<>=!&|^~@]{1,3}[A-Za-z]?")
_CODE = re.compile(r"\d|_|[A-Z].*[A-Z]|^[-+*/%<>=!&|^~@]")
_STOP_WORDS = """
a an the and or but if then else of to in on at by for with from as is are was were be been
being it its this that these those there here which who whom what when where why how do does
did can could will would shall should may might must have has had you your we our they their he
she him her i me my so than too very also just into about such some own yes
"""
STOP = frozenset(_STOP_WORDS.split())  # negations and order words are content: they flip facts
IDK = "I don't know: the sources I was given do not answer this."


@dataclass(frozen=True, slots=True)
class SentenceSupport:
    """One answer sentence and how well the sources support it."""

    text: str
    support: float
    lexical: float
    semantic: float


def split_sentences(text: str) -> list[str]:
    """The answer's sentences, citation markers removed, whitespace collapsed."""
    flat = " ".join(_CITATION.sub("", text).split())
    return [s for s in _SENTENCE.split(flat) if s.strip()]


def _weighted(tokens: list[str]) -> list[tuple[str, float]]:
    return [(t.lower(), 3.0 if _CODE.search(t) else 1.0) for t in tokens if t.lower() not in STOP]


def lexical_support(sentence: str, vocabulary: set[str]) -> float:
    """The weighted share of the sentence's content tokens that appear in the sources."""
    weighted = _weighted(_TOKEN.findall(sentence))
    total = sum(w for _, w in weighted)
    if total == 0:
        return 1.0  # nothing to check ("Yes.")
    return sum(w for t, w in weighted if t in vocabulary) / total


class GroundingScorer:
    """Scores answers against source texts; ``embedder`` None uses the lexical signal alone."""

    def __init__(self, embedder: Embedder | None, weight: float = 0.5) -> None:
        self.embedder = embedder
        self.weight = weight if embedder is not None else 0.0

    async def sentences(self, answer: str, sources: list[str]) -> list[SentenceSupport]:
        """Each answer sentence with its support."""
        said = split_sentences(answer)
        if not said:
            return []
        vocabulary = {t.lower() for s in sources for t in _TOKEN.findall(s)}
        lexical = [lexical_support(s, vocabulary) for s in said]
        semantic = [0.0] * len(said)
        if self.embedder is not None and self.weight > 0:
            context = [c for s in sources for c in split_sentences(s)][:400]
            if context:
                vectors = await self.embedder.embed(said + context)
                sims = vectors[: len(said)] @ vectors[len(said) :].T
                semantic = [max(float(x), 0.0) for x in np.max(sims, axis=1)]
        w = self.weight
        return [
            SentenceSupport(s, w * sem + (1 - w) * lex, lex, sem)
            for s, lex, sem in zip(said, lexical, semantic, strict=True)
        ]

    async def score(self, answer: str, sources: list[str]) -> float:
        """The weakest sentence's support (1.0 for an answer with nothing to check)."""
        found = await self.sentences(answer, sources)
        return min((s.support for s in found), default=1.0)


class GroundingStage(Stage):
    """Checks an answer built on retrieved sources; acts on one that they do not support."""

    name = "validation.grounding"
    layer = Layer.VALIDATION

    def __init__(
        self, scorer: GroundingScorer, config: GroundingConfig, judge: GroundingJudge | None = None
    ) -> None:
        self.scorer = scorer
        self.config = config
        self.judge = judge

    async def run(self, call: Call) -> None:
        """Score the answer; flag, refuse (for a re-ask) or replace it when it falls short."""
        sources = [c for c in call.chunks if isinstance(c, Source)]
        if not sources or call.completion is None or call.completion.message.get("tool_calls"):
            return
        texts = [s.chunk.text for s in sources]
        found = await self.scorer.sentences(call.text, texts)
        if not found:
            return
        weakest = min(found, key=lambda s: s.support)
        if weakest.support >= self.config.threshold:
            if self.judge is None:
                return
            ruling = await self.judge.rule(call.text, texts, feature=call.feature)
            if ruling.usage is not None:
                call.spend.append(Spend(self.judge.model, ruling.usage))
            if ruling.supported is not False:
                return
            detail = f"{ruling.detail} (score {weakest.support:.2f})"
        else:
            detail = f"least supported sentence ({weakest.support:.2f}): {weakest.text}"[:500]
        action = self.config.action
        if action == "flag":
            call.add_verdict(
                Verdict(self.name, Action.FLAG, "grounding.unsupported", weakest.support, detail)
            )
        elif action == "idk":
            listed = "; ".join(f"[{s.n}] {s.chunk.title or s.chunk.source}" for s in sources)
            rewrite(call, f"{IDK} Sources: {listed}")
            call.add_verdict(
                Verdict(self.name, Action.MODIFY, "grounding.unsupported", weakest.support, detail)
            )
        else:
            call.add_verdict(
                Verdict(self.name, Action.BLOCK, "grounding.unsupported", weakest.support, detail)
            )
            raise OutputRejected(
                f"the answer is not supported by the retrieved sources: {detail}",
                code="grounding_unsupported",
            )
