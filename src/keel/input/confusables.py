"""Homoglyph folding for detection: look-alike letters mapped to the Latin letters they imitate.

The model always sees the text as sent (after NFKC); only the scan view is folded, so that
``іgnоrе`` written with Cyrillic і, о, е is read as ``ignore``. NFKC already maps fullwidth
letters, mathematical alphanumerics, ligatures and circled letters; this table adds what it
leaves alone:

- Latin letters with diacritics (``ïgnörë``), small capitals and IPA letters, regional
  indicator and negative squared/circled letters (emoji "alphabets") — always folded;
- Cyrillic, Greek, Armenian and Cherokee look-alikes — folded only where the text reads as
  Latin, so that Russian or Greek stays Russian or Greek and its own words are scanned as such.

The table is written from the Unicode character names (checked with ``unicodedata.lookup`` at
import), after the Latin rows of Unicode's confusables.txt (UTS #39), not loaded from it.
Leetspeak (digits and symbols for letters) is a separate view, because reading ``3`` as ``e``
everywhere would garble every number.
"""

# ruff: noqa: E501  (tables of patterns and character names, kept one entry per line)
from __future__ import annotations

import re
import unicodedata

# -- cross-script look-alikes: letter -> the Latin letter it imitates ----------------------------
# fmt: off
_CROSS_SCRIPT_NAMES: dict[str, tuple[str, ...]] = {
    "a": ("CYRILLIC SMALL LETTER A", "CYRILLIC CAPITAL LETTER A", "GREEK SMALL LETTER ALPHA",
          "GREEK CAPITAL LETTER ALPHA", "CHEROKEE LETTER GO"),
    "b": ("CYRILLIC CAPITAL LETTER VE", "CYRILLIC SMALL LETTER VE", "GREEK CAPITAL LETTER BETA",
          "GREEK SMALL LETTER BETA", "CHEROKEE LETTER YV"),
    "c": ("CYRILLIC SMALL LETTER ES", "CYRILLIC CAPITAL LETTER ES", "GREEK LUNATE SIGMA SYMBOL",
          "GREEK CAPITAL LUNATE SIGMA SYMBOL", "CHEROKEE LETTER TLI"),
    "d": ("CYRILLIC SMALL LETTER KOMI DE", "CHEROKEE LETTER A"),
    "e": ("CYRILLIC SMALL LETTER IE", "CYRILLIC CAPITAL LETTER IE", "CYRILLIC SMALL LETTER IO",
          "GREEK SMALL LETTER EPSILON", "GREEK CAPITAL LETTER EPSILON", "CHEROKEE LETTER GV"),
    "g": ("ARMENIAN SMALL LETTER CO", "CHEROKEE LETTER NAH"),
    "h": ("CYRILLIC CAPITAL LETTER EN", "CYRILLIC SMALL LETTER SHHA", "CYRILLIC CAPITAL LETTER SHHA",
          "GREEK CAPITAL LETTER ETA", "ARMENIAN SMALL LETTER HO", "CHEROKEE LETTER MI",
          "CYRILLIC SMALL LETTER EN"),
    "i": ("CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I", "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I",
          "CYRILLIC SMALL LETTER YI", "GREEK SMALL LETTER IOTA", "GREEK CAPITAL LETTER IOTA",
          "CHEROKEE LETTER V"),
    "j": ("CYRILLIC SMALL LETTER JE", "CYRILLIC CAPITAL LETTER JE", "GREEK LETTER YOT",
          "CHEROKEE LETTER GU"),
    "k": ("CYRILLIC CAPITAL LETTER KA", "CYRILLIC SMALL LETTER KA", "GREEK CAPITAL LETTER KAPPA",
          "GREEK SMALL LETTER KAPPA", "CHEROKEE LETTER TSO"),
    "l": ("CYRILLIC LETTER PALOCHKA", "CYRILLIC SMALL LETTER PALOCHKA", "CHEROKEE LETTER TLE"),
    "m": ("CYRILLIC CAPITAL LETTER EM", "CYRILLIC SMALL LETTER EM", "GREEK CAPITAL LETTER MU",
          "CHEROKEE LETTER LU"),
    "n": ("GREEK CAPITAL LETTER NU", "GREEK SMALL LETTER ETA", "ARMENIAN SMALL LETTER VO",
          "CYRILLIC SMALL LETTER PE"),
    "o": ("CYRILLIC SMALL LETTER O", "CYRILLIC CAPITAL LETTER O", "GREEK SMALL LETTER OMICRON",
          "GREEK CAPITAL LETTER OMICRON", "ARMENIAN SMALL LETTER OH", "GREEK SMALL LETTER SIGMA"),
    "p": ("CYRILLIC SMALL LETTER ER", "CYRILLIC CAPITAL LETTER ER", "GREEK SMALL LETTER RHO",
          "GREEK CAPITAL LETTER RHO", "CHEROKEE LETTER TLV"),
    "q": ("CYRILLIC SMALL LETTER QA", "CYRILLIC CAPITAL LETTER QA", "ARMENIAN SMALL LETTER ZA"),
    "r": ("CHEROKEE LETTER E",),
    "s": ("CYRILLIC SMALL LETTER DZE", "CYRILLIC CAPITAL LETTER DZE", "CHEROKEE LETTER DU"),
    "t": ("CYRILLIC CAPITAL LETTER TE", "CYRILLIC SMALL LETTER TE", "GREEK CAPITAL LETTER TAU",
          "GREEK SMALL LETTER TAU", "CHEROKEE LETTER I"),
    "u": ("ARMENIAN SMALL LETTER SEH", "GREEK SMALL LETTER UPSILON", "GREEK SMALL LETTER MU"),
    "v": ("GREEK SMALL LETTER NU", "CHEROKEE LETTER DO"),
    "w": ("CYRILLIC SMALL LETTER WE", "CYRILLIC CAPITAL LETTER WE", "GREEK SMALL LETTER OMEGA",
          "CHEROKEE LETTER LA"),
    "x": ("CYRILLIC SMALL LETTER HA", "CYRILLIC CAPITAL LETTER HA", "GREEK SMALL LETTER CHI",
          "GREEK CAPITAL LETTER CHI"),
    "y": ("CYRILLIC SMALL LETTER U", "CYRILLIC CAPITAL LETTER U", "CYRILLIC SMALL LETTER STRAIGHT U",
          "CYRILLIC CAPITAL LETTER STRAIGHT U", "GREEK CAPITAL LETTER UPSILON", "GREEK SMALL LETTER GAMMA"),
    "z": ("GREEK CAPITAL LETTER ZETA", "GREEK SMALL LETTER ZETA", "CHEROKEE LETTER NO"),
}

# -- Latin look-alikes that NFKC leaves alone: always folded --------------------------------------
_LATIN_NAMES: dict[str, tuple[str, ...]] = {
    "a": ("LATIN SMALL LETTER ALPHA", "LATIN LETTER SMALL CAPITAL A"),
    "b": ("LATIN LETTER SMALL CAPITAL B",),
    "c": ("LATIN LETTER SMALL CAPITAL C",),
    "d": ("LATIN LETTER SMALL CAPITAL D", "LATIN SMALL LETTER D WITH STROKE", "LATIN SMALL LETTER ETH"),
    "e": ("LATIN LETTER SMALL CAPITAL E",),
    "f": ("LATIN LETTER SMALL CAPITAL F",),
    "g": ("LATIN SMALL LETTER SCRIPT G", "LATIN LETTER SMALL CAPITAL G"),
    "h": ("LATIN LETTER SMALL CAPITAL H", "LATIN SMALL LETTER H WITH STROKE"),
    "i": ("LATIN SMALL LETTER DOTLESS I", "LATIN LETTER SMALL CAPITAL I", "LATIN SMALL LETTER IOTA"),
    "j": ("LATIN LETTER SMALL CAPITAL J", "LATIN SMALL LETTER DOTLESS J"),
    "k": ("LATIN LETTER SMALL CAPITAL K",),
    "l": ("LATIN LETTER SMALL CAPITAL L", "LATIN SMALL LETTER L WITH STROKE"),
    "m": ("LATIN LETTER SMALL CAPITAL M",),
    "n": ("LATIN LETTER SMALL CAPITAL N",),
    "o": ("LATIN LETTER SMALL CAPITAL O", "LATIN SMALL LETTER O WITH STROKE"),
    "p": ("LATIN LETTER SMALL CAPITAL P",),
    "r": ("LATIN LETTER SMALL CAPITAL R",),
    "s": ("LATIN LETTER SMALL CAPITAL S",),
    "t": ("LATIN LETTER SMALL CAPITAL T", "LATIN SMALL LETTER T WITH STROKE"),
    "u": ("LATIN LETTER SMALL CAPITAL U",),
    "v": ("LATIN LETTER SMALL CAPITAL V",),
    "w": ("LATIN LETTER SMALL CAPITAL W",),
    "y": ("LATIN LETTER SMALL CAPITAL Y",),
    "z": ("LATIN LETTER SMALL CAPITAL Z",),
    "ae": ("LATIN SMALL LETTER AE", "LATIN CAPITAL LETTER AE"),
    "oe": ("LATIN SMALL LIGATURE OE", "LATIN CAPITAL LIGATURE OE"),
    "th": ("LATIN SMALL LETTER THORN", "LATIN CAPITAL LETTER THORN"),
    "ss": ("LATIN SMALL LETTER SHARP S",),
}
# fmt: on

# Leetspeak: what each digit or symbol stands for inside a word that also has letters.
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b",
                      "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e"})  # fmt: skip


def _table(names: dict[str, tuple[str, ...]]) -> dict[int, str]:
    table: dict[int, str] = {}
    for latin, chars in names.items():
        for name in chars:
            table[ord(unicodedata.lookup(name))] = latin
    return table


def _diacritics() -> dict[int, str]:
    """Latin letters with marks (Latin-1, Extended-A/B, Extended Additional) -> the bare letter."""
    table: dict[int, str] = {}
    for start, end in ((0x00C0, 0x0250), (0x1E00, 0x1F00)):
        for cp in range(start, end):
            base = unicodedata.normalize("NFD", chr(cp))[0]
            if base.isascii() and base.isalpha() and base != chr(cp):
                table[cp] = base.lower()
    return table


def _emoji_letters() -> dict[int, str]:
    """Regional indicators and negative squared/circled capitals (🇮🅶🅽) -> a..z."""
    table: dict[int, str] = {}
    for base in (0x1F1E6, 0x1F150, 0x1F170, 0x1F130):  # regional, negative circled, negative/plain squared
        for i in range(26):
            table[base + i] = chr(ord("a") + i)
    return table


CROSS_SCRIPT: dict[int, str] = _table(_CROSS_SCRIPT_NAMES)
LATIN: dict[int, str] = {**_diacritics(), **_emoji_letters(), **_table(_LATIN_NAMES)}
ALL: dict[int, str] = {**LATIN, **CROSS_SCRIPT}

_CROSS_CHARS = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(CROSS_SCRIPT)) + "]")
_WORD = re.compile(r"[^\W\d_]+")
_ASCII_LETTERS = re.compile(r"[A-Za-z]")


def latin_dominant(text: str) -> bool:
    """True when most letters of ``text`` are ASCII Latin: look-alikes in it are read as Latin."""
    letters = sum(1 for ch in text if ch.isalpha())
    if letters == 0:
        return True
    return len(_ASCII_LETTERS.findall(text)) * 2 >= letters


def fold(text: str, *, latin: bool | None = None) -> tuple[str, int]:
    """``text`` lowercased with look-alike letters folded to Latin, and how many cross-script ones were.

    ``latin`` says whether the surrounding text reads as Latin (``latin_dominant`` of the whole
    message); when it does not, only words that mix Latin letters with look-alikes are folded.
    """
    if text.isascii():
        return text.lower(), 0
    text = text.translate(LATIN)
    if _CROSS_CHARS.search(text) is None:
        return text.lower(), 0
    if latin is None:
        latin = latin_dominant(text)
    if latin:
        folded = text.translate(CROSS_SCRIPT)
        return folded.lower(), len(_CROSS_CHARS.findall(text))
    count = 0

    def _mixed(m: re.Match[str]) -> str:
        nonlocal count
        word = m.group()
        if word.isascii() or not _ASCII_LETTERS.search(word):
            return word
        foreign = [ch for ch in word if not ch.isascii()]
        if any(ord(ch) not in CROSS_SCRIPT for ch in foreign):
            return word  # a word of another script with a stray Latin letter: leave it be
        count += len(foreign)
        return word.translate(CROSS_SCRIPT)

    return _WORD.sub(_mixed, text).lower(), count


LEET_WORD = re.compile(r"[a-z0-9@$!|+€]*(?:[a-z][0-9@$|€]|[0-9@$|€][a-z])[a-z0-9@$!|+€]*")


def has_leet(text: str) -> bool:
    """True when a word of (lowercased) ``text`` mixes letters with digits or leet symbols."""
    return LEET_WORD.search(text) is not None


def unleet(text: str) -> str:
    """(Lowercased) ``text`` with the words that mix letters and digits read as leetspeak (``1gn0r3`` -> ``ignore``)."""
    return LEET_WORD.sub(lambda m: m.group().translate(LEET), text)
