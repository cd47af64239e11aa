"""Structured output from the embedded Gemma 3 270M with grammar-constrained decoding.

    .venv/bin/python bench/structured_local.py [--limit 200] [--max-tokens 512]

Runs the 200-prompt extraction set (``data/extraction/``: contacts, orders, events, reviews, each
with a schema of nested objects, enums, arrays and numeric bounds) through a ``Pipeline`` whose
features declare those schemas on the local model. The llama.cpp grammar built from each schema
is the first rung of the ladder; every answer is checked again, independently, with jsonschema.
Prints a Markdown table per task: schema-valid answers, which rung produced them, and how many
fields hold the expected value (a quality figure for the 270M base model, not a validity one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jsonschema

from keel import Call, Pipeline
from keel.config import load_config
from keel.errors import KeelError

DATA = Path(__file__).resolve().parent.parent / "data" / "extraction"
SYSTEM = "Extract the facts stated in the user's text as JSON. Copy names and numbers exactly."


def config(schemas: dict[str, Any], db: Path, max_tokens: int) -> str:
    """keel.yaml: the local model and one feature per extraction task."""
    features = "".join(
        f"  - name: {task}\n    model: local\n    deadline: 600\n    schema: {json.dumps(schema)}\n"
        # The injection classifier took "Please add X ... to the list; their address is ..." for an
        # attack (a false positive): this measures the Validation layer, so the Input layer's guard is off.
        "    input: {injection: {enabled: false}}\n"
        for task, schema in schemas.items()
    )
    return (
        f"models:\n  - name: local\n    provider: llamacpp\n    max_tokens: {max_tokens}\n"
        f"features:\n{features}storage: {{path: {db}}}\nledger: {{enabled: false}}\n"
    )


def matches(expected: Any, got: Any) -> tuple[int, int]:
    """(fields equal to the expected value, fields expected), comparing leaves of nested values."""
    if isinstance(expected, dict):
        pairs = [matches(v, got.get(k) if isinstance(got, dict) else None) for k, v in expected.items()]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    if isinstance(expected, list):
        got_list = got if isinstance(got, list) else []
        pairs = [matches(v, got_list[i] if i < len(got_list) else None) for i, v in enumerate(expected)]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    same = expected == got or (
        isinstance(expected, str) and isinstance(got, str) and expected.lower() == got.strip().lower()
    )
    return int(same), 1


async def main(args: argparse.Namespace) -> None:
    schemas = json.loads((DATA / "schemas.json").read_text())
    items = [json.loads(line) for line in (DATA / "prompts.jsonl").read_text().splitlines() if line]
    # Interleaved by task, so that any prefix of the run (--limit, or a run stopped early) is balanced.
    items.sort(key=lambda item: (item["id"].rsplit("-", 1)[1], item["task"]))
    items = items[: args.limit] if args.limit < len(items) else items
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keel.yaml"
        path.write_text(config(schemas, Path(tmp) / "keel.db", args.max_tokens))
        async with Pipeline(load_config(path), ledger=False) as pipeline:
            for item in items:
                task, s = item["task"], stats[item["task"]]
                messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": item["text"]}]
                call = Call(feature=task, messages=messages)
                t = time.perf_counter()
                try:
                    result = await pipeline.run(call)
                except KeelError as exc:
                    s["errors"] += 1
                    print(f"{item['id']}: {exc.code}: {exc}", flush=True)
                    continue
                finally:
                    seconds.append(time.perf_counter() - t)
                s["calls"] += 1
                try:
                    value = json.loads(result.text)
                    jsonschema.validate(value, schemas[task])
                    s["valid"] += 1
                except (ValueError, jsonschema.ValidationError):
                    s["invalid"] += 1
                    value = None
                rungs = [
                    name.rsplit(".", 1)[1]
                    for name in call.counters
                    if name.startswith("validation.schema.") and name != "validation.schema.reasks"
                ]
                for rung in rungs:
                    s["rung:" + rung] += 1
                right, total = matches(item["expected"], value)
                s["fields_right"] += right
                s["fields"] += total
                ok = "valid" if value is not None else "INVALID"
                line = f"{item['id']}: {ok} ({', '.join(rungs)}), {right}/{total} fields, {seconds[-1]:.1f} s"
                print(line, flush=True)
    total: Counter[str] = Counter()
    for s in stats.values():
        total.update(s)
    print(
        f"{len(items)} prompts, max_tokens {args.max_tokens}, {sum(seconds):.0f} s "
        f"({sum(seconds) / len(seconds):.2f} s per call); "
        f"{platform.python_version()} on {platform.machine()}\n"
    )
    print(
        "| task | prompts | schema-valid | constrained | repaired | re-asked | errors | fields as expected |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, s in [*sorted(stats.items()), ("all", total)]:
        n = s["calls"] + s["errors"]
        print(
            f"| {name} | {n} | {100 * s['valid'] / n:.1f}% ({s['valid']}) | {s['rung:constrained']} | "
            f"{s['rung:repaired']} | {s['rung:reasked']} | {s['errors']} | "
            f"{100 * s['fields_right'] / max(s['fields'], 1):.1f}% |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    # Above the longest answer the schemas' bounds allow, so no answer is cut short.
    parser.add_argument("--max-tokens", type=int, default=512)
    asyncio.run(main(parser.parse_args()))
