"""The injection detector: signatures and the classifier over every scan view of a text, window by window.

A planted instruction is one sentence in a long document, so a long text is cut at sentence
boundaries into windows of about ``WINDOW`` characters, each read in all its views (folded,
leetspeak, spelled out, decoded payloads: ``keel.input.views``) and scored on its own; the text
scores as its worst window. The windows are kept, so ``strip`` can remove just the bad ones.

``scan`` is pure, bounded work with no I/O: the Input layer, untrusted-content wrapping and the
benchmarks all call it. The optional LLM judge for the grey zone lives in ``keel.input.judge``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.input.classifier import InjectionModel, features, shipped_model, tokens
from keel.input.confusables import latin_dominant
from keel.input.normalize import clean_text
from keel.input.signatures import DECISIVE_SCORE, FAMILIES, PREFIX, Hit, match
from keel.input.views import Views, views

WINDOW = 600  # characters per window (a text this short is one window)
MAX_SCAN = 200_000  # characters of one text scanned at most (the Limits stage refuses bigger input)
_BOUNDARY = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_PRIORITY = {f: i for i, f in enumerate(FAMILIES)}
CLASSIFIER = f"{PREFIX}.classifier"


@dataclass(frozen=True, slots=True)
class Window:
    """One scored window of a text: its span (in the cleaned text), score and reason code."""

    start: int
    end: int
    score: float
    reason: str
    via: tuple[str, ...]  # the views that were needed: base64, leetspeak, homoglyph, ...


@dataclass(frozen=True, slots=True)
class Detection:
    """What the detector found in one text: its score, reason code, a readable detail and its windows."""

    score: float
    reason: str
    detail: str
    windows: tuple[Window, ...]
    text: str  # the cleaned text the spans refer to


def windows(text: str, size: int = WINDOW) -> list[tuple[int, int]]:
    """``text`` cut at sentence boundaries or newlines into spans of about ``size`` characters."""
    if len(text) <= size:
        return [(0, len(text))]
    spans: list[tuple[int, int]] = []
    start = 0
    last_cut = 0
    for m in _BOUNDARY.finditer(text):
        if m.start() - start > size and last_cut > start:
            spans.append((start, last_cut))
            start = last_cut
        last_cut = m.end()
    if len(text) - start > size and start < last_cut < len(text):
        spans.append((start, last_cut))
        start = last_cut
    spans.append((start, len(text)))
    return spans


def read(text: str, *, latin: bool | None = None) -> tuple[Views, list[Hit], list[list[str]]]:
    """The scan views of ``text``, the signature families they match (most telling first), and their tokens.

    Training reads each labelled text this way, and so does every window at run time.
    """
    vs = views(text, latin=latin)
    hits: list[Hit] = []
    seen: set[str] = set()
    toks = [tokens(view.text) for view in vs.views]
    for view, tk in zip(vs.views, toks, strict=True):
        for hit in match(view.text, set(tk)):
            if hit.family not in seen:
                seen.add(hit.family)
                hits.append(hit)
    hits.sort(key=lambda h: _PRIORITY[h.family])
    return vs, hits, toks


class Detector:
    """Scores texts for prompt injection with signatures and a trained model (by default the shipped one)."""

    def __init__(self, model: InjectionModel | None = None, *, window: int = WINDOW) -> None:
        self.model = model or shipped_model()
        self.window = window

    def scan(self, text: str) -> Detection:
        """Score ``text`` (any string; never raises): the worst window decides."""
        cleaned, invisible = clean_text(text[:MAX_SCAN])
        latin = True if cleaned.isascii() else latin_dominant(cleaned)
        scored = tuple(self._window(cleaned, s, e, latin) for s, e in windows(cleaned, self.window))
        worst = max(scored, key=lambda w: w.score)
        via = sorted({v for w in scored if w.score == worst.score for v in w.via})
        return Detection(
            worst.score, worst.reason, _detail(worst, via, invisible, len(scored)), scored, cleaned
        )

    def score(self, text: str) -> float:
        """Only the score of ``text``."""
        return self.scan(text).score

    def strip(self, det: Detection, threshold: float, marker: str) -> str:
        """The scanned text with what scores ``threshold`` or more replaced by ``marker``.

        Within a window at or over the threshold, each sentence is scored alone and only those
        over it are removed; when none is on its own (an attack spread over several sentences),
        the whole window goes.
        """
        out, pos = [], 0
        latin = True if det.text.isascii() else latin_dominant(det.text)
        for w in det.windows:
            if w.score < threshold:
                continue
            spans = [
                (a, b)
                for a, b in windows(det.text[w.start : w.end], 1)
                if self._window(det.text, w.start + a, w.start + b, latin).score >= threshold
            ]
            for a, b in spans or [(0, w.end - w.start)]:
                end = w.start + len(det.text[w.start + a : w.start + b].rstrip()) + a
                out += [det.text[pos : w.start + a], marker]
                pos = end  # the whitespace after a removed sentence stays
        out.append(det.text[pos:])
        return "".join(out)

    def _window(self, text: str, start: int, end: int, latin: bool) -> Window:
        vs, hits, toks = read(text[start:end], latin=latin)
        score = self.model.score(*features(vs.views, hits, toks))
        if hits and hits[0].family == "role_token":
            score = max(score, DECISIVE_SCORE)
        reason = hits[0].reason if hits else CLASSIFIER
        via = [v.kind for v in vs.views[1:]]
        if vs.homoglyphs:
            via.append("homoglyph")
        return Window(start, end, round(score, 4), reason, tuple(dict.fromkeys(via)))


def _detail(worst: Window, via: list[str], invisible: int, n: int) -> str:
    parts = [f"score {worst.score:.2f}"]
    if via:
        parts.append("read via " + ", ".join(via))
    if invisible:
        parts.append(f"{invisible} invisible characters removed")
    if n > 1:
        parts.append(f"worst of {n} windows at {worst.start}..{worst.end}")
    return "; ".join(parts)


_default: Detector | None = None


def default_detector() -> Detector:
    """The process-wide detector with the shipped model (built on first use)."""
    global _default
    if _default is None:
        _default = Detector()
    return _default
