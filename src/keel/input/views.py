"""Scan views: the readings of a text that the injection detector looks at (never sent to the model).

One text can hide an instruction several ways, so the detector reads it several ways:

- ``text``: NFKC, invisible characters removed, look-alike letters folded to Latin, lowercased;
- ``leetspeak``: that, with words mixing letters and digits read as leetspeak (``1gn0r3``);
- ``spacing``: letters spelled out one by one joined back (``i g n o r e`` -> ``ignore``);
- ``base64``, ``hex``, ``url``, ... : each encoded payload decoded (``keel.input.decode``), read
  the same way.

``views`` returns them with how many look-alikes were folded, so a detection can say why it
saw through a disguise.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from keel.input.confusables import LEET_WORD, fold, has_leet, latin_dominant, unleet
from keel.input.decode import payloads
from keel.input.normalize import clean_text

# Three or more single letters each followed by one separator, then a last letter: "i.g.n.o.r.e".
_SPACED = re.compile(r"(?<!\w)(?:\w[ ._\-*]){3,}\w(?!\w)")
_SEPARATORS = re.compile(r"[ ._\-*]")


class View(NamedTuple):
    """One reading of a text: how it was read (``text``, ``leetspeak``, ``base64``, ...) and the result."""

    kind: str
    text: str


class Views(NamedTuple):
    """Every reading of a text, and what it took to read it."""

    views: list[View]
    homoglyphs: int  # cross-script look-alike letters folded to Latin
    invisible: int  # invisible or control characters removed


def despace(text: str) -> str | None:
    """``text`` with letter-by-letter spellings joined up, or None when it has none."""
    if _SPACED.search(text) is None:
        return None
    return _SPACED.sub(lambda m: _SEPARATORS.sub("", m.group()), text)


def views(text: str, *, latin: bool | None = None, decode: bool = True) -> Views:
    """The readings of ``text`` the detector scores; ``latin`` overrides the script guess for folding."""
    cleaned, invisible = clean_text(text)
    if latin is None and not cleaned.isascii():
        latin = latin_dominant(cleaned)
    folded, homoglyphs = fold(cleaned, latin=latin)
    out = [View("text", folded)]
    _variants(folded, out)
    if decode:
        for p in payloads(cleaned):
            plain, n = fold(clean_text(p.text)[0])
            homoglyphs += n
            out.append(View(p.kind, plain))
            _variants(plain, out)
    return Views(out, homoglyphs, invisible)


def _variants(folded: str, out: list[View]) -> None:
    if has_leet(folded) and _leety(folded):
        read = unleet(folded)
        if read != folded:
            out.append(View("leetspeak", read))
    joined = despace(folded)
    if joined is not None:
        out.append(View("spacing", joined))


def _leety(text: str) -> bool:
    """True when enough words mix letters and digits to read as leetspeak (not one model number or email)."""
    n = len(LEET_WORD.findall(text))
    return n >= 2 or (n == 1 and text.count(" ") < 12)
