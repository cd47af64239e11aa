"""The Validation layer's part of building a feature: its output schema, its stages and its ladder.

``keel.features`` calls ``output_schema`` and ``build_validation`` so that which validation stages
a feature's configuration turns on is decided here, next to the stages themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keel.context.embed import Embedder
from keel.errors import ConfigError
from keel.llm.providers import Provider, provider_class
from keel.prompts.template import check_schema
from keel.settings import FeatureConfig, ModelConfig, Settings
from keel.stage import Stage
from keel.validate.grounding import GroundingScorer, GroundingStage
from keel.validate.grounding_judge import GroundingJudge
from keel.validate.instruct import SchemaInstructionStage
from keel.validate.ladder import Ladder
from keel.validate.policy import policy_stages
from keel.validate.rules import (
    IntentMatcher,
    IntentStage,
    PostprocessStage,
    check_answers,
    intent_functions,
    post_functions,
)
from keel.validate.schema import SchemaStage
from keel.validate.settings import StructuredConfig
from keel.validate.structured import OutputSchema, load_output_schema


@dataclass(slots=True)
class ValidationPlan:
    """What the Validation layer adds to a feature: LLM-layer stages, its own stages, the ladder."""

    before_model: list[Stage] = field(default_factory=list)  # run last in the LLM layer
    checks: list[Stage] = field(default_factory=list)  # the Validation layer, in order
    ladder: Ladder = field(default_factory=lambda: Ladder(StructuredConfig(), None))
    holds: bool = False  # a stream must be held until these checks passed (they may refuse or rewrite it)


def output_schema(
    fc: FeatureConfig, prompt_schema: dict[str, Any] | None, *, where: str
) -> OutputSchema | None:
    """The feature's declared schema (or its prompt's), checked; ConfigError naming the key if invalid."""
    spec = fc.output_schema if fc.output_schema is not None else prompt_schema
    if spec is None:
        return None
    if isinstance(spec, dict):
        check_schema(spec, where=f"{where}.schema")
    return load_output_schema(spec, where=f"{where}.schema")


def needs_embedder(settings: Settings) -> bool:
    """True when a feature matches intents by example or checks grounding (then an embedder is built)."""
    return any(
        any(i.examples for i in f.validation.intents)
        or (f.validation.grounding is not None and f.validation.grounding.weight > 0)
        for f in settings.features
    )


def build_validation(
    fc: FeatureConfig,
    output: OutputSchema | None,
    model: ModelConfig,
    *,
    where: str,
    provider: Provider | None = None,
    embedder: Embedder | None = None,
    providers: dict[str, Provider] | None = None,
) -> ValidationPlan:
    """The stages and ladder ``fc`` turns on; ``provider`` (the feature's model) prices rule answers."""
    cfg = fc.validation
    grounding = cfg.grounding
    ladder = Ladder(
        cfg.structured,
        output,
        cfg.fallback,
        where=f"{where}.validation.fallback",
        grounding_reasks=grounding.reasks if grounding is not None and grounding.action == "reask" else 0,
    )
    plan = ValidationPlan(ladder=ladder)
    if cfg.intents and provider is not None:
        matcher = IntentMatcher(cfg.intents, embedder)
        functions = intent_functions(cfg.intents, where=f"{where}.validation")
        if output is not None:
            check_answers(cfg.intents, output, where=f"{where}.validation")
        plan.before_model.append(IntentStage(matcher, functions, provider, model.name, output))
    if cfg.postprocess:
        steps = post_functions(cfg.postprocess, where=f"{where}.validation")
        plan.checks.append(PostprocessStage(cfg.postprocess, steps))
    policy = cfg.policy
    if output is not None and policy.length is not None and policy.length.action == "truncate":
        raise ConfigError(
            f"{where}.validation.policy.length: truncate would break the JSON a schema asks for"
        )
    plan.checks += policy_stages(policy)
    plan.holds = (
        cfg.fallback is not None
        or bool(cfg.postprocess)
        or any(
            c is not None and c.action != "flag" for c in (policy.banned_terms, policy.urls, policy.length)
        )
        or any(t.action != "flag" for t in policy.banned_topics)
    )
    if output is not None:
        instruct = cfg.structured.instruct
        constrained = provider_class(model.provider).constrains_schema(model.options)
        if instruct == "always" or (instruct == "auto" and not constrained):
            plan.before_model.append(SchemaInstructionStage(output.schema))
        plan.checks.append(SchemaStage(output, cfg.structured))
    if grounding is not None:
        scorer = GroundingScorer(embedder, grounding.weight)
        judge = None
        if grounding.judge is not None:
            judge = GroundingJudge((providers or {})[grounding.judge], grounding.judge)
        plan.checks.append(GroundingStage(scorer, grounding, judge))
        plan.holds = plan.holds or grounding.action != "flag"
    return plan
