"""Precision and hit rate of the semantic cache on the labelled paraphrase set, per threshold.

    .venv/bin/python bench/semantic_cache.py [--pairs data/paraphrases/pairs.jsonl]
                                             [--thresholds 0.70 0.75 ...] [--min-precision 0.99]

Each pair (a, b) stands for a cache that answered ``a`` and is then asked ``b``: the answer is
served when the cosine similarity of the two questions (the real all-MiniLM-L6-v2 embedder)
reaches the threshold and, for the guarded rows (keel's default), the near-miss guard finds
no conflict. A hit on a pair of different intents is a wrong answer.

- precision: of the answers served, the share that were right (same intent);
- hit rate: of the same-intent pairs, the share served from the cache;
- wrong on near-misses / on different intents: of those pairs, the share served (wrongly).

The pairs come in two splits: ``dev``, which the guard's rules were written against, and
``heldout``, written after the guard was frozen and never used to change it. The recommended
threshold is the lowest (so the most hits) whose guarded precision on ``dev`` is at least
``--min-precision``; ``heldout`` says how well that carries over. Finally every pair is run
through ``SemanticCacheProvider`` itself (memory store, a scripted model) at that threshold, to
check that the cache serves what the tables say.
Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keel.context.local_embed import LocalEmbedder
from keel.llm.cache import SemanticCacheProvider, conflict
from keel.llm.providers.base import ModelRequest
from keel.settings import SemanticCacheConfig
from keel.stores.memory import MemoryState
from keel.testing.scripted import ScriptedProvider

ROOT = Path(__file__).resolve().parent.parent
NEAR_MISSES = ("negation", "opposite", "number", "date", "amount", "entity_swap", "product", "plurality")
THRESHOLDS = [0.70, 0.75, 0.80, 0.83, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96]
CONFIGURED = SemanticCacheConfig.model_fields["threshold"].default


@dataclass(frozen=True)
class Pair:
    """One labelled pair of questions."""

    a: str
    b: str
    same: bool
    category: str
    split: str


@dataclass(frozen=True)
class Row:
    """What a threshold does to the set."""

    threshold: float
    guarded: bool
    served: int
    right: int
    same_total: int
    near_wrong: int
    near_total: int
    diff_wrong: int
    diff_total: int

    @property
    def precision(self) -> float:
        """Right answers among those served (1.0 when none is served)."""
        return self.right / self.served if self.served else 1.0

    @property
    def hit_rate(self) -> float:
        """Same-intent pairs served."""
        return self.right / self.same_total


def load(path: Path) -> list[Pair]:
    """The labelled pairs."""
    out = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        out.append(Pair(d["a"], d["b"], bool(d["same_intent"]), d["category"], d.get("split", "dev")))
    return out


def row(pairs: list[Pair], scores: np.ndarray, passes: np.ndarray, t: float, guarded: bool) -> Row:
    """Count what is served at threshold ``t``."""
    served = scores >= t
    if guarded:
        served &= passes
    same = np.array([p.same for p in pairs])
    near = np.array([p.category in NEAR_MISSES for p in pairs])
    diff = np.array([p.category == "different_intent" for p in pairs])
    return Row(
        t,
        guarded,
        int(served.sum()),
        int((served & same).sum()),
        int(same.sum()),
        int((served & near).sum()),
        int(near.sum()),
        int((served & diff).sum()),
        int(diff.sum()),
    )


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| threshold | guard | served | precision | hit rate (same intent) | wrong on near-misses "
        "| wrong on different intents |",
        "|---:|:---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.threshold:.2f} | {'on' if r.guarded else 'off'} | {r.served} | {pct(r.precision)} "
            f"| {pct(r.hit_rate)} ({r.right}/{r.same_total}) "
            f"| {pct(r.near_wrong / r.near_total)} ({r.near_wrong}/{r.near_total}) "
            f"| {pct(r.diff_wrong / r.diff_total)} ({r.diff_wrong}/{r.diff_total}) |"
        )
    return "\n".join(lines)


def by_category(pairs: list[Pair], scores: np.ndarray, passes: np.ndarray, t: float) -> str:
    """Per category: the similarity range, and what is served at ``t`` without and with the guard."""
    lines = [
        "| category | pairs | similarity min / median / max | served, no guard | served, guard |",
        "|---|---:|---|---:|---:|",
    ]
    for cat in dict.fromkeys(p.category for p in pairs):
        idx = np.array([p.category == cat for p in pairs])
        s = scores[idx]
        plain = int((s >= t).sum())
        guarded = int(((s >= t) & passes[idx]).sum())
        spread = f"{s.min():.2f} / {np.median(s):.2f} / {s.max():.2f}"
        lines.append(f"| {cat} | {idx.sum()} | {spread} | {plain} | {guarded} |")
    return "\n".join(lines)


async def through_the_cache(pairs: list[Pair], embedder: LocalEmbedder, t: float) -> tuple[int, int]:
    """Ask a then b through SemanticCacheProvider for every pair: (hits, wrong hits)."""
    state = MemoryState()
    model = ScriptedProvider("model", lambda r: f"answer to {r.messages[-1]['content']}")
    cache = SemanticCacheProvider(
        model, state.cache, state.vectors, embedder, SemanticCacheConfig(threshold=t)
    )

    def ask(i: int, text: str) -> ModelRequest:
        # One feature per pair: each pair is its own cache, as in the table.
        return ModelRequest(
            messages=[{"role": "user", "content": text}], params={"temperature": 0}, feature=f"pair-{i}"
        )

    await asyncio.gather(*(cache.complete(ask(i, p.a)) for i, p in enumerate(pairs)))
    second = [ask(i, p.b) for i, p in enumerate(pairs)]
    await asyncio.gather(*(cache.complete(r) for r in second))
    hits = [r.trace.cache == "semantic" for r in second]
    wrong = sum(1 for h, p in zip(hits, pairs, strict=True) if h and not p.same)
    return sum(hits), wrong


async def measure(args: argparse.Namespace) -> None:
    """Embed every question, then count what each threshold serves, per split."""
    pairs = load(args.pairs)
    embedder = LocalEmbedder(batch_size=64, batch_wait_ms=5)
    t_load = time.perf_counter()
    await embedder.start()
    t_load = time.perf_counter() - t_load
    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    t0 = time.perf_counter()
    embedded = await asyncio.gather(*(embedder.embed([t]) for t in texts))  # micro-batched
    t_embed = time.perf_counter() - t0
    vec = {t: r[0] for t, r in zip(texts, embedded, strict=True)}
    scores = np.array([float(vec[p.a] @ vec[p.b]) for p in pairs])
    passes = np.array([conflict(p.a, p.b) is None for p in pairs])

    def split_rows(split: str) -> tuple[list[Pair], np.ndarray, np.ndarray, list[Row]]:
        idx = np.array([p.split == split for p in pairs])
        sub = [p for p in pairs if p.split == split]
        rows = [row(sub, scores[idx], passes[idx], t, g) for t in args.thresholds for g in (False, True)]
        return sub, scores[idx], passes[idx], rows

    dev, dev_scores, dev_passes, dev_rows = split_rows("dev")
    held, held_scores, held_passes, held_rows = split_rows("heldout")
    ok = [r for r in dev_rows if r.guarded and r.precision >= args.min_precision and r.served]
    best = min(ok, key=lambda r: r.threshold) if ok else None
    shown = best.threshold if best else CONFIGURED

    print(f"## Semantic cache: precision and hit rate ({len(pairs)} labelled pairs)\n")
    print(f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}. ")
    print(f"{len(texts)} distinct questions embedded in {t_embed:.2f} s in {embedder.batcher.batches} model ")
    print(f"calls (micro-batched from {len(texts)} concurrent calls); model load {t_load:.1f} s.\n")
    for name, sub, rows in (("dev", dev, dev_rows), ("heldout", held, held_rows)):
        counts: dict[str, int] = {}
        for p in sub:
            counts[p.category] = counts.get(p.category, 0) + 1
        print(
            f"### Split `{name}` ({len(sub)} pairs: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + ")\n"
        )
        print(table(rows))
        print()
    print(f"### By category at {shown:.2f}\n")
    print("`dev`:\n")
    print(by_category(dev, dev_scores, dev_passes, shown))
    print("\n`heldout`:\n")
    print(by_category(held, held_scores, held_passes, shown))
    print()
    if best is None:
        print(f"No threshold reaches a guarded precision of {pct(args.min_precision)} on `dev`.")
    else:
        h = row(held, held_scores, held_passes, best.threshold, True)
        print(
            f"Recommended threshold: **{best.threshold:.2f}**, the lowest whose guarded precision on `dev` "
            f"is at least {pct(args.min_precision)}: on `dev` precision {pct(best.precision)}, hit rate "
            f"{pct(best.hit_rate)}; on `heldout` precision {pct(h.precision)}, hit rate {pct(h.hit_rate)}."
        )
        configured = row(held, held_scores, held_passes, CONFIGURED, True)
        print(
            f"At the configured default {CONFIGURED:.2f} (settings.py), `heldout` precision "
            f"{pct(configured.precision)}, hit rate {pct(configured.hit_rate)}."
        )
        hits, wrong = await through_the_cache(pairs, embedder, best.threshold)
        both = [
            row(sub, sc, pa, best.threshold, True)
            for sub, sc, pa in ((dev, dev_scores, dev_passes), (held, held_scores, held_passes))
        ]
        served, right = sum(r.served for r in both), sum(r.right for r in both)
        print(
            f"\nAll {len(pairs)} pairs through `SemanticCacheProvider` at {best.threshold:.2f}: {hits} hits, "
            f"{wrong} wrong (the tables say {served} served, {served - right} wrong)."
        )
    await embedder.aclose()


def main() -> None:
    """Parse arguments and run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=Path, default=ROOT / "data" / "paraphrases" / "pairs.jsonl")
    ap.add_argument("--thresholds", type=float, nargs="+", default=THRESHOLDS)
    ap.add_argument("--min-precision", type=float, default=0.99)
    asyncio.run(measure(ap.parse_args()))


if __name__ == "__main__":
    main()
