"""Which failures justify what: a retry, a breaker's count, a fallback to the next model.

- retry: the upstream may answer next time (``exc.retryable``: timeouts, connection errors,
  429, 408, 5xx, malformed answers); never a 4xx that will fail again.
- breaker: the same failures count against a deployment; the caller's own 4xx do not.
- fallback: those, an open circuit, and two 4xx another model may not give: the prompt is too
  long for this model's context window, or this model's content filter refused it.
"""

from __future__ import annotations

from keel.errors import CircuitOpen, KeelError, PayloadTooLarge, UpstreamError, UpstreamStatusError

# Lower-cased markers in an upstream's error body: OpenAI and Azure codes, and the wording of
# vLLM, llama.cpp's server, Ollama and Anthropic-compatible servers.
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "exceed_context_size",
    "exceeds the available context size",
    "string_above_max_length",
    "prompt is too long",
    "reduce the length of the messages",
)
_FILTER_MARKERS = (
    "content_filter",
    "content_policy_violation",
    "content management policy",
    "content filter",
    "responsibleaipolicyviolation",
)
_REFUSAL_STATUSES = frozenset({400, 403, 413, 422})


def is_retryable(exc: BaseException) -> bool:
    """Trying the same model again may succeed."""
    return isinstance(exc, UpstreamError) and exc.retryable


def counts_against_breaker(exc: BaseException) -> bool:
    """The deployment failed (not the caller): timeouts, connection errors, 5xx, 429, bad answers."""
    return isinstance(exc, UpstreamError) and not isinstance(exc, CircuitOpen) and exc.retryable


def is_context_length(exc: BaseException) -> bool:
    """The prompt does not fit this model's context window (an upstream 4xx saying so, or the local model)."""
    if isinstance(exc, PayloadTooLarge):
        return True
    if not isinstance(exc, UpstreamStatusError) or exc.upstream_status not in _REFUSAL_STATUSES:
        return False
    return exc.upstream_status == 413 or _says(exc, _CONTEXT_MARKERS)


def is_content_filter(exc: BaseException) -> bool:
    """This model's content filter refused the request (an upstream 4xx saying so)."""
    if not isinstance(exc, UpstreamStatusError) or exc.upstream_status not in _REFUSAL_STATUSES:
        return False
    return _says(exc, _FILTER_MARKERS)


def should_fall_back(exc: BaseException) -> bool:
    """Another model may answer where this one failed."""
    return (
        isinstance(exc, CircuitOpen) or is_retryable(exc) or is_context_length(exc) or is_content_filter(exc)
    )


def failure_label(exc: KeelError) -> str:
    """A short code for a failed attempt, as the ledger shows it: ``http_503``, ``upstream_timeout``..."""
    if is_context_length(exc):
        return "context_length_exceeded"
    if is_content_filter(exc):
        return "content_filter"
    if isinstance(exc, UpstreamStatusError) and exc.upstream_status:
        return f"http_{exc.upstream_status}"
    return exc.code or type(exc).__name__


def _says(exc: UpstreamError, markers: tuple[str, ...]) -> bool:
    text = (exc.body or exc.message).lower()
    return any(m in text for m in markers)
