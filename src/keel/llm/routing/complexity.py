"""The complexity scorer: how likely a prompt needs the large model, from 0 to 1.

Features are hashed words, word pairs and 5-letter stems of a prompt (its head and tail when
long), plus a few hand-counted signals (length, questions, code, math, multi-step cues),
scored by a logistic regression. ``train_complexity`` fits it with scikit-learn and writes
plain weights to JSON; here it is evaluated in pure Python, which for a sparse prompt of a few
hundred features is faster than numpy and needs no scientific stack at run time.

The same ``featurize`` serves training and scoring, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import math
import re
import sys
from array import array
from collections.abc import Sequence
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any
from zlib import crc32

from keel.errors import ConfigError
from keel.trained import read_model_file

FORMAT = "keel-complexity/1"
SHIPPED = "complexity_model.json"

HEAD_CHARS = 1000  # a long prompt's difficulty is in its instruction, usually at its start or end
TAIL_CHARS = 300  # (and this bounds the scoring time of any prompt)
STEM = 5  # letters of a word's stem feature (analyse/analysis/analyzing share "analy")

_TOKEN = re.compile(r"[a-z]+|\d+|[^\w\s]")
_LIST = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]", re.MULTILINE)
# Seeds of crc32 keep the kinds of feature apart in the one hashed space.
_UNI, _STEM, _PAIR = 0, 0x5EED, 0x9E3779B1

# Hand-counted signals, by token: multi-step cues, math and code.
# fmt: off
_CUES = frozenset({
    "step", "compare", "contrast", "prove", "proof", "design", "architecture", "architect", "analyze",
    "analyse", "analysis", "explain", "why", "tradeoffs", "trade", "derive", "implement", "optimize",
    "optimise", "plan", "strategy", "pros", "cons", "justify", "critique", "essay", "story", "detailed",
    "thorough", "thoroughly", "debug", "refactor", "algorithm", "recommend", "evaluate", "assess",
})
_MATH = frozenset({
    "=", "^", "+", "*", "×", "÷", "√", "∫", "∑", "<", ">", "sin", "cos", "tan", "log", "ln", "sqrt",
    "integral", "integrate", "derivative", "equation", "probability", "solve",
})
_CODE = frozenset({
    ";", "{", "}", "`", "def", "return", "import", "function", "const", "func", "var", "let", "class",
    "select", "print",
})
# fmt: on

HAND_FEATURES = (
    "log_chars",
    "log_words",
    "questions",
    "code",
    "math",
    "cues",
    "log_lines",
    "list_items",
    "big_numbers",
)

_memo: dict[str, tuple[int, int, int]] = {}  # token -> (its hash, its stem's hash or -1, signal kind)
_MEMO_MAX, _MEMO_LEN = 50_000, 24  # at most a few MB
_NONE, _CUE, _MATHS, _CODES, _BIG = 0, 1, 2, 3, 4


def _token(tok: str) -> tuple[int, int, int]:
    kind = _NONE
    if tok[0].isdigit():  # numbers by their size, not their value
        kind = _BIG if len(tok) >= 3 else _NONE
        tok = "0" * min(len(tok), 4)
    elif tok in _CUES:
        kind = _CUE
    elif tok in _MATH:
        kind = _MATHS
    elif tok in _CODE:
        kind = _CODES
    b = tok.encode()
    entry = (crc32(b, _UNI), crc32(b[:STEM], _STEM) if len(tok) > STEM else -1, kind)
    if len(_memo) >= _MEMO_MAX:
        _memo.clear()
    return entry


def clip(text: str) -> str:
    """The part of ``text`` the token features read: all of it, or its head and tail when long."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text.lower()
    return (text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]).lower()


def featurize(text: str) -> tuple[set[int], list[float]]:
    """(32-bit hashes of the words, word pairs and stems; the hand signals named in HAND_FEATURES).

    Training and scoring both call this, so they cannot drift apart.
    """
    clipped = clip(text)
    hashes: set[int] = set()
    add = hashes.add
    counts = [0, 0, 0, 0, 0]
    memo = _memo
    prev = -1
    for tok in _TOKEN.findall(clipped):
        entry = memo.get(tok)
        if entry is None:
            entry = _token(tok)
            if len(tok) <= _MEMO_LEN:  # a pasted blob is one long token: not worth keeping
                memo[tok] = entry
        h, stem, kind = entry
        add(h)
        if stem >= 0:
            add(stem)
        if prev >= 0:
            add(((prev * _PAIR) ^ h) & 0xFFFFFFFF)  # the pair of this word and the one before
        prev = h
        counts[kind] += 1
    hand = [
        math.log1p(len(text)),
        math.log1p(text.count(" ") + 1),
        float(min(clipped.count("?"), 5)),
        float(min(counts[_CODES] + 3 * clipped.count("```"), 20)),
        float(min(counts[_MATHS], 10)),
        float(min(counts[_CUE], 6)),
        math.log1p(text.count("\n")),
        float(min(len(_LIST.findall(clipped)), 10)),
        float(min(counts[_BIG], 5)),
    ]
    return hashes, hand


def encode_weights(weights: Sequence[float]) -> str:
    """Weights as base64 of little-endian float32 (how the model file stores them)."""
    arr = array("f", weights)
    if sys.byteorder == "big":
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")


def decode_weights(data: str) -> list[float]:
    """The inverse of ``encode_weights``."""
    arr = array("f")
    arr.frombytes(base64.b64decode(data))
    if sys.byteorder == "big":
        arr.byteswap()
    return arr.tolist()


class ComplexityModel:
    """A trained scorer: ``score(text)`` is the probability that the prompt needs the large model."""

    def __init__(
        self,
        weights: list[float],
        hand_weights: Sequence[float],
        hand_mean: Sequence[float],
        hand_scale: Sequence[float],
        bias: float,
        quantiles: Sequence[float],
        info: dict[str, Any] | None = None,
    ) -> None:
        n = len(weights)
        if n == 0 or n & (n - 1):
            raise ValueError("the number of hashed weights must be a power of two")
        if not (len(hand_weights) == len(hand_mean) == len(hand_scale) == len(HAND_FEATURES)):
            raise ValueError(f"expected {len(HAND_FEATURES)} hand features")
        if len(quantiles) < 2 or any(b < a for a, b in pairwise(quantiles)):
            raise ValueError("quantiles must be at least two non-decreasing values")
        self.weights = weights
        self.mask = n - 1
        # Standardisation folded into the weights: w·(x - mean)/scale = (w/scale)·x - Σ w·mean/scale.
        self.hand_weights = [w / s for w, s in zip(hand_weights, hand_scale, strict=True)]
        self.bias = bias - sum(w * m for w, m in zip(self.hand_weights, hand_mean, strict=True))
        self.quantiles = list(quantiles)
        self.info = info or {}

    def score(self, text: str) -> float:
        """P(large) for ``text``, between 0 and 1."""
        feats, hand = featurize(text)
        w, mask = self.weights, self.mask
        z = sum([w[h & mask] for h in feats]) / math.sqrt(len(feats)) if feats else 0.0
        for wi, xi in zip(self.hand_weights, hand, strict=True):
            z += wi * xi
        z += self.bias
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)  # never overflows for z < 0
        return e / (1.0 + e)

    def threshold_for(self, share: float) -> float:
        """The score above which ``share`` of the training prompts fall (from the shipped quantiles)."""
        q = self.quantiles
        pos = min(max(1.0 - share, 0.0), 1.0) * (len(q) - 1)
        i = min(int(pos), len(q) - 2)
        frac = pos - i
        return q[i] + (q[i + 1] - q[i]) * frac

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComplexityModel:
        """Build from the content of a model file."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} model (format: {data.get('format')!r})")
        return cls(
            weights=decode_weights(data["weights"]),
            hand_weights=[float(x) for x in data["hand"]["weights"]],
            hand_mean=[float(x) for x in data["hand"]["mean"]],
            hand_scale=[float(x) for x in data["hand"]["scale"]],
            bias=float(data["bias"]),
            quantiles=[float(x) for x in data["quantiles"]],
            info={k: data[k] for k in ("metrics", "training") if k in data},
        )

    @classmethod
    def load(cls, path: Path | None = None) -> ComplexityModel:
        """Read a model file (the one shipped with keel when ``path`` is None); ConfigError if unusable."""
        data = read_model_file("keel.llm.routing", SHIPPED, path, "complexity model")
        try:
            return cls.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path or SHIPPED}: cannot load the complexity model: {exc}") from exc


@cache
def shipped_model() -> ComplexityModel:
    """The complexity model that ships with keel, loaded once."""
    return ComplexityModel.load()
