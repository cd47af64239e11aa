"""Retries: backoff with full jitter on failures that may pass, Retry-After honoured, within the deadline."""

from __future__ import annotations

import email.utils
import random
import time

import pytest
from resilience_helpers import BreaksMidway, collect, recording_sleep, req, run, status, text

from keel.errors import CircuitOpen, UpstreamConnectionError, UpstreamStatusError, UpstreamTimeout
from keel.llm.providers.base import ModelRequest
from keel.llm.resilience import RetryingProvider, retry_after
from keel.settings import RetryConfig
from keel.testing import ScriptedProvider

pytestmark = pytest.mark.unit


def retrying(inner: ScriptedProvider, delays: list[float] | None = None, **config: float) -> RetryingProvider:
    sleep = recording_sleep([] if delays is None else delays)
    return RetryingProvider(inner, RetryConfig(**config), rng=random.Random(7), sleep=sleep)


@pytest.mark.parametrize(
    "error",
    [
        status(500),
        status(503),
        status(429),
        status(408),
        UpstreamTimeout("slow"),
        UpstreamConnectionError("down"),
    ],
)
def test_a_retryable_failure_is_tried_again_and_the_answer_returned(error: UpstreamStatusError) -> None:
    inner = ScriptedProvider("m", [error, error, "third time lucky"])
    request = req(timeout=30)
    answer = run(retrying(inner, attempts=3).complete(request))
    assert answer.text == "third time lucky"
    assert len(inner.requests) == 3
    assert request.trace.attempts == 3
    assert request.trace.model == "m"
    assert len(request.trace.failures) == 2 and request.trace.failures[0].startswith("m: ")


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_a_caller_error_is_never_retried(code: int) -> None:
    inner = ScriptedProvider("m", [status(code), "never reached"])
    with pytest.raises(UpstreamStatusError) as caught:
        run(retrying(inner, attempts=5).complete(req()))
    assert caught.value.upstream_status == code
    assert len(inner.requests) == 1


def test_an_open_circuit_is_not_retried() -> None:
    inner = ScriptedProvider("m", [CircuitOpen("open"), "never reached"])
    with pytest.raises(CircuitOpen):
        run(retrying(inner, attempts=5).complete(req()))
    assert len(inner.requests) == 1


def test_after_the_last_attempt_the_last_error_is_raised_with_the_attempts() -> None:
    inner = ScriptedProvider("m", [status(500), status(502), status(503)])
    request = req()
    with pytest.raises(UpstreamStatusError) as caught:
        run(retrying(inner, attempts=3).complete(request))
    assert caught.value.upstream_status == 503
    assert caught.value.attempts == 3
    assert request.trace.failures == ["m: http_500", "m: http_502", "m: http_503"]


def test_backoff_is_full_jitter_bounded_by_the_exponential_and_max_backoff() -> None:
    delays: list[float] = []
    inner = ScriptedProvider("m", [status(503)])
    provider = retrying(inner, delays, attempts=6, backoff=0.1, max_backoff=0.5)
    for _ in range(50):
        with pytest.raises(UpstreamStatusError):
            run(provider.complete(req()))
    assert len(delays) == 50 * 5
    per_retry = [delays[n::5] for n in range(5)]
    for n, waits in enumerate(per_retry):
        cap = min(0.5, 0.1 * 2**n)
        assert all(0 <= w <= cap for w in waits), (n, max(waits))
        assert max(waits) > cap * 0.7 and min(waits) < cap * 0.3  # spread over the range: jitter


@pytest.mark.parametrize(
    ("headers", "at_least"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "1200", "retry-after": "1"}, 1.2),
    ],
)
def test_retry_after_is_honoured(headers: dict[str, str], at_least: float) -> None:
    delays: list[float] = []
    inner = ScriptedProvider("m", [status(429, headers=headers), "ok"])
    answer = run(retrying(inner, delays, attempts=2, backoff=0.01, max_backoff=5).complete(req(timeout=30)))
    assert answer.text == "ok"
    assert len(delays) == 1 and delays[0] >= at_least


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    seconds = retry_after(status(503, headers={"retry-after": when}))
    assert seconds is not None and 1.0 <= seconds <= 3.0
    assert retry_after(status(503, headers={"retry-after": "soon"})) is None
    assert retry_after(status(503)) is None


def test_a_retry_after_longer_than_max_backoff_ends_the_retries_at_once() -> None:
    delays: list[float] = []
    inner = ScriptedProvider("m", [status(429, headers={"retry-after": "60"}), "ok"])
    with pytest.raises(UpstreamStatusError):
        run(retrying(inner, delays, attempts=3, max_backoff=5).complete(req(timeout=120)))
    assert delays == [] and len(inner.requests) == 1


def test_no_wait_runs_past_the_deadline() -> None:
    delays: list[float] = []
    inner = ScriptedProvider("m", [status(429, headers={"retry-after": "2"}), "ok"])
    with pytest.raises(UpstreamStatusError) as caught:
        run(retrying(inner, delays, attempts=3, max_backoff=5).complete(req(timeout=1.0)))
    assert caught.value.upstream_status == 429  # the real reason, not a timeout
    assert delays == [] and len(inner.requests) == 1


def test_each_attempt_is_given_only_the_time_left() -> None:
    seen: list[ModelRequest] = []

    def script(request: ModelRequest) -> str | UpstreamStatusError:
        seen.append(request)
        return status(503, headers={"retry-after": "0.05"}) if len(seen) < 3 else "ok"

    provider = RetryingProvider(ScriptedProvider("m", script), RetryConfig(attempts=3, max_backoff=1))
    original = req(timeout=10)
    run(provider.complete(original))
    timeouts = [r.timeout for r in seen]
    assert timeouts[0] == 10
    assert timeouts[1] is not None and timeouts[1] <= 10 - 0.05
    assert timeouts[2] is not None and timeouts[2] <= timeouts[1] - 0.05
    assert all(r.trace is original.trace for r in seen)  # one trace for the whole call


def test_a_stream_is_retried_before_its_first_chunk() -> None:
    inner = ScriptedProvider("m", [status(502), "streamed after a retry"])
    request = req()
    chunks = run(collect(retrying(inner, attempts=2).stream(request)))
    assert text(chunks) == "streamed after a retry"
    assert request.trace.attempts == 2 and request.trace.failures == ["m: http_502"]


def test_a_stream_is_not_retried_after_its_first_chunk() -> None:
    inner = BreaksMidway("m", status(503), after=2)
    got: list[dict[str, object]] = []
    with pytest.raises(UpstreamStatusError):
        run(collect(retrying(inner, attempts=3).stream(req()), got))
    assert len(got) == 2
    assert len(inner.requests) == 1
