"""Assemble the labelled prompt set for keel's complexity router: ``python data/complexity/build.py``.

Writes ``prompts.jsonl`` beside this file, deterministically (a fixed seed): prompts generated
from templates (``templates.py``) plus hand-written items (``hand.py``). Each template belongs
wholly to one split, so the held-out split measures prompts of kinds training never saw.
See README.md for what the labels mean and how far to trust them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _sibling(name: str) -> ModuleType:
    """A module beside this file, loaded without touching sys.path."""
    spec = importlib.util.spec_from_file_location(f"complexity_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HAND: list[tuple[str, str, str]] = _sibling("hand").HAND
_templates = _sibling("templates")
SLOTS: dict[str, list[str]] = _templates.SLOTS
TEMPLATES: list[tuple[str, str, list[str]]] = _templates.TEMPLATES

SEED = 20250611
PER_TEMPLATE = 24  # instances drawn per template (fewer when the slots cannot make that many)
HELDOUT_EVERY = 4  # every 4th template of each (label, category) group is held out

# Surface variation shared by both labels, so that politeness or casing says nothing of difficulty.
PREFIXES = [
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "Hey, ",
    "Hi! ",
    "Quick question: ",
    "Please help: ",
    "Could you help? ",
    "I need help. ",
    "Question: ",
    "hello, ",
    "Sorry to bother you, ",
    "Hi there. ",
]
SUFFIXES = [
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    " Thanks!",
    " Thank you.",
    " Please.",
    " thx",
    " Be concise.",
    " Keep it short.",
    " Answer in English.",
    " :)",
]


def _fill(template: str, rng: random.Random) -> str:
    out = template
    for _ in range(8):  # slots may contain slots
        if "{" not in out:
            break
        for name, values in SLOTS.items():
            key = "{" + name + "}"
            while key in out:
                out = out.replace(key, rng.choice(values), 1)
    return out


def _vary(text: str, rng: random.Random) -> str:
    prefix = rng.choice(PREFIXES)
    if prefix and text[:1].isupper() and not text[:2].isupper():
        text = text[0].lower() + text[1:]
    text = prefix + text + rng.choice(SUFFIXES)
    r = rng.random()
    if r < 0.12:
        text = text.lower()
    elif r < 0.20 and text.endswith((".", "?")):
        text = text[:-1]
    return text


def build() -> list[dict[str, str]]:
    """Every labelled prompt, with its split."""
    rng = random.Random(SEED)
    items: list[dict[str, str]] = []
    seen: set[str] = set()
    group_count: dict[tuple[str, str], int] = {}
    for tid, (label, category, templates) in enumerate(TEMPLATES):
        n = group_count.get((label, category), 0)
        group_count[(label, category)] = n + 1
        split = "heldout" if n % HELDOUT_EVERY == HELDOUT_EVERY - 1 else "train"
        made = 0
        for _ in range(PER_TEMPLATE * 6):
            if made >= PER_TEMPLATE:
                break
            text = _vary(_fill(rng.choice(templates), rng), rng)
            if text in seen:
                continue
            seen.add(text)
            items.append(_item(text, label, category, f"t{tid:03d}", split, "template"))
            made += 1
    for i, (label, category, text) in enumerate(HAND):
        if text in seen:
            raise SystemExit(f"duplicate hand-written prompt: {text!r}")
        seen.add(text)
        split = "heldout" if i % 3 == 2 else "train"
        items.append(_item(text, label, category, "hand", split, "hand"))
    return items


def _item(text: str, label: str, category: str, template: str, split: str, source: str) -> dict[str, str]:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return {
        "id": digest,
        "text": text,
        "label": label,
        "category": category,
        "template": template,
        "split": split,
        "source": source,
    }


def main() -> None:
    """Write prompts.jsonl and print the counts."""
    items = build()
    path = HERE / "prompts.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        key = (item["split"], item["label"])
        counts[key] = counts.get(key, 0) + 1
    print(f"wrote {len(items)} prompts to {path}")
    for key in sorted(counts):
        print(f"  {key[0]:8} {key[1]:6} {counts[key]}")


if __name__ == "__main__":
    main()
