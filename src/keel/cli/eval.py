"""``keel eval``: run a suite (cached by input), compare two runs (exit 1 on a regression), list, show."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from keel.cli.common import ConfigOption, settings_from
from keel.cli.progress import progress_bar
from keel.errors import ConfigError
from keel.evals.compare import Comparison, Delta, compare
from keel.evals.report import render_html
from keel.evals.runner import Runner, targets
from keel.evals.store import Run, eval_store_target, open_eval_store, result_dict
from keel.evals.suite import load_suite

app = typer.Typer(help="Evals: run suites against features, prompt versions and models; compare runs.")
_out = Console(width=200, highlight=False, soft_wrap=True)


def register(root: typer.Typer) -> None:
    """Add the ``eval`` command group."""
    root.add_typer(app, name="eval")


@app.command("run")
def run(
    suite_path: Annotated[Path, typer.Argument(metavar="SUITE", help="The suite's YAML file.")],
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Prompt version under test: NAME@LABEL or NAME@VERSION.")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Model under test (repeat for several).")
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", min=1, help="Cases in flight at once.")
    ] = 4,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Call the model even for inputs seen before.")
    ] = False,
    min_pass_rate: Annotated[
        float | None, typer.Option("--min-pass-rate", min=0, max=1, help="Exit 1 below this pass rate.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Run SUITE: every case through the feature's pipeline, then its assertions; results are stored."""
    suite = load_suite(suite_path)
    settings = settings_from(config)
    chosen = targets(suite, settings, prompt=prompt, models=model or [])
    runs: list[Run] = []
    with open_eval_store(eval_store_target(settings)) as store:
        runner = Runner(suite, settings, store, concurrency=concurrency, use_cache=not no_cache)
        for target in chosen:
            with progress_bar(f"{suite.name} · {target.model}") as bar:
                task = bar.add_task("cases", total=len(suite.cases))
                tick = functools.partial(_tick, bar, task)
                runs.append(asyncio.run(runner.run(target, tick)))
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "model": r.model,
                        "prompt": r.prompt,
                        **r.summary(),
                        "results": [result_dict(x) for x in r.results],
                    }
                    for r in runs
                ],
                indent=2,
            )
        )
    else:
        _print_runs(runs)
    if min_pass_rate is not None and any(r.pass_rate < min_pass_rate for r in runs):
        raise typer.Exit(1)


def _tick(bar: Progress, task: TaskID, done: int, _total: int) -> None:
    bar.update(task, completed=done)


def _print_runs(runs: list[Run]) -> None:
    table = Table(
        "run",
        "model",
        "prompt",
        "passed",
        "pass rate",
        "score",
        "cost USD",
        "p95 ms",
        "cached",
        box=None,
        pad_edge=False,
    )
    for r in runs:
        s = r.summary()
        table.add_row(
            r.id,
            r.model,
            r.prompt or "—",
            f"{s['passed']}/{s['cases']}",
            f"{s['pass_rate']:.1%}",
            f"{s['mean_score']:.3f}",
            f"{s['cost_usd']:.6f}",
            f"{s['p95_ms']:.0f}",
            f"{s['cached']}/{s['cases']}",
        )
    _out.print(table)
    for r in runs:
        for res in r.results:
            if not res.passed:
                why = res.error or "; ".join(o["reason"] for o in res.outcomes if not o["pass"])
                _out.print(f"  {r.id} FAIL {res.case_id}: {why[:160]}")


@app.command("compare")
def compare_runs(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="The baseline run (id, latest, latest~1).")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="The candidate run.")],
    max_drop: Annotated[
        float,
        typer.Option("--max-drop", min=0, max=1, help="Largest pass-rate drop tolerated (0.05 = 5 points)."),
    ] = 0.0,
    max_score_drop: Annotated[
        float | None,
        typer.Option("--max-score-drop", min=0, max=1, help="Largest mean-score drop tolerated."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write an HTML report with charts here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Compare two runs case by case; exit 1 when B regressed beyond the thresholds."""
    settings = settings_from(config)
    with open_eval_store(eval_store_target(settings)) as store:
        a, b = store.load(run_a), store.load(run_b)
    cmp = compare(a, b, max_drop=max_drop, max_score_drop=max_score_drop)
    if html is not None:
        try:
            html.write_text(render_html(cmp), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{html}: cannot write the report: {exc}") from None
    if as_json:
        print(json.dumps(_as_dict(cmp), indent=2))
    else:
        _print_comparison(cmp, html)
    if cmp.is_regression:
        raise typer.Exit(1)


def _delta(d: Delta) -> dict[str, float | None]:
    return {k: getattr(d, k) for k in ("a", "b", "change", "low", "high")}


def _as_dict(cmp: Comparison) -> dict[str, object]:
    return {
        "a": cmp.a.id,
        "b": cmp.b.id,
        "regression": cmp.is_regression,
        "pass_rate": _delta(cmp.pass_rate),
        "score": _delta(cmp.score),
        "cost_usd": _delta(cmp.cost_usd),
        "latency_ms": _delta(cmp.latency_ms),
        "cases": [
            {"id": c.case_id, "status": c.status, "score_a": c.a.score, "score_b": c.b.score}
            for c in cmp.cases
        ],
    }


def _print_comparison(cmp: Comparison, html: Path | None) -> None:
    def ci(d: Delta, pct: bool = False) -> str:
        def f(v: float) -> str:
            return f"{v * 100:+.1f} pts" if pct else f"{v:+.4g}"

        interval = f"  [95% CI {f(d.low)} … {f(d.high)}]" if d.low is not None and d.high is not None else ""
        return f"{f(d.change)}{interval}"

    _out.print(
        f"A {cmp.a.id} ({cmp.a.prompt or '—'}, {cmp.a.model})  →  "
        f"B {cmp.b.id} ({cmp.b.prompt or '—'}, {cmp.b.model})"
    )
    table = Table("measure", "A", "B", "B − A", box=None, pad_edge=False)
    table.add_row(
        "pass rate", f"{cmp.pass_rate.a:.1%}", f"{cmp.pass_rate.b:.1%}", ci(cmp.pass_rate, pct=True)
    )
    table.add_row("mean score", f"{cmp.score.a:.3f}", f"{cmp.score.b:.3f}", ci(cmp.score))
    table.add_row("latency ms", f"{cmp.latency_ms.a:.1f}", f"{cmp.latency_ms.b:.1f}", ci(cmp.latency_ms))
    table.add_row("cost/case USD", f"{cmp.cost_usd.a:.6f}", f"{cmp.cost_usd.b:.6f}", ci(cmp.cost_usd))
    _out.print(table)
    for c in cmp.cases:
        if c.status in ("regressed", "fixed", "score changed"):
            why = "; ".join(o["reason"] for o in c.b.outcomes if not o["pass"]) or c.b.error or ""
            _out.print(
                f"  {c.status.upper()} {c.case_id}: score {c.a.score:.3f} → {c.b.score:.3f} {why[:120]}"
            )
    if cmp.only_a or cmp.only_b:
        _out.print(f"  not compared: {len(cmp.only_a)} case(s) only in A, {len(cmp.only_b)} only in B")
    verdict = "REGRESSION" if cmp.is_regression else "no regression"
    _out.print(f"{verdict}: {len(cmp.regressed)} regressed, {len(cmp.fixed)} fixed of {len(cmp.cases)} cases")
    if html is not None:
        _out.print(f"report: {html}")


@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first.")] = 20,
    config: ConfigOption = None,
) -> None:
    """The newest eval runs."""
    settings = settings_from(config)
    with open_eval_store(eval_store_target(settings)) as store:
        rows = store.runs(limit)
    if not rows:
        print("no eval runs yet (keel eval run SUITE)")
        return
    table = Table(
        "run", "suite", "model", "prompt", "passed", "pass rate", "cost USD", box=None, pad_edge=False
    )
    for r in rows:
        table.add_row(
            r["id"],
            r["suite"],
            r["model"],
            r["prompt"] or "—",
            f"{r['passed']}/{r['cases']}",
            f"{r['pass_rate']:.1%}",
            f"{r['cost_usd']:.6f}",
        )
    _out.print(table)


@app.command("show")
def show(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id, latest or latest~N.")],
    config: ConfigOption = None,
) -> None:
    """One run's cases: pass or fail, score, and why."""
    settings = settings_from(config)
    with open_eval_store(eval_store_target(settings)) as store:
        r = store.load(run_ref)
    _print_runs([r])
    table = Table("case", "result", "score", "ms", "output", box=None, pad_edge=False)
    for res in r.results:
        table.add_row(
            res.case_id,
            "pass" if res.passed else "FAIL",
            f"{res.score:.3f}",
            f"{res.latency_ms:.0f}",
            res.output.replace("\n", " ")[:100],
        )
    _out.print(table)
