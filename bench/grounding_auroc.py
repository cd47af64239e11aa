"""How well the grounding score separates supported from unsupported answers (AUROC).

    .venv/bin/python bench/grounding_auroc.py [--items data/grounding/items.jsonl]

Scores every (question, retrieved context, answer) item of ``data/grounding/items.jsonl`` (built
from the Context layer's pydoc corpus: see data/grounding/README.md) with ``GroundingScorer``:
lexical overlap alone, MiniLM embedding similarity alone, and the default mix. Prints the AUROC
overall and per kind of unsupported answer, and, for thresholds, the share of unsupported
answers caught and of supported answers wrongly flagged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np

from keel.context.embed import Embedder, Matrix
from keel.context.local_embed import LocalEmbedder
from keel.validate.grounding import GroundingScorer

ITEMS = Path(__file__).resolve().parent.parent / "data" / "grounding" / "items.jsonl"


class Remembering(Embedder):
    """Embeds each distinct text once: the items share their contexts, the scorers share everything."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.seen: dict[str, np.ndarray] = {}

    async def embed(self, texts: list[str]) -> Matrix:
        """Vectors for ``texts``, computing only the new ones."""
        new = list(dict.fromkeys(t for t in texts if t not in self.seen))
        if new:
            for t, v in zip(new, await self.inner.embed(new), strict=True):
                self.seen[t] = v
        return np.stack([self.seen[t] for t in texts])


def auroc(positive: list[float], negative: list[float]) -> float:
    """P(score of a supported answer > score of an unsupported one), ties counting half."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


async def main(items: list[dict[str, Any]]) -> None:
    local = LocalEmbedder(None)
    await local.start()
    embedder = Remembering(local)
    scorers = {
        "lexical only": GroundingScorer(None),
        "embedding only": GroundingScorer(embedder, weight=1.0),
        "mix (weight 0.5, default)": GroundingScorer(embedder, weight=0.5),
    }
    results: dict[str, list[float]] = {}
    for name, scorer in scorers.items():
        results[name] = [await scorer.score(i["answer"], [c["text"] for c in i["context"]]) for i in items]
    await local.aclose()
    kinds = sorted({i["kind"] for i in items if not i["supported"]})
    print(
        f"{len(items)} items: {sum(i['supported'] for i in items)} supported, "
        f"{sum(not i['supported'] for i in items)} unsupported\n"
    )
    print(
        "| scorer | AUROC | "
        + " | ".join(f"vs {k} ({sum(i['kind'] == k for i in items)})" for k in kinds)
        + " |"
    )
    print("|---|---|" + "---|" * len(kinds))
    for name, scores in results.items():
        pos = [s for s, i in zip(scores, items, strict=True) if i["supported"]]
        row = [auroc(pos, [s for s, i in zip(scores, items, strict=True) if not i["supported"]])]
        row += [auroc(pos, [s for s, i in zip(scores, items, strict=True) if i["kind"] == k]) for k in kinds]
        print(f"| {name} | " + " | ".join(f"{x:.3f}" for x in row) + " |")
    scores = results["mix (weight 0.5, default)"]
    print("\n| threshold (mix) | unsupported caught | supported flagged |\n|---|---|---|")
    for t in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        caught = sum(s < t for s, i in zip(scores, items, strict=True) if not i["supported"])
        wrong = sum(s < t for s, i in zip(scores, items, strict=True) if i["supported"])
        n_un = sum(not i["supported"] for i in items)
        n_sup = len(items) - n_un
        print(f"| {t} | {100 * caught / n_un:.0f}% | {100 * wrong / n_sup:.0f}% |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default=str(ITEMS))
    path = Path(parser.parse_args().items)
    asyncio.run(main([json.loads(line) for line in path.read_text().splitlines() if line]))
