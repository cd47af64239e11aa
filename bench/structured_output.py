"""The structured-output ladder against an upstream that breaks 30% of its JSON answers.

    .venv/bin/python bench/structured_output.py [--calls 1000] [--malformed-rate 0.3] [--concurrency 8]

One ``FakeUpstream`` (the server behind ``keel fake-upstream --malformed-rate 0.3``) answers every
``response_format: json_schema`` request with an instance of the schema, and breaks the share
``--malformed-rate`` of them at random: a code fence, a trailing comma, a truncated body, a value
of the wrong type, or a missing required property. A ``Pipeline`` with a feature declaring a
nested extraction schema (objects, enums, arrays, numeric bounds) sends ``--calls`` distinct
requests through keel's OpenAI provider for each ladder configuration, from strict parsing alone
to the default ladder with a fallback answer. Every answer the caller receives is checked again,
independently, with jsonschema. Prints a Markdown table: valid answers, refusals, upstream calls
per answer, and which rung produced each answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema

from keel import Call, Pipeline
from keel.config import load_config
from keel.errors import OutputRejected
from keel.testing import FakeUpstream

SCHEMA = {
    "type": "object",
    "properties": {
        "invoice_no": {"type": "string", "minLength": 3},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "total": {"type": "number", "minimum": 0},
        "vendor": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "country": {"type": "string", "maxLength": 2}},
            "required": ["name", "country"],
        },
        "lines": {
            "type": "array",
            "minItems": 1,
            "maxItems": 5,
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string"},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "unit_price": {"type": "number", "minimum": 0},
                },
                "required": ["description", "qty", "unit_price"],
            },
        },
    },
    "required": ["invoice_no", "currency", "total", "vendor", "lines"],
}
FALLBACK = {
    "invoice_no": "n/a",
    "currency": "EUR",
    "total": 0,
    "vendor": {"name": "unknown", "country": "--"},
    "lines": [{"description": "unknown", "qty": 1, "unit_price": 0}],
}
LADDERS = {
    "strict parse only (no ladder)": {"structured": {"repair": False, "reasks": 0}},
    "repair": {"structured": {"reasks": 0}},
    "repair + 1 re-ask": {"structured": {"reasks": 1}},
    "repair + 2 re-asks": {"structured": {"reasks": 2}},
    "repair + 3 re-asks (default)": {},
    "default + fallback": {"fallback": FALLBACK},
}


def config(url: str, db: Path) -> str:
    """keel.yaml: one model on the fake upstream, one feature per ladder configuration."""
    features = "".join(
        f"  - name: f{i}\n    model: upstream\n    schema: {json.dumps(SCHEMA)}\n"
        f"    validation: {json.dumps(v)}\n    coalesce: false\n"
        for i, v in enumerate(LADDERS.values())
    )
    return (
        f"models:\n  - name: upstream\n    provider: openai\n    base_url: {url}\n"
        "    retry: {attempts: 1}\n    breaker: {failures: 100000}\n"
        f"features:\n{features}storage: {{path: {db}}}\nledger: {{enabled: false}}\n"
    )


async def run_ladder(
    pipeline: Pipeline, feature: str, calls: int, concurrency: int, tag: str
) -> dict[str, Any]:
    """Send ``calls`` distinct invoices through ``feature``; count valid answers and rungs."""
    rungs: Counter[str] = Counter()
    outcome: Counter[str] = Counter()
    upstream_calls = 0
    queue = iter(range(calls))

    async def worker() -> None:
        nonlocal upstream_calls
        for i in queue:
            text = f"Extract the invoice {tag}-{i}: ACME GmbH (DE), 3 x widget at 4.20 EUR, total 12.60."
            call = Call(feature=feature, messages=[{"role": "user", "content": text}])
            try:
                result = await pipeline.run(call)
            except OutputRejected:
                outcome["refused"] += 1
            else:
                try:
                    jsonschema.validate(json.loads(result.text), SCHEMA)
                    outcome["valid"] += 1
                except (ValueError, jsonschema.ValidationError):
                    outcome["invalid but sent"] += 1
            upstream_calls += call.attempts
            for name, n in call.counters.items():
                if name.startswith("validation.schema.") and name != "validation.schema.reasks":
                    rungs[name.rsplit(".", 1)[1]] += n

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"outcome": outcome, "rungs": rungs, "upstream_calls": upstream_calls}


async def main(args: argparse.Namespace) -> None:
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeUpstream(malformed_rate=args.malformed_rate, seed=args.seed) as fake,
    ):
        path = Path(tmp) / "keel.yaml"
        path.write_text(config(fake.base_url, Path(tmp) / "keel.db"))
        settings = load_config(path)
        async with Pipeline(settings, ledger=False) as pipeline:
            for i, name in enumerate(LADDERS):
                before = fake.stats()["outcomes"]
                t = time.perf_counter()
                r = await run_ladder(pipeline, f"f{i}", args.calls, args.concurrency, f"r{i}")
                seconds = time.perf_counter() - t
                after = fake.stats()["outcomes"]
                broken = after["malformed"] - before["malformed"]
                rows.append((name, r, broken, seconds))
    print(
        f"{args.calls} calls per row, malformed rate {args.malformed_rate}, seed {args.seed}, "
        f"concurrency {args.concurrency}; {platform.python_version()} on {platform.machine()}\n"
    )
    print(
        "| ladder | valid | refused | upstream answers broken | upstream calls per call | "
        "constrained | repaired | re-asked | fallback |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r, broken, _ in rows:
        o, g = r["outcome"], r["rungs"]
        valid = 100 * o["valid"] / args.calls
        print(
            f"| {name} | {valid:.1f}% ({o['valid']}) | {o['refused']} | {broken} | "
            f"{r['upstream_calls'] / args.calls:.3f} | {g['constrained']} | {g['repaired']} | "
            f"{g['reasked']} | {g['fallback']} |"
        )
        if o["invalid but sent"]:
            print(f"\n**{o['invalid but sent']} invalid answers were sent in '{name}'**\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--malformed-rate", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
