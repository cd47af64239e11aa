"""The injection classifier: hashed word, word-pair and character n-gram features, logistic regression.

``features`` turns the scan views of a text (``keel.input.views``) and the signature families
that matched them into a set of 32-bit hashes: each word, each pair of neighbouring words, the
3- and 4-letter pieces of each word (which carry other languages, inflections and misspellings),
the sequence of word classes (``keel.input.lexicon``), plus a flag per matched signature family
and per kind of view that was needed (base64, leetspeak, ...). ``InjectionModel`` sums the
weights of the text features (folded into a fixed number of buckets), divides by the square
root of their number, adds the weights of the flags and applies the logistic function.

``train_injection`` fits the weights with scikit-learn and writes them to
``injection_model.json`` beside this module; scoring needs only numpy (a core dependency), never
scikit-learn.
The same ``features`` serves training and scoring, so the two cannot drift apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from functools import cache
from pathlib import Path
from typing import Any
from zlib import crc32

import numpy as np

from keel.errors import ConfigError
from keel.input.lexicon import CLASS_OF
from keel.input.signatures import Hit
from keel.input.views import View
from keel.llm.routing.complexity import decode_weights
from keel.trained import read_model_file

FORMAT = "keel-injection/1"
SHIPPED = "injection_model.json"

_TOKEN = re.compile(r"\w+|[^\w\s]")
_NGRAM_WORD = 24  # letters of a word cut into n-grams at most (bounds the work on blobs)
_WORD, _PAIR, _GRAM, _META, _CONCEPT = 0, 0x9E3779B1, 0x5EED, 0xFEA7, 0xC1A55
_memo: dict[str, tuple[tuple[int, ...], str | None]] = {}  # token -> (its hashes, its word class)
_MEMO_MAX, _MEMO_LEN = 50_000, 32  # at most ~15 MB


def _token_hashes(tok: str) -> tuple[int, ...]:
    b = tok.encode("utf-8", "surrogatepass")
    out = [crc32(b, _WORD)]
    if tok[0].isalpha():
        padded = f"<{tok[:_NGRAM_WORD]}>"
        for n in (3, 4):
            for i in range(len(padded) - n + 1):
                out.append(crc32(padded[i : i + n].encode("utf-8", "surrogatepass"), _GRAM))
    return tuple(out)


def meta(name: str) -> int:
    """The hash of a named feature (a signature family, a kind of view)."""
    return crc32(name.encode(), _META)


def tokens(text: str) -> list[str]:
    """The words and punctuation marks of a (folded, lowercased) view, as features and signatures see them."""
    return _TOKEN.findall(text)


def _words(toks: list[str], feats: set[int]) -> None:
    memo = _memo
    update, add = feats.update, feats.add
    prev = -1
    seq: list[str] = []
    for tok in toks:
        entry = memo.get(tok)
        if entry is None:
            entry = (_token_hashes(tok), CLASS_OF.get(tok))
            if len(tok) <= _MEMO_LEN:
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[tok] = entry
        hashes, cls = entry
        update(hashes)
        h = hashes[0]
        if prev >= 0:
            add(((prev * _PAIR) ^ h) & 0xFFFFFFFF)
        prev = h
        if cls is not None:
            seq.append(cls)
    _concepts(seq, add)


@cache
def _concept(name: str) -> int:
    return crc32(name.encode(), _CONCEPT)


def _concepts(seq: list[str], add: Any) -> None:
    """Each word class, each pair of neighbouring classes and each pair one apart (other words skipped)."""
    for i, cls in enumerate(seq):
        add(_concept(cls))
        if i + 1 < len(seq):
            add(_concept(f"{cls} {seq[i + 1]}"))
            if i + 2 < len(seq):
                add(_concept(f"{cls} _ {seq[i + 2]}"))


def features(
    views: Sequence[View], hits: Iterable[Hit], toks: Sequence[list[str]] | None = None
) -> tuple[set[int], set[int]]:
    """(hashed text features, flag features) of a text's scan views and the signature families they matched.

    Text features (words, word pairs, letter n-grams, word-class sequences) are scaled together by
    the square root of their number; flags (a signature family matched, a kind of view was
    needed) count in full, whatever the length of the text. ``toks`` are the views' ``tokens``
    when the caller has them already.
    """
    feats: set[int] = set()
    flags: set[int] = set()
    for i, view in enumerate(views):
        if view.kind != "text":
            flags.add(meta(f"view:{view.kind.split('+')[0]}"))
        _words(toks[i] if toks is not None else tokens(view.text), feats)
    for hit in hits:
        flags.add(meta(f"sig:{hit.family}"))
    return feats, flags


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # never overflows for z < 0
    return e / (1.0 + e)


class InjectionModel:
    """A trained classifier: ``score(features)`` is the probability that a text is an injection."""

    def __init__(self, weights: list[float], bias: float, info: dict[str, Any] | None = None) -> None:
        n = len(weights)
        if n == 0 or n & (n - 1):
            raise ValueError("the number of weights must be a power of two")
        self.weights = weights
        self.array = np.asarray(weights, dtype=np.float64)  # summed in numpy: faster for ~1000 features
        self.mask = n - 1
        self.bias = bias
        self.info = info or {}

    def score(self, feats: AbstractSet[int], flags: AbstractSet[int] = frozenset()) -> float:
        """P(injection) for a text's features and flags (see ``features``), between 0 and 1."""
        w, mask = self.weights, self.mask
        z = self.bias + sum([w[h & mask] for h in flags])
        if feats:
            idx = np.fromiter(feats, np.int64, len(feats))
            idx &= mask
            z += float(self.array[idx].sum()) / math.sqrt(len(feats))
        return _sigmoid(z)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InjectionModel:
        """Build from the content of a model file."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} model (format: {data.get('format')!r})")
        return cls(
            decode_weights(data["weights"]),
            float(data["bias"]),
            {k: data[k] for k in ("metrics", "training") if k in data},
        )

    @classmethod
    def load(cls, path: Path | None = None) -> InjectionModel:
        """Read a model file (the one shipped with keel when ``path`` is None); ConfigError if unusable."""
        data = read_model_file("keel.input", SHIPPED, path, "injection model")
        try:
            return cls.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path or SHIPPED}: cannot load the injection model: {exc}") from exc


@cache
def shipped_model() -> InjectionModel:
    """The injection model that ships with keel, loaded once."""
    return InjectionModel.load()
