"""``keel ask``: run the library pipeline once and print the answer with a cost/latency line."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import orjson
import typer

from keel.call import Result
from keel.cli.common import ConfigOption, settings_from
from keel.pipeline import Pipeline


def register(app: typer.Typer) -> None:
    """Add the ``ask`` command."""
    app.command()(ask)


def ask(
    text: Annotated[str, typer.Argument(help="The user message ('-' reads it from stdin).")],
    feature: Annotated[
        str | None, typer.Option("--feature", "-f", help="Feature to use (default: the first).")
    ] = None,
    config: ConfigOption = None,
    max_tokens: Annotated[int | None, typer.Option(help="Cap on answer tokens.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")] = False,
) -> None:
    """Ask one question through the full pipeline (no server needed)."""
    if text == "-":
        text = sys.stdin.read()
    settings = settings_from(config)
    params: dict[str, Any] = {}
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if temperature is not None:
        params["temperature"] = temperature
    name = feature or settings.server.default_feature or settings.features[0].name

    async def _run() -> Result:
        async with Pipeline(settings) as pipeline:
            return await pipeline.ask(text, feature=name, **params)

    result = asyncio.run(_run())
    if as_json:
        print(orjson.dumps(_as_dict(result), option=orjson.OPT_INDENT_2).decode())
    else:
        tool_calls = result.message.get("tool_calls")
        print(result.text if result.text or not tool_calls else orjson.dumps(tool_calls).decode())
    print(summary(result), file=sys.stderr)


def summary(result: Result) -> str:
    """One line: feature, model, prompt version, tokens, cost and latency per layer."""
    u = result.usage
    t = result.timings
    prompt = f" prompt={result.prompt_name}@{result.prompt_version}" if result.prompt_name else ""
    est = "~" if u.estimated else ""
    layers = ", ".join(f"{k} {t[k]:.1f}" for k in ("input", "context", "llm", "validation") if k in t)
    return (
        f"feature={result.feature} model={result.model}{prompt} "
        f"tokens={est}{u.input_tokens}→{u.output_tokens} "
        f"cost=${u.cost_usd:.6f} latency={t.get('total', 0.0):.0f} ms ({layers})"
    )


def _as_dict(r: Result) -> dict[str, Any]:
    return {
        "call_id": r.call_id,
        "feature": r.feature,
        "model": r.model,
        "prompt": {"name": r.prompt_name, "version": r.prompt_version},
        "text": r.text,
        "output": r.output,
        "message": r.message,
        "usage": {
            "input_tokens": r.usage.input_tokens,
            "output_tokens": r.usage.output_tokens,
            "cost_usd": r.usage.cost_usd,
            "estimated": r.usage.estimated,
        },
        "verdicts": [v.to_dict() for v in r.verdicts],
        "timings_ms": r.timings,
    }
