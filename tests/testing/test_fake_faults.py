"""The fake upstream's fault knobs and stats: errors, hangs, latency, broken bodies, seeds."""

from __future__ import annotations

import json
import threading
from typing import Any

import jsonschema
import pytest
from upstream_client import BOOKING, USER, Reply, chat, http, sse, wait_until

from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration


# -- faults ------------------------------------------------------------------------------------


def test_an_injected_error_is_openai_error_json_and_429_says_retry_after() -> None:
    with FakeUpstream(error_rate=1.0, error_status=429) as fake:
        reply = chat(fake)
        assert reply.status == 429 and reply.headers["retry-after"] == "1"
        assert reply.json()["error"]["type"] == "rate_limit_error"
        fake.configure(error_status=503)
        assert chat(fake).status == 503
        fake.configure(error_rate=0.0)  # the upstream recovers
        assert chat(fake).status == 200
        assert fake.stats()["outcomes"] == {"ok": 1, "error": 2, "timeout": 0, "malformed": 0}


def test_knobs_change_at_runtime_over_http(fake: FakeUpstream) -> None:
    with FakeUpstream() as own:
        assert http("POST", own.url + "/_fake/config", {"error_rate": 1.0}).json()["error_rate"] == 1.0
        assert chat(own).status == 500
        assert http("POST", own.url + "/_fake/config", {"error_rate": 0}).status == 200
        assert chat(own).status == 200
        bad = http("POST", own.url + "/_fake/config", {"error_rate": 3})
        assert bad.status == 400 and "error_rate" in bad.json()["error"]["message"]
        unknown = http("POST", own.url + "/_fake/config", {"eror_rate": 0.1})
        assert unknown.status == 400 and "unknown knob" in unknown.json()["error"]["message"]
        assert http("GET", own.url + "/_fake/config").json()["error_rate"] == 0


def test_the_fault_header_forces_one_requests_outcome(fake: FakeUpstream) -> None:
    assert chat(fake, {"X-Fake-Fault": "error"}).status == 500
    assert chat(fake, {"X-Fake-Fault": "none"}).status == 200
    with pytest.raises(json.JSONDecodeError):
        chat(fake, {"X-Fake-Fault": "malformed"}).json()
    assert chat(fake, {"X-Fake-Fault": "explode"}).status == 400


def test_a_hanging_request_gets_nothing_until_the_client_gives_up() -> None:
    with FakeUpstream(timeout_rate=1.0) as fake:
        with pytest.raises(TimeoutError):
            http("POST", fake.base_url + "/chat/completions", {"messages": USER}, timeout=0.3)
        assert wait_until(lambda: fake.stats()["in_flight"] == 0)  # the server noticed the client left
        assert fake.stats()["outcomes"]["timeout"] == 1
        fake.configure(hang_ms=20)
        capped = chat(fake)
        assert capped.status == 504 and "hung" in capped.json()["error"]["message"]


def test_latency_delays_the_answer_past_a_short_client_timeout() -> None:
    with FakeUpstream(latency_ms=5000) as fake:
        with pytest.raises(TimeoutError):
            http("POST", fake.base_url + "/chat/completions", {"messages": USER}, timeout=0.3)
        fake.configure(latency_ms=0)
        assert chat(fake).status == 200


def test_stopping_answers_hanging_requests_instead_of_waiting_for_them() -> None:
    fake = FakeUpstream(timeout_rate=1.0).start()
    replies: list[Reply] = []
    worker = threading.Thread(target=lambda: replies.append(chat(fake)))
    worker.start()
    assert wait_until(lambda: fake.stats()["in_flight"] == 1)
    fake.stop()  # would wait for the 10-minute default hang without the shutdown signal
    worker.join()
    assert replies[0].status == 503


def test_malformed_bodies_are_not_json_when_no_json_was_asked_for(fake: FakeUpstream) -> None:
    plain = chat(fake, {"X-Fake-Fault": "malformed"})
    assert plain.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(plain.body)
    events = sse(chat(fake, {"X-Fake-Fault": "malformed"}, stream=True))
    assert any(isinstance(e, str) and e != "[DONE]" for e in events)


@pytest.mark.parametrize("kind", ["fenced", "trailing_comma", "truncated", "wrong_type", "missing_required"])
def test_malformed_json_content_fails_schema_validation(fake: FakeUpstream, kind: str) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "b", "schema": BOOKING}}
    reply = chat(fake, {"X-Fake-Fault": "malformed", "X-Fake-Malformed": kind}, response_format=fmt)
    content = reply.json()["choices"][0]["message"]["content"]  # the HTTP body itself is fine
    with pytest.raises((json.JSONDecodeError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(content), BOOKING)


def test_random_malformed_json_content_never_passes_validation() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "b", "schema": BOOKING}}
    with FakeUpstream(malformed_rate=1.0, seed=11) as fake:
        for _ in range(15):
            content = chat(fake, response_format=fmt).json()["choices"][0]["message"]["content"]
            with pytest.raises((json.JSONDecodeError, jsonschema.ValidationError)):
                jsonschema.validate(json.loads(content), BOOKING)


def test_the_same_seed_gives_the_same_fault_sequence() -> None:
    def outcomes(seed: int) -> list[str]:
        with FakeUpstream(error_rate=0.3, malformed_rate=0.3, seed=seed) as fake:
            replies = [chat(fake) for _ in range(16)]
        return [
            str(r.status) if r.status != 200 else "ok" if r.body.endswith(b"}") else "bad" for r in replies
        ]

    first = outcomes(5)
    assert first == outcomes(5) and first != outcomes(6)
    assert {"ok", "500", "bad"} <= set(first)


def test_reset_restarts_the_stats_and_the_fault_draws() -> None:
    with FakeUpstream(error_rate=0.5, seed=1) as fake:
        before = [chat(fake).status for _ in range(8)]
        fake.reset()
        assert fake.stats()["requests"] == 0
        assert [chat(fake).status for _ in range(8)] == before
        assert http("POST", fake.url + "/_fake/reset").json()["requests"] == 0


def test_a_stream_can_fail_after_n_chunks() -> None:
    with FakeUpstream(stream_error_after=2) as fake:
        events = sse(chat(fake, stream=True))
        assert "[DONE]" not in events and "error" in events[-1]
        assert [e["choices"][0]["delta"].get("content") for e in events[1:-1]] == ["You", " said:"]
        forced = sse(chat(fake, {"X-Fake-Stream-Error-After": "0"}, stream=True))
        assert len(forced) == 2 and "error" in forced[-1]
        assert fake.stats()["outcomes"]["error"] == 2


def test_chunk_delay_sends_the_same_stream_event_by_event(fake: FakeUpstream) -> None:
    def contents(events: list[Any]) -> list[Any]:
        return [e["choices"] for e in events[:-1]] + [events[-1]]

    with FakeUpstream(chunk_delay_ms=1) as slow:
        assert contents(sse(chat(slow, stream=True))) == contents(sse(chat(fake, stream=True)))


def test_no_usage_omits_usage_everywhere() -> None:
    with FakeUpstream(no_usage=True) as fake:
        assert "usage" not in chat(fake).json()
        events = sse(chat(fake, stream=True, stream_options={"include_usage": True}))
        assert all(isinstance(e, str) or "usage" not in e for e in events)


# -- stats and the Python API ------------------------------------------------------------------


def test_stats_count_paths_outcomes_and_the_most_in_flight() -> None:
    with FakeUpstream(timeout_rate=1.0, hang_ms=600_000) as fake:

        def give_up_after_two_seconds() -> None:
            with pytest.raises(TimeoutError):
                http("POST", fake.base_url + "/chat/completions", {"messages": USER}, timeout=2)

        threads = [threading.Thread(target=give_up_after_two_seconds) for _ in range(3)]
        for t in threads:
            t.start()
        assert wait_until(lambda: fake.stats()["in_flight"] == 3)
        for t in threads:
            t.join()
        assert wait_until(lambda: fake.stats()["in_flight"] == 0)
        fake.configure(timeout_rate=0.0)
        http("GET", fake.base_url + "/models")
        stats = fake.stats()
    assert stats["requests"] == 4 and stats["max_in_flight"] == 3
    assert stats["paths"] == {"/v1/chat/completions": 3, "/v1/models": 1}
    assert stats["outcomes"]["timeout"] == 3 and stats["outcomes"]["ok"] == 1
