"""Encoded payloads inside a text, decoded for scanning only (the model sees the text as sent).

An attack hidden as ``aWdub3JlIGFsbCBwcmV2aW91cyBpbnN0cnVjdGlvbnM=`` says nothing to a scanner
reading words, but plenty to a model that is asked to decode it. ``payloads`` finds base64
(standard and URL-safe), hex (plain, ``\\x``-escaped or separated), percent-encoding, HTML
character references and ``\\u`` escapes, plus whole segments written in ROT13 or backwards,
and returns what decodes to readable text. The work is bounded: at most ``MAX_PAYLOADS``
payloads and ``MAX_DECODED`` decoded characters per text, candidates capped in length, and one
level of nesting (base64 inside hex, say) followed.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
from typing import NamedTuple
from urllib.parse import unquote_plus

MAX_PAYLOADS = 8
MAX_DECODED = 20_000  # characters decoded per text, all payloads together
MAX_CANDIDATE = 65_536  # characters of one candidate read at most
MAX_DEPTH = 2  # a payload inside a payload is decoded too, no deeper

# Long runs (base64, separated hex) are looked for everywhere; the other encodings only when their
# marker is in the text at all, which keeps the common case to one pass.
_RUNS = re.compile(
    r"(?P<hexsep>(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :,-]){5,}[0-9A-Fa-f]{2}(?![0-9A-Fa-f]))"
    r"|(?P<b64>(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2})"
)
_MARKED: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("hexesc", "\\x", re.compile(r"(?:\\x[0-9A-Fa-f]{2}){4,}")),
    ("uesc", "\\u", re.compile(r"(?:\\u[0-9A-Fa-f]{4}){3,}")),
    ("entity", "&#", re.compile(r"(?:&#(?:[0-9]{2,7}|[xX][0-9A-Fa-f]{2,6});){3,}")),
    ("pct", "%", re.compile(r"(?<!\S)[^\s%]*(?:%[0-9A-Fa-f]{2}[^\s%]*){3,}")),
)
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_HEX = re.compile(r"(?:0x)?((?:[0-9A-Fa-f]{2}){8,})")
_PRINTABLE_SHARE = 0.9

# ROT13 and reversed text: a segment of ASCII words that hardly reads as English until turned.
_COMMON_WORDS = (
    "the you your and all any previous prior instructions instruction ignore forget disregard "
    "now are is to of a in it that this for with as be not do what system prompt rules say print "
    "reveal tell me from new must will"
)
_COMMON = frozenset(_COMMON_WORDS.split())
_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)
_ASCII_WORDS = re.compile(r"[A-Za-z]+")


class Payload(NamedTuple):
    """A decoded payload: how it was encoded, its text, and where its encoded form sits in the input."""

    kind: str
    text: str
    start: int
    end: int


def payloads(text: str, *, depth: int = 1) -> list[Payload]:
    """The encoded payloads in ``text`` that decode to readable text (bounded work, never raises)."""
    found: list[Payload] = []
    budget = MAX_DECODED
    for kind, m in _candidates(text):
        if len(found) >= MAX_PAYLOADS or budget <= 0:
            break
        decoded = _decode(kind, m.group()[:MAX_CANDIDATE])
        if decoded is None:
            continue
        kind, plain = decoded
        plain = plain[:budget]
        budget -= len(plain)
        found.append(Payload(kind, plain, m.start(), m.end()))
        if depth < MAX_DEPTH:
            found += [p._replace(kind=f"{kind}+{p.kind}") for p in payloads(plain, depth=depth + 1)]
    cipher = _cipher(text)
    if cipher is not None and len(found) < MAX_PAYLOADS:
        found.append(Payload(cipher[0], cipher[1][:budget], 0, len(text)))
    return found[:MAX_PAYLOADS]


def _candidates(text: str) -> list[tuple[str, re.Match[str]]]:
    """(kind, match) for every candidate payload, in order of position."""
    found = [(m.lastgroup or "", m) for m in _RUNS.finditer(text)] if _may_run(text) else []
    for kind, marker, pattern in _MARKED:
        if marker in text:
            found += [(kind, m) for m in pattern.finditer(text)]
    found.sort(key=lambda km: km[1].start())
    return found


def _may_run(text: str) -> bool:
    """True when ``text`` has a 16-character run without spaces or six two-character words (hex bytes)."""
    words = text.split()
    if not words:
        return False
    return (
        max(map(len, words)) >= 16
        or sum(len(w) == 2 and w[0] in _HEXDIGITS and w[1] in _HEXDIGITS for w in words) >= 6
    )


def _decode(kind: str, s: str) -> tuple[str, str] | None:
    """(kind, readable text) for a candidate, or None when it is not an encoding of text."""
    if kind == "b64":
        hexed = _HEX.fullmatch(s)
        if hexed is not None and len(s) % 2 == 0:
            return _readable("hex", _unhex(hexed.group(1)))
        return _readable("base64", _unb64(s))
    if kind == "hexsep":
        return _readable("hex", _unhex(re.sub(r"[ :,-]", "", s)))
    if kind == "hexesc":
        return _readable("hex", _unhex(s.replace("\\x", "")))
    if kind == "pct":
        try:
            return _readable_text("url", unquote_plus(s, errors="strict"), s)
        except UnicodeDecodeError:
            return None
    if kind == "entity":
        return _readable_text("html", html.unescape(s), s)
    if kind == "uesc":
        try:
            return _readable_text("unicode_escape", codecs.decode(s, "unicode_escape"), s)
        except UnicodeDecodeError:
            return None
    return None


def _unb64(s: str) -> bytes | None:
    body = s.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        if "-" in padded or "_" in padded:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _unhex(s: str) -> bytes | None:
    try:
        return bytes.fromhex(s)
    except ValueError:
        return None


def _readable(kind: str, raw: bytes | None) -> tuple[str, str] | None:
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _readable_text(kind, text, "")


def _readable_text(kind: str, text: str, original: str) -> tuple[str, str] | None:
    """Keep decoded text that reads as text: mostly printable, with letters, and not what was there."""
    if not text or text == original:
        return None
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\n\t\r")
    letters = sum(1 for ch in text if ch.isalpha())
    if printable < _PRINTABLE_SHARE * len(text) or letters < 3 or letters < 0.4 * len(text):
        return None
    return kind, text


def _common_share(words: list[str]) -> float:
    return sum(1 for w in words if w.lower() in _COMMON) / len(words)


def _cipher(text: str) -> tuple[str, str] | None:
    """The whole text read as ROT13 or backwards, when that turns gibberish into common words."""
    words = _ASCII_WORDS.findall(text)
    if len(words) < 4 or sum(map(len, words)) < 0.5 * len(text) or _common_share(words) >= 0.1:
        return None
    rot = text.translate(_ROT13)
    if _common_share(_ASCII_WORDS.findall(rot)) >= 0.25:
        return "rot13", rot
    backwards = text[::-1]
    if _common_share(_ASCII_WORDS.findall(backwards)) >= 0.25:
        return "reversed", backwards
    return None
