"""A feature, built: the configured stages of each layer, its provider, prompt and schema.

This is the one place that decides which stages a feature's configuration turns on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.context.build import context_stages
from keel.errors import ConfigError, KeelError
from keel.evals.live import LiveScoreStage
from keel.evals.review_stage import ReviewSampler
from keel.guards import build_guards
from keel.input.injection import InjectionStage
from keel.input.limits import LimitsStage
from keel.input.normalize import NormalizeStage
from keel.llm.cache import build_cache
from keel.llm.limits import BudgetSettleStage, BudgetStage, RateLimitStage
from keel.llm.prompt_stage import PromptStage
from keel.llm.providers import Provider
from keel.llm.resilience import FallbackProvider
from keel.llm.routing import RoutingProvider
from keel.monitor.cost import CostStage
from keel.monitor.metrics import MetricsStage
from keel.monitor.record import LedgerStage
from keel.prompts import PromptTemplate, load_prompt
from keel.prompts.registry import PromptRef
from keel.prompts.source import PromptSource
from keel.settings import FeatureConfig, ModelConfig, Settings
from keel.stage import Layer, Stage
from keel.validate.build import ValidationPlan, build_validation, output_schema
from keel.validate.leakage import LeakageStage
from keel.validate.tools import ToolStages

if TYPE_CHECKING:
    from keel.runtime import Runtime


@dataclass(slots=True)
class Feature:
    """A named pipeline configuration, ready to run."""

    config: FeatureConfig
    model: ModelConfig
    provider: Provider  # the whole LLM-layer provider stack for this feature
    prompt: PromptTemplate | None
    schema: dict[str, Any] | None
    stages: dict[Layer, list[Stage]] = field(default_factory=dict)
    cascade: list[Provider] = field(default_factory=list)  # cheapest first, when the feature cascades
    cascade_models: list[str] = field(default_factory=list)
    router: RoutingProvider | None = None  # a cascade's rules, which pick one model before it
    validation: ValidationPlan = field(default_factory=ValidationPlan)
    prompt_source: PromptSource | None = None  # when the prompt follows registry labels
    tools: ToolStages | None = None  # the declared tools' checks, when the feature declares tools
    leakage: LeakageStage | None = None  # output leakage checks, also run on each streamed piece

    @property
    def name(self) -> str:
        """The feature's name."""
        return self.config.name

    @property
    def holds_stream(self) -> bool:
        """True when a stream must be validated before any of it is sent (tool calls are checked too)."""
        tools = self.tools is not None
        return self.schema is not None or bool(self.cascade) or tools or self.validation.holds


def build_feature(fc: FeatureConfig, index: int, runtime: Runtime) -> Feature:
    """Assemble the stages and providers for one feature; problems raise ConfigError naming the feature."""
    settings = runtime.settings
    model = settings.model(fc.model)
    primary = runtime.providers[fc.model]
    provider, cascade, router = _llm_stack(fc, runtime)
    prompt, source = _load_prompt(fc, index, runtime) if fc.prompt else (None, None)
    where = f"{settings.source}: features[{index}]"
    output = output_schema(fc, prompt.schema if prompt else None, where=where)
    schema = output.schema if output is not None else None
    validation = build_validation(
        fc,
        output,
        model,
        where=where,
        provider=primary,
        embedder=runtime.embedder,
        providers=runtime.providers,
    )

    stages: dict[Layer, list[Stage]] = {layer: [] for layer in Layer}
    stages[Layer.INPUT] += [NormalizeStage(), LimitsStage(fc.limits, primary.count_messages, fc.name)]
    injection = InjectionStage.for_feature(fc, runtime.providers)
    stages[Layer.INPUT] += [injection] if injection is not None else []
    guards = build_guards(fc, where=where)
    stages[Layer.INPUT] += guards.input
    tools = ToolStages.for_feature(fc, runtime.state, where=where)
    if tools is not None:
        stages[Layer.INPUT].append(tools.request)
    if prompt is not None:
        variables = {
            **{k: v.default for k, v in prompt.variables.items() if v.default is not None},
            **fc.variables,
        }
        stages[Layer.LLM].append(PromptStage(source or prompt, variables))
    context = context_stages(fc, settings, runtime.index, runtime.embedder)
    stages[Layer.CONTEXT] += context.context
    stages[Layer.LLM] += guards.llm  # the canary goes into the rendered system prompt
    # Limits and budgets count the rendered prompt, so they come after it.
    rate = RateLimitStage.for_feature(fc, settings, runtime.state, primary, runtime.keys.by_name)
    budget = BudgetStage.for_feature(fc, settings, runtime.state, primary, runtime.keys.by_name)
    stages[Layer.LLM] += validation.before_model
    stages[Layer.LLM] += [st for st in (rate, budget) if st is not None]
    if tools is not None:
        stages[Layer.LLM] += [tools.confirm] if tools.confirm is not None else []
        stages[Layer.VALIDATION].append(tools.check)  # before the schema: an answer of tool calls has no text
    if guards.leakage is not None:
        stages[Layer.VALIDATION].append(guards.leakage)  # before the schema parses the redacted text
    stages[Layer.VALIDATION] += validation.checks
    stages[Layer.VALIDATION] += context.validation  # flags citations of sources the prompt never had
    stages[Layer.MONITORING].append(CostStage({m.name: m.price for m in settings.models}))
    if budget is not None:
        stages[Layer.MONITORING].append(BudgetSettleStage())
    if fc.scoring is not None:  # before metrics and the ledger, which record its verdict
        live = LiveScoreStage(fc.scoring, runtime.metrics.registry, settings.base_dir)
        stages[Layer.MONITORING].append(live)
    stages[Layer.MONITORING].append(MetricsStage(runtime.metrics))
    if runtime.writer is not None:
        stages[Layer.MONITORING].append(LedgerStage(runtime.writer))
    if runtime.review is not None and settings.review.samples(fc.name):
        sampler = ReviewSampler(runtime.review, settings.review.sample)
        stages[Layer.INPUT].append(sampler.snapshot)  # last: the messages as the Input layer left them
        stages[Layer.MONITORING].append(sampler.record)
    feature = Feature(
        config=fc,
        model=model,
        provider=provider,
        prompt=prompt,
        schema=schema,
        stages=stages,
        cascade=cascade,
        cascade_models=list(fc.routing.cascade.models) if fc.routing and fc.routing.cascade else [],
        router=router,
        validation=validation,
        prompt_source=source,
        tools=tools,
        leakage=guards.leakage,
    )
    if guards.leakage is not None:
        guards.leakage.live = not feature.holds_stream
    return feature


def _llm_stack(
    fc: FeatureConfig, runtime: Runtime
) -> tuple[Provider, list[Provider], RoutingProvider | None]:
    """The feature's provider stack, outermost first: caches and coalescing → routing → fallback chain →
    each model's own retries, breakers and balancing. A cascade gets one cached chain per step."""
    models = runtime.providers
    settings = runtime.settings

    def chain(name: str) -> Provider:
        rest = [models[f] for f in fc.fallbacks if f != name]
        return FallbackProvider([models[name], *rest]) if rest else models[name]

    def cached(provider: Provider) -> Provider:
        return build_cache(provider, fc, runtime.state, runtime.embedder)

    routing = fc.routing
    if routing is None:
        return cached(chain(fc.model)), [], None
    names = [fc.model, *(r.model for r in routing.rules)]
    if routing.complexity is not None:
        names += [routing.complexity.small, routing.complexity.large]
    routes = {name: chain(name) for name in dict.fromkeys(names)}
    router = RoutingProvider(
        routes,
        routing,
        fc.model,
        routes[fc.model].count_messages,
        price=lambda m: settings.model(m).price,
        name=f"routing:{fc.name}",
    )
    if routing.cascade is None:
        return cached(router), [], None
    cascade = [cached(chain(name)) for name in routing.cascade.models]
    return cascade[0], cascade, router if routing.rules else None


def _load_prompt(
    fc: FeatureConfig, index: int, runtime: Runtime
) -> tuple[PromptTemplate, PromptSource | None]:
    """The feature's prompt: a file as it is (``support``), or registry labels (``support@production``)."""
    settings = runtime.settings
    where = f"{settings.source}: features[{index}]"
    spec = fc.prompt or ""

    def check(template: PromptTemplate) -> None:
        template.check_feature_variables(fc.variables, where=f"{where}.variables")

    if "@" not in spec and not fc.prompt_split:
        template = _prompt_file(fc, index, settings)
        check(template)
        return template, None
    if "@" in spec and fc.prompt_split:
        raise ConfigError(
            f"{where}: give either prompt: NAME@LABEL or prompt: NAME with prompt_split, not both"
        )
    try:
        ref = PromptRef.parse(spec)
    except KeelError as exc:
        raise ConfigError(f"{where}.prompt: {exc}") from None
    try:
        source = PromptSource(
            runtime.prompt_registry(),
            ref.name,
            fc.prompt_split or {ref.ref: 1.0},
            refresh_seconds=settings.prompts.refresh_seconds,
            check=check,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}.prompt: {exc}") from None
    return source.first, source


def _prompt_file(fc: FeatureConfig, index: int, settings: Settings) -> PromptTemplate:
    name = fc.prompt or ""
    base = settings.resolve(settings.prompts_dir)
    for suffix in (".yaml", ".yml"):
        path = base / f"{name}{suffix}"
        if path.exists():
            return load_prompt(path, name=name)
    raise ConfigError(
        f"{settings.source}: features[{index}].prompt: no prompt file {Path(base, name + '.yaml')} "
        f"(prompts are read from prompts_dir: {settings.prompts_dir})"
    )
