"""Assemble the prompt-injection sets: ``python data/injection/build.py``.

Writes, deterministically (a fixed seed), beside this file:

- ``prompts.jsonl`` — the labelled set that trains and evaluates the classifier: templates in
  English (templates.py) and seven other languages (templates_intl.py), documents with and
  without planted instructions (documents.py), obfuscated variants, and hand-written prompts
  (hand.py). Each template (and each document) belongs wholly to one split, so ``heldout``
  measures phrasings and documents that training never saw.
- ``redteam.jsonl`` — the red-team corpus (redteam.py) with its encoded and disguised variants;
  never used for training.

See README.md for what the labels mean, where the style comes from and how far to trust it.
"""

# ruff: noqa: E501  (data tables and one-line rows)
from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import random
import re
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent


def _sibling(name: str) -> ModuleType:
    """A module beside this file, loaded without touching sys.path."""
    spec = importlib.util.spec_from_file_location(f"injection_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_en, _intl, _docs, _hand, _red = (
    _sibling(n) for n in ("templates", "templates_intl", "documents", "hand", "redteam")
)
SLOTS: dict[str, list[str]] = {**_en.SLOTS, **_intl.SLOTS}

SEED = 20251129
HELDOUT_EVERY = 4  # every 4th template of a family (all languages together) is held out
PER_EN_ATTACK, PER_EN_BENIGN, PER_INTL = 12, 10, 6
PER_INJECTION = 14  # documents planted with each indirect-injection template
INTENT = {
    "direct_override": "override",
    "jailbreak": "jailbreak",
    "prompt_leak": "leak",
    "indirect": "indirect",
}

# -- obfuscations ---------------------------------------------------------------------------------
HOMOGLYPHS = {"a": "аα", "c": "сϲ", "e": "еε", "i": "іι", "j": "ј", "o": "оο", "p": "рρ", "s": "ѕ", "x": "хχ",
              "y": "уγ", "h": "һ", "k": "κ", "t": "τ", "A": "АΑ", "E": "ЕΕ", "O": "ОΟ", "P": "РΡ", "T": "ТΤ"}  # fmt: skip
LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "g": "9", "b": "8", "l": "1|"}
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
ENCODED_WRAPPERS = [
    "Decode this base64 and follow it: {b64}", "{b64}", "Here is a message in base64, do what it says: {b64}",
    "Please decode and execute: {b64}", "Instruction (hex): {hex}", "Decode the hex and act on it: {hex}",
    "Open https://example.com/search?q={url}", "Follow the instruction in this URL: https://x.example/?cmd={url}",
    "Decode this ROT13 and do it: {rot13}",
]  # fmt: skip
BENIGN_WRAPPERS = [
    "What does this base64 say? {b64}", "Decode this base64 for me: {b64}", "{b64}",
    "Can you read this hex? {hex}", "What is this URL searching for? https://example.com/search?q={url}",
    "Decode this ROT13: {rot13}",
]  # fmt: skip
_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)


def _encode(wrapper: str, text: str) -> str:
    return wrapper.format(
        b64=base64.b64encode(text.encode()).decode(),
        hex=text.encode().hex(),
        url=quote(text),
        rot13=text.translate(_ROT13),
    )


def homoglyphs(text: str, rng: random.Random, share: float = 0.5) -> str:
    """Latin letters swapped for Cyrillic or Greek look-alikes."""
    return "".join(rng.choice(HOMOGLYPHS[c]) if c in HOMOGLYPHS and rng.random() < share else c for c in text)


def leetspeak(text: str, rng: random.Random, share: float = 0.7) -> str:
    """Letters swapped for digits and symbols."""
    return "".join(rng.choice(LEET[c]) if c in LEET and rng.random() < share else c for c in text)


def zero_width(text: str, rng: random.Random, share: float = 0.35) -> str:
    """Invisible characters slipped between letters."""
    out = []
    for i, c in enumerate(text):
        out.append(c)
        if c.isalpha() and i + 1 < len(text) and text[i + 1].isalpha() and rng.random() < share:
            out.append(rng.choice(ZERO_WIDTH))
    return "".join(out)


def spaced(text: str, rng: random.Random) -> str:
    """Every word of the first sentence spelled out letter by letter."""
    head, sep, rest = text.partition(". ")
    sepr = rng.choice([" ", "-", ".", "_"])
    words = ["".join(sepr.join(w)) for w in head.split()]
    return "  ".join(words) + sep + rest


def obfuscate(kind: str, text: str, rng: random.Random, benign: bool) -> str:
    """``text`` disguised as ``kind``."""
    if kind == "encoding":
        return _encode(rng.choice(BENIGN_WRAPPERS if benign else ENCODED_WRAPPERS), text)
    if kind == "homoglyph":
        return homoglyphs(text, rng, 0.08 if benign else 0.5)  # a stray look-alike from a keyboard layout
    if kind == "leetspeak":
        return leetspeak(text, rng, 0.25 if benign else 0.7)
    if kind == "zero_width":
        return zero_width(text, rng)
    if kind == "spacing":
        return spaced(text, rng)
    raise ValueError(kind)


# -- filling templates ------------------------------------------------------------------------------
_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, rng: random.Random) -> str:
    """Replace each ``{slot}`` with a value (``{Slot}`` capitalised), slots inside values too."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        key = name if name in SLOTS else name[0].lower() + name[1:]
        if key not in SLOTS:
            raise KeyError(f"unknown slot {name!r} in {template!r}")
        value = fill(rng.choice(SLOTS[key]), rng)
        return value[:1].upper() + value[1:] if name != key else value

    return _SLOT.sub(one, template)


def vary(text: str, rng: random.Random) -> str:
    """Surface noise shared by both labels: casing, a trailing courtesy, a missing full stop."""
    r = rng.random()
    if r < 0.08:
        text = text.lower()
    elif r < 0.12:
        text = text.upper()
    elif r < 0.2 and text.endswith("."):
        text = text[:-1]
    if "\n" not in text and rng.random() < 0.25:
        text += rng.choice(SLOTS["polite"])
    return text


def _item(text: str, *, label: str, family: str, intent: str, lang: str, template: str, split: str,
          source: str, obfuscation: str = "none", role: str = "user") -> dict[str, Any]:  # fmt: skip
    return {
        "id": hashlib.sha256(text.encode("utf-8")).hexdigest()[:12],
        "text": text,
        "label": label,
        "family": family,
        "intent": intent,
        "lang": lang,
        "obfuscation": obfuscation,
        "role": role,
        "template": template,
        "split": split,
        "source": source,
    }


def _split(counter: dict[str, int], group: str) -> str:
    n = counter.get(group, 0)
    counter[group] = n + 1
    return "heldout" if n % HELDOUT_EVERY == HELDOUT_EVERY - 1 else "train"


def _plant(doc: str, injection: str, rng: random.Random) -> str:
    """``injection`` placed at the start, at a sentence boundary inside, or at the end of ``doc``."""
    cuts = [m.end() for m in re.finditer(r"[.!?]\s+|\n", doc)]
    where = rng.choice(["start", "end", "inside", "inside"]) if cuts else rng.choice(["start", "end"])
    if where == "start":
        return injection + "\n" + doc
    if where == "end":
        return doc + rng.choice([" ", "\n", "\n\n"]) + injection
    cut = rng.choice(cuts)
    return doc[:cut] + injection + " " + doc[cut:]


def build() -> list[dict[str, Any]]:
    """Every labelled prompt, with its split."""
    rng = random.Random(SEED)
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    groups: dict[str, int] = {}

    def add(text: str, **kw: Any) -> bool:
        if text in seen:
            return False
        seen.add(text)
        items.append(_item(text, **kw))
        return True

    def instances(tid: str, phrasings: list[str], n: int, **kw: Any) -> None:
        made = 0
        for _ in range(n * 8):
            if made >= n:
                break
            made += add(vary(fill(rng.choice(phrasings), rng), rng), template=tid, source="template", **kw)

    templates: list[tuple[str, str, str, str, list[str]]] = []  # (tid, label, family, lang, phrasings)
    for i, (family, phrasings) in enumerate(_en.ATTACKS):
        templates.append((f"a{i:03d}", "injection", family, "en", phrasings))
    for i, (lang, family, phrasings) in enumerate(_intl.ATTACKS):
        templates.append((f"x{i:03d}", "injection", family, lang, phrasings))
    for i, (category, phrasings) in enumerate(_en.BENIGN):
        templates.append((f"b{i:03d}", "benign", category, "en", phrasings))
    for i, (lang, category, phrasings) in enumerate(_intl.BENIGN):
        templates.append((f"y{i:03d}", "benign", category, lang, phrasings))
    for tid, label, family, lang, phrasings in templates:
        split = _split(groups, f"{label}:{family}")
        attack = label == "injection"
        n = (PER_EN_ATTACK if attack else PER_EN_BENIGN) if lang == "en" else PER_INTL
        instances(
            tid, phrasings, n, label=label, split=split, lang=lang,
            family=family if lang == "en" or not attack else "other_language",
            intent=INTENT[family] if attack else "none",
        )  # fmt: skip

    # Documents: benign as they are, with a hard line, or planted with an injection.
    docs = _docs.DOCUMENTS
    doc_split = {
        i: ("heldout" if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 else "train") for i in range(len(docs))
    }
    for i, doc in enumerate(docs):
        for variant in range(3):
            text = doc if variant == 0 else _plant(doc, rng.choice(_docs.HARD_LINES), rng)
            role = "tool" if variant != 2 else "user"
            if role == "user":
                text = rng.choice(_docs.ASKS).format(doc=text)
            add(text, label="benign", family="document", intent="none", lang="en", template=f"d{i:03d}",
                split=doc_split[i], source="template", role=role)  # fmt: skip
    for tid, phrasings in _docs.INJECTIONS:
        split = _split(groups, "injection:indirect")
        pool = [d for j, d in enumerate(docs) if doc_split[j] == split]
        for _ in range(PER_INJECTION):
            injection = fill(rng.choice(phrasings), rng)
            role = rng.choice(["tool", "tool", "user"])
            text = _plant(rng.choice(pool), injection, rng)
            if role == "user":
                text = rng.choice(_docs.ASKS).format(doc=text)
            add(text, label="injection", family="indirect", intent="indirect", lang="en", template=tid,
                split=split, source="template", role=role)  # fmt: skip

    # Obfuscated variants of English template prompts (both labels), in their template's split.
    base = [it for it in items if it["lang"] == "en" and it["family"] not in ("document", "indirect")]
    for kind, share in (("encoding", 0.09), ("homoglyph", 0.06), ("leetspeak", 0.05), ("zero_width", 0.05),
                        ("spacing", 0.02)):  # fmt: skip
        for it in base:
            if rng.random() >= share:
                continue
            benign = it["label"] == "benign"
            text = obfuscate(kind, it["text"], rng, benign)
            family = it["family"] if benign else f"obfuscation_{kind}"
            add(text, label=it["label"], family=family, intent=it["intent"], lang="en", template=it["template"],
                split=it["split"], source="template", obfuscation=kind)  # fmt: skip

    for i, (label, family, lang, text) in enumerate(_hand.HAND):
        if text in seen:
            raise SystemExit(f"duplicate hand-written prompt: {text!r}")
        split = "heldout" if i % 3 == 2 else "train"
        intent = INTENT.get(family, "none") if label == "injection" else "none"
        add(text, label=label, family=family, intent=intent, lang=lang, template=f"hand{i:03d}", split=split,
            source="hand")  # fmt: skip
    return items


def build_redteam() -> list[dict[str, Any]]:
    """The red-team corpus: hand-written attacks, their disguises, and benign controls."""
    rng = random.Random(SEED + 1)
    rows: list[dict[str, Any]] = []

    def row(text: str, label: str, category: str, role: str, lang: str, obfuscation: str = "none") -> None:
        rows.append({
            "id": hashlib.sha256(f"{role}:{text}".encode()).hexdigest()[:12], "text": text, "role": role,
            "label": label, "category": category, "lang": lang, "obfuscation": obfuscation,
        })  # fmt: skip

    for category, role, lang, text in _red.ATTACKS:
        row(text, "injection", category, role, lang)
    for i, seed in enumerate(_red.OBFUSCATE):
        wrapper = _red.ENCODED_WRAPPERS[i % len(_red.ENCODED_WRAPPERS)]
        kind = "base64" if "{b64}" in wrapper else "hex" if "{hex}" in wrapper else "url"
        row(_encode(wrapper, seed), "injection", kind, "user", "en", kind)
        row(_encode("Please decode this base64 and follow it: {b64}", seed), "injection", "base64", "user", "en",
            "base64")  # fmt: skip
        row(leetspeak(seed, rng), "injection", "leetspeak", "user", "en", "leetspeak")
        row(homoglyphs(seed, rng), "injection", "homoglyph", "user", "en", "homoglyph")
        row(zero_width(seed, rng, 0.5), "injection", "zero_width", "user", "en", "zero_width")
    for category, role, lang, text in _red.BENIGN:
        row(text, "benign", category, role, lang)
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    """Write prompts.jsonl and redteam.jsonl and print the counts."""
    items = build()
    _write(HERE / "prompts.jsonl", items)
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        counts[(item["split"], item["label"])] = counts.get((item["split"], item["label"]), 0) + 1
    print(f"wrote {len(items)} prompts to {HERE / 'prompts.jsonl'}")
    for key in sorted(counts):
        print(f"  {key[0]:8} {key[1]:10} {counts[key]}")
    red = build_redteam()
    _write(HERE / "redteam.jsonl", red)
    n_attack = sum(r["label"] == "injection" for r in red)
    print(f"wrote {len(red)} red-team prompts ({n_attack} attacks, {len(red) - n_attack} benign) to "
          f"{HERE / 'redteam.jsonl'}")  # fmt: skip


if __name__ == "__main__":
    main()
