"""Run a suite: each case through the feature's real pipeline, then its assertions; one run per model.

The feature under test is the one in keel.yaml with at most two things replaced: the prompt
(``--prompt support@7``) and the model (``--model``). Outputs are cached by their input (prompt
version, model, messages, variables, parameters), so a second run of an unchanged suite makes no
model calls and costs nothing; judge verdicts are cached the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter, time
from typing import Any

from keel.call import Call
from keel.context.build import build_embedder
from keel.context.embed import Embedder
from keel.errors import ConfigError, KeelError
from keel.evals.assertions import Observed, Services, check, combine, parse_judgement
from keel.evals.store import CaseResult, EvalStore, Run
from keel.evals.suite import Case, Suite
from keel.pipeline import Pipeline
from keel.settings import FeatureConfig, Settings

JUDGE_FEATURE = "keel-eval-judge"
JUDGE_SYSTEM = (
    "You grade an AI assistant's answer against a rubric. Reply with one JSON object only: "
    '{"pass": true or false, "score": a number from 0 to 1, "reason": "one short sentence"}.'
)
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Target:
    """What one run tests: the suite's feature with its prompt and model possibly replaced."""

    feature: str
    prompt: str | None
    model: str


def targets(suite: Suite, settings: Settings, *, prompt: str | None, models: list[str]) -> list[Target]:
    """One target per model under test (command line, else the suite, else the feature's model)."""
    try:
        fc = settings.feature(suite.feature)
    except KeyError:
        known = ", ".join(f.name for f in settings.features)
        raise ConfigError(
            f"{suite.source}: feature {suite.feature!r} is not in {settings.source} ({known})"
        ) from None
    chosen = prompt or suite.prompt
    if fc.prompt_split and chosen is None:
        raise ConfigError(
            f"feature {fc.name!r} splits traffic between prompt labels; name the version under test "
            f"(--prompt {fc.prompt}@LABEL, or 'prompt:' in the suite)"
        )
    names = models or suite.models or [fc.model]
    known_models = {m.name for m in settings.models}
    for m in names:
        if m not in known_models:
            raise ConfigError(f"model {m!r} is not in {settings.source} ({', '.join(sorted(known_models))})")
    return [Target(fc.name, chosen or fc.prompt, m) for m in names]


def variant(settings: Settings, target: Target, judge: str | None) -> Settings:
    """``settings`` reduced to the feature under test (and the judge), with its replacements made."""
    fc = settings.feature(target.feature)
    update: dict[str, Any] = {"model": target.model}
    if target.prompt != fc.prompt:
        update |= {"prompt": target.prompt, "prompt_split": None}
    if target.model != fc.model:
        update["routing"] = None  # routing would pick other models than the one under test
    features = [fc.model_copy(update=update)]
    if judge is not None:
        features.append(FeatureConfig(name=JUDGE_FEATURE, model=judge))
    server = settings.server.model_copy(update={"default_feature": None})
    return settings.model_copy(update={"features": features, "server": server})


def cache_key(target: Target, version: str | None, settings: Settings, case: Case, suite: Suite) -> str:
    """What decides a case's output: prompt version, model (and its deployments), input, parameters."""
    model = settings.model(target.model).model_dump(mode="json", exclude={"price"})
    blob = {
        "feature": target.feature,
        "prompt": version,
        "model": model,
        "messages": case.chat(),
        "vars": {**suite.defaults.vars, **case.vars},
        "params": suite.params,
        "documents": case.documents,
    }
    return "out:" + hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


class Runner:
    """Runs a suite's cases against one target on a pipeline built for it."""

    def __init__(
        self,
        suite: Suite,
        settings: Settings,
        store: EvalStore,
        *,
        concurrency: int = 4,
        use_cache: bool = True,
        embedder: Embedder | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        self.suite = suite
        self.settings = settings
        self.store = store
        self.concurrency = concurrency
        self.use_cache = use_cache
        self._embedder = embedder
        kinds = {a.kind for c in suite.cases for a in suite.checks(c)}
        self._needs_embedder = bool(kinds & {"similar", "grounded"})
        self._needs_judge = "llm-rubric" in kinds

    async def run(self, target: Target, progress: Progress | None = None) -> Run:
        """Every case against ``target``; the run is stored and returned."""
        judge = self.suite.judge or target.model if self._needs_judge else None
        if judge is not None and judge not in {m.name for m in self.settings.models}:
            raise ConfigError(f"{self.suite.source}: judge model {judge!r} is not in {self.settings.source}")
        settings = variant(self.settings, target, judge)
        run_id = uuid.uuid4().hex[:8]
        embedder = self._embedder
        own_embedder = embedder is None and self._needs_embedder
        if own_embedder:
            embedder = build_embedder(self.settings)
            await embedder.start()
        try:
            async with Pipeline(settings) as pipeline:
                feature = pipeline.feature(target.feature)
                version = feature.prompt.version if feature.prompt is not None else None
                services = Services(
                    base_dir=Path(self.suite.source).parent,
                    embedder=embedder,
                    judge=self._judge(pipeline, judge, run_id) if judge else None,
                )
                gate = asyncio.Semaphore(self.concurrency)
                done = 0

                async def one(case: Case) -> CaseResult:
                    nonlocal done
                    async with gate:
                        key = cache_key(target, version, settings, case, self.suite)
                        result = await self._case(pipeline, target, case, key, services, run_id)
                    done += 1
                    if progress is not None:
                        progress(done, len(self.suite.cases))
                    return result

                results = await asyncio.gather(*(one(c) for c in self.suite.cases))
                prompt = f"{feature.prompt.name}@{feature.prompt.served_version}" if feature.prompt else None
        finally:
            if own_embedder and embedder is not None:
                await embedder.aclose()
        run = Run(run_id, self.suite.name, target.feature, prompt, target.model, time(), list(results))
        self.store.save(run)
        return run

    async def _case(
        self, pipeline: Pipeline, target: Target, case: Case, key: str, services: Services, run_id: str
    ) -> CaseResult:
        hit = self.store.cached(key) if self.use_cache else None
        if hit is not None:
            seen = Observed(
                case, hit["output"], hit["latency_ms"], hit["cost_usd"], sources=hit.get("sources", [])
            )
        else:
            seen = await self._call(pipeline, target, case, run_id)
            if seen.error is None:
                self.store.remember(
                    key,
                    {
                        "output": seen.output,
                        "latency_ms": seen.latency_ms,
                        "cost_usd": seen.cost_usd,
                        "sources": seen.sources,
                    },
                )
        outcomes = [await check(spec, seen, services) for spec in self.suite.checks(case)]
        if seen.error is not None:
            passed, score = False, 0.0  # a refused or failed call fails its case, whatever it asserts
        else:
            passed, score = combine(outcomes)
        return CaseResult(
            case_id=case.id,
            passed=passed,
            score=round(score, 4),
            output=seen.output,
            latency_ms=round(seen.latency_ms, 3),
            cost_usd=seen.cost_usd,
            cached=hit is not None,
            error=seen.error,
            outcomes=[
                {"type": o.type, "pass": o.passed, "score": o.score, "reason": o.reason, "weight": o.weight}
                for o in outcomes
            ],
        )

    async def _call(self, pipeline: Pipeline, target: Target, case: Case, run_id: str) -> Observed:
        call = Call(
            feature=target.feature,
            messages=case.chat(),
            params=dict(self.suite.params),
            variables={**self.suite.defaults.vars, **case.vars},
            metadata={"eval_run": run_id, "eval_case": case.id},
            chunks=[dict(d) for d in case.documents],
        )
        t0 = perf_counter()
        try:
            result = await pipeline.run(call)
        except KeelError as exc:
            return Observed(
                case, "", (perf_counter() - t0) * 1000, call.usage.cost_usd, error=f"{exc.code}: {exc}"
            )
        return Observed(
            case,
            result.text,
            (perf_counter() - t0) * 1000,
            result.usage.cost_usd,
            sources=[s.chunk.text for s in result.sources],
        )

    def _judge(self, pipeline: Pipeline, model: str, run_id: str) -> Any:
        store, use_cache = self.store, self.use_cache

        async def judge(rubric: str, question: str, answer: str) -> tuple[bool, float, str]:
            blob = json.dumps(
                [model, pipeline.settings.model(model).model_dump(mode="json"), rubric, question, answer]
            )
            key = "judge:" + hashlib.sha256(blob.encode()).hexdigest()
            hit = store.cached(key) if use_cache else None
            if hit is not None:
                return hit["pass"], hit["score"], hit["reason"]
            user = f"Rubric:\n{rubric}\n\nQuestion:\n{question}\n\nAnswer to grade:\n{answer}"
            call = Call(
                feature=JUDGE_FEATURE,
                messages=[{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}],
                params={"temperature": 0},
                metadata={"eval_run": run_id, "eval_judge": "1"},
            )
            try:
                result = await pipeline.run(call)
            except KeelError as exc:
                return False, 0.0, f"judge failed: {exc}"
            ok, score, reason = parse_judgement(result.text)
            store.remember(key, {"pass": ok, "score": score, "reason": reason})
            return ok, score, reason

        return judge
