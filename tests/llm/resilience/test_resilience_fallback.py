"""Fallback chains: the next model on failures that justify it, never on the caller's mistakes."""

from __future__ import annotations

import pytest
from resilience_helpers import BreaksMidway, Clock, Hanging, Slow, breakers, collect, req, run, status, text

from keel.errors import (
    CircuitOpen,
    InvalidRequest,
    KeelError,
    PayloadTooLarge,
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from keel.llm.resilience import BreakerProvider, FallbackProvider, RetryingProvider
from keel.settings import BreakerConfig, RetryConfig
from keel.testing import ScriptedProvider

pytestmark = pytest.mark.unit

CONTEXT_LENGTH = status(
    400,
    body={
        "error": {
            "message": "This model's maximum context length is 8192 tokens. However, your messages resulted "
            "in 9000 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    },
)
CONTENT_FILTER = status(
    400,
    body={
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
            "management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
        }
    },
)
POLICY_VIOLATION = status(
    400, body={"error": {"message": "Your request was rejected", "code": "content_policy_violation"}}
)
BAD_PARAMETER = status(
    400,
    body={
        "error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "code": None}
    },
)


def chain(*providers: ScriptedProvider) -> FallbackProvider:
    return FallbackProvider(list(providers))


@pytest.mark.parametrize(
    "error",
    [
        status(500),
        status(503),
        status(429),
        UpstreamTimeout("slow"),
        UpstreamConnectionError("down"),
        CircuitOpen("open"),
        CONTEXT_LENGTH,
        CONTENT_FILTER,
        POLICY_VIOLATION,
        status(413),
        PayloadTooLarge("the prompt is longer than the local model's context window"),
    ],
    ids=lambda e: getattr(e, "code", None) or str(getattr(e, "upstream_status", "")),
)
def test_the_next_model_answers_when_the_primary_fails_in_a_way_that_justifies_it(error: KeelError) -> None:
    primary = ScriptedProvider("primary", [error])
    backup = ScriptedProvider("backup", ["from the backup"])
    request = req(timeout=30)
    answer = run(chain(primary, backup).complete(request))
    assert answer.text == "from the backup"
    assert request.trace.model == "backup"
    assert len(request.trace.failures) == 1 and request.trace.failures[0].startswith("primary: ")


def test_the_trace_names_the_failure() -> None:
    for error, label in [
        (CONTEXT_LENGTH, "context_length_exceeded"),
        (CONTENT_FILTER, "content_filter"),
        (status(503), "http_503"),
        (UpstreamTimeout("slow"), "upstream_timeout"),
        (CircuitOpen("open"), "circuit_open"),
    ]:
        request = req()
        run(chain(ScriptedProvider("primary", [error]), ScriptedProvider("backup")).complete(request))
        assert request.trace.failures == [f"primary: {label}"]
        assert request.trace.attempts == (1 if label == "circuit_open" else 2)  # a refusal sends nothing


@pytest.mark.parametrize(
    "error", [BAD_PARAMETER, status(401), status(404), status(422), InvalidRequest("bad")]
)
def test_the_callers_own_mistake_is_raised_without_falling_back(error: KeelError) -> None:
    backup = ScriptedProvider("backup")
    with pytest.raises(type(error)):
        run(chain(ScriptedProvider("primary", [error]), backup).complete(req()))
    assert backup.requests == []


def test_when_every_model_failed_the_last_error_is_raised_with_every_attempt() -> None:
    primary = RetryingProvider(
        ScriptedProvider("primary", [status(503)]), RetryConfig(attempts=3, backoff=0.001, max_backoff=0.001)
    )
    request = req(timeout=30)
    with pytest.raises(UpstreamTimeout) as caught:
        run(
            FallbackProvider([primary, ScriptedProvider("backup", [UpstreamTimeout("slow too")])]).complete(
                request
            )
        )
    assert caught.value.attempts == 4
    assert request.trace.attempts == 4
    assert request.trace.failures == ["primary: http_503"] * 3 + ["backup: upstream_timeout"]


@pytest.mark.timeout(10)
def test_a_hanging_primary_is_cut_off_at_the_deadline() -> None:
    clock = Clock()
    hanging = Hanging("primary")
    primary = BreakerProvider(hanging, "primary", breakers(clock), BreakerConfig(), clock=clock)
    backup = ScriptedProvider("backup")
    with pytest.raises(UpstreamTimeout, match="no answer before the call's deadline"):
        run(FallbackProvider([primary, backup]).complete(req(timeout=0.1)))
    assert backup.requests == []  # the primary used up the deadline: no time left to fall back


def test_when_the_primary_failed_after_the_deadline_its_error_is_raised_without_falling_back() -> None:
    backup = ScriptedProvider("backup")
    with pytest.raises(UpstreamStatusError) as caught:
        run(FallbackProvider([Slow("primary", 0.15, [status(503)]), backup]).complete(req(timeout=0.1)))
    assert caught.value.upstream_status == 503
    assert backup.requests == []


def test_the_fallback_is_asked_with_the_time_left() -> None:
    backup = ScriptedProvider("backup")
    run(chain(ScriptedProvider("primary", [status(503)]), backup).complete(req(timeout=30)))
    [asked] = backup.requests
    assert asked.timeout is not None and 0 < asked.timeout <= 30


def test_a_stream_falls_back_before_its_first_chunk() -> None:
    backup = ScriptedProvider("backup", ["streamed by the backup"])
    request = req()
    chunks = run(collect(chain(ScriptedProvider("primary", [status(502)]), backup).stream(request)))
    assert text(chunks) == "streamed by the backup"
    assert request.trace.model == "backup"


def test_a_stream_that_fails_after_its_first_chunk_ends_with_the_error() -> None:
    backup = ScriptedProvider("backup")
    got: list[dict[str, object]] = []
    with pytest.raises(UpstreamStatusError):
        run(collect(chain(BreaksMidway("primary", status(503), after=2), backup).stream(req()), got))
    assert len(got) == 2
    assert backup.requests == []


def test_a_chain_falls_back_through_several_models() -> None:
    models = [ScriptedProvider(f"m{i}", [status(503)]) for i in range(3)] + [ScriptedProvider("last", ["ok"])]
    request = req()
    assert run(chain(*models).complete(request)).text == "ok"
    assert request.trace.model == "last" and request.trace.attempts == 4


def test_fallback_on_can_be_chosen() -> None:
    backup = ScriptedProvider("backup")
    only_timeouts = FallbackProvider(
        [ScriptedProvider("primary", [status(503)]), backup],
        fallback_on=lambda e: isinstance(e, UpstreamTimeout),
    )
    with pytest.raises(UpstreamStatusError):
        run(only_timeouts.complete(req()))
    assert backup.requests == []
