"""Unicode normalisation: NFKC, and invisible or control characters removed and counted.

Zero-width characters, bidi controls, Unicode tag characters and the variation-selector
supplement are the usual carriers of hidden instructions; none of them changes what a
human reader sees, so removing them loses nothing a legitimate user meant to send.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from keel.call import Action, Call, Verdict
from keel.stage import Layer, Stage

_INVISIBLE = re.compile(
    "["
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0/C1 controls except tab, newline, carriage return
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"  # soft hyphen, grapheme joiner, fillers
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f"  # zero-width, bidi embeddings/overrides, invisible operators
    "\u3164\ufeff\uffa0\ufff9-\ufffb"  # fillers, BOM / zero-width no-break space, annotation controls
    "\U000e0000-\U000e007f"  # tag characters (invisible ASCII smuggling)
    "\U000e0100-\U000e01ef"  # variation selectors supplement (byte smuggling)
    "\ud800-\udfff"  # lone surrogates (undecodable bytes a library caller passed on): not text at all
    "]+"
)


def clean_text(text: str) -> tuple[str, int]:
    """``text`` in NFKC with invisible and control characters removed, and how many were removed."""
    if text.isascii() and _INVISIBLE.search(text) is None:
        return text, 0  # the common case: nothing to do, and no allocation
    removed = 0

    def _drop(match: re.Match[str]) -> str:
        nonlocal removed
        removed += len(match.group())
        return ""

    cleaned = _INVISIBLE.sub(_drop, text)
    if not cleaned.isascii():
        # Removal first, so characters split by an invisible one compose; then once more in case
        # a compatibility mapping produced a character we strip.
        cleaned = _INVISIBLE.sub(_drop, unicodedata.normalize("NFKC", cleaned))
    return cleaned, removed


class NormalizeStage(Stage):
    """NFKC-normalise every text the model will see and strip invisible characters, counting them."""

    name = "input.normalize"
    layer = Layer.INPUT

    async def run(self, call: Call) -> None:
        """Clean each message's text content in place."""
        removed = 0
        for i, message in enumerate(call.messages):
            content = message.get("content")
            if isinstance(content, str):
                cleaned, n = clean_text(content)
                if n or cleaned != content:
                    call.messages[i] = {**message, "content": cleaned}
                removed += n
            elif isinstance(content, list):
                parts, n = _clean_parts(content)
                if n or parts is not content:
                    call.messages[i] = {**message, "content": parts}
                removed += n
        if removed:
            call.count("input.invisible_removed", removed)
            call.add_verdict(
                Verdict(self.name, Action.MODIFY, "input.invisible_removed", score=float(removed))
            )


def _clean_parts(parts: list[Any]) -> tuple[list[Any], int]:
    out: list[Any] | None = None
    removed = 0
    for j, part in enumerate(parts):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            cleaned, n = clean_text(part["text"])
            if cleaned != part["text"]:
                if out is None:
                    out = list(parts)
                out[j] = {**part, "text": cleaned}
            removed += n
    return (out if out is not None else parts), removed
