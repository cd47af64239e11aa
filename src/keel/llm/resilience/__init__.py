"""Reliability wrappers: each one is a ``Provider`` around other providers, composed from keel.yaml.

- ``RetryingProvider``: exponential backoff with full jitter on retryable failures, Retry-After honoured;
- ``BreakerProvider``: a circuit breaker per deployment, its state in a ``Breakers`` store;
- ``BalancedProvider``: several deployments behind one model name (weighted, least in flight, latency);
- ``FallbackProvider``: a feature's chain of models, tried in order on failures that justify it.

Every call carries a deadline (``ModelRequest.timeout``) that retries, waits and fallbacks share.
``build_model`` and ``build_chain`` compose them; ``health`` reports breakers, load and latency.
"""

from __future__ import annotations

from keel.llm.resilience.balance import BalancedProvider, Policy
from keel.llm.resilience.breaker import BreakerProvider
from keel.llm.resilience.build import build_chain, build_model, config_leaf, deployment_key
from keel.llm.resilience.classify import (
    counts_against_breaker,
    is_content_filter,
    is_context_length,
    is_retryable,
    should_fall_back,
)
from keel.llm.resilience.fallback import FallbackProvider
from keel.llm.resilience.retry import RetryingProvider, retry_after
from keel.llm.resilience.wrapper import Wrapper, health

__all__ = [
    "BalancedProvider",
    "BreakerProvider",
    "FallbackProvider",
    "Policy",
    "RetryingProvider",
    "Wrapper",
    "build_chain",
    "build_model",
    "config_leaf",
    "counts_against_breaker",
    "deployment_key",
    "health",
    "is_content_filter",
    "is_context_length",
    "is_retryable",
    "retry_after",
    "should_fall_back",
]
