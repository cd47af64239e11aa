"""Which upstream errors are context-length or content-filter refusals, as real servers word them."""

from __future__ import annotations

import pytest
from resilience_helpers import status

from keel.errors import CircuitOpen, PayloadTooLarge, UpstreamError, UpstreamStatusError, UpstreamTimeout
from keel.llm.resilience import (
    counts_against_breaker,
    is_content_filter,
    is_context_length,
    is_retryable,
    should_fall_back,
)

pytestmark = pytest.mark.unit


def raw(code: int, body: str) -> UpstreamStatusError:
    return UpstreamStatusError(f"upstream answered {code}", upstream_status=code, body=body)


@pytest.mark.parametrize(
    "error",
    [
        raw(400, '{"error":{"message":"...","code":"context_length_exceeded"}}'),  # OpenAI
        raw(
            400,
            '{"object":"error","message":"This model\'s maximum context length is 4096 tokens. '
            'However, you requested 5000 tokens","type":"BadRequestError","code":400}',
        ),  # vLLM
        raw(
            400,
            '{"error":{"code":400,"message":"the request exceeds the available context size, try '
            'increasing it","type":"exceed_context_size_error"}}',
        ),  # llama.cpp server
        raw(
            400,
            '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: '
            '210000 tokens > 200000 maximum"}}',
        ),  # Anthropic-compatible
        raw(413, "Request Entity Too Large"),
        PayloadTooLarge("the prompt is 900 tokens but the local model's context window (n_ctx) is 512"),
    ],
)
def test_context_length_errors_are_recognised(error: Exception) -> None:
    assert is_context_length(error) and should_fall_back(error) and not is_content_filter(error)


@pytest.mark.parametrize(
    "error",
    [
        raw(
            400,
            '{"error":{"code":"content_filter","message":"The response was filtered",'
            '"innererror":{"code":"ResponsibleAIPolicyViolation"}}}',
        ),  # Azure OpenAI
        raw(400, '{"error":{"code":"content_policy_violation","message":"Your request was rejected"}}'),
    ],
)
def test_content_filter_errors_are_recognised(error: Exception) -> None:
    assert is_content_filter(error) and should_fall_back(error) and not is_context_length(error)


@pytest.mark.parametrize(
    "error",
    [
        raw(400, '{"error":{"message":"Invalid value for temperature","code":"invalid_value"}}'),
        raw(404, '{"error":{"message":"The model gpt-9 does not exist","code":"model_not_found"}}'),
        raw(401, '{"error":{"message":"Incorrect API key provided"}}'),
        raw(422, '{"detail":"field required"}'),
    ],
)
def test_other_caller_errors_justify_nothing(error: Exception) -> None:
    assert not should_fall_back(error)
    assert not is_retryable(error) and not counts_against_breaker(error)


def test_upstream_failures_justify_a_retry_a_breaker_count_and_a_fallback() -> None:
    for error in (
        status(500),
        status(503),
        status(429),
        UpstreamTimeout("slow"),
        UpstreamError("stream failed"),
    ):
        assert is_retryable(error) and counts_against_breaker(error) and should_fall_back(error)


def test_an_open_circuit_justifies_only_a_fallback() -> None:
    error = CircuitOpen("open")
    assert should_fall_back(error)
    assert not is_retryable(error) and not counts_against_breaker(error)
    assert error.status == 503 and error.code == "circuit_open"
