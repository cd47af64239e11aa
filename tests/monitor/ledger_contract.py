"""The ledger contract: what every backend guarantees; each backend's tests subclass ``LedgerContract``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from keel.call import Action, Call, Status, Usage, Verdict
from keel.errors import InputRejected, LedgerWriteError, UpstreamStatusError
from keel.monitor.ledger import Ledger, LedgerRow

NOW = 1_800_000_000.0
CONTENT = "my card is 4111 and my secret plan is to leave"  # must never reach the ledger


def row(id: str, **kw: object) -> LedgerRow:
    """A hand-made row; ``ts`` defaults to a minute before NOW."""
    return LedgerRow(id=id, **{"ts": NOW - 60, "feature": "support", **kw})  # type: ignore[arg-type]


def full_row() -> LedgerRow:
    """A row with every field away from its default."""
    return LedgerRow(
        id="c1",
        ts=NOW - 1.25,
        feature="support",
        key_id="team-a",
        model="small",
        provider="openai",
        upstream_model="gpt-4o-mini-2024-07-18",
        prompt_name="support",
        prompt_version="3",
        status="blocked",
        http_status=400,
        error_code="prompt_injection",
        input_tokens=812,
        output_tokens=164,
        cached_input_tokens=256,
        tokens_estimated=True,
        cost_usd=0.000221,
        saved_usd=0.5,
        latency_ms=417.25,
        ttft_ms=120.5,
        t_input_ms=0.21,
        t_context_ms=3.4,
        t_llm_ms=412.0,
        t_validation_ms=0.8,
        stream=True,
        cache="semantic",
        route="small: short question",
        verdicts=[
            {"stage": "input.injection", "action": "block", "reason": "prompt_injection", "score": 0.97}
        ],
        counters={"input.invisible_removed": 2},
        metadata={"tenant": "acme", "nested": {"a": [1, 2]}, "flag": True},
    )


class LedgerContract:
    """What every Ledger backend guarantees; a backend's test class subclasses it, providing ``ledger``."""

    @pytest.fixture
    def ledger(self, tmp_path: Path) -> Iterator[Ledger]:
        raise NotImplementedError

    def test_a_row_round_trips_with_every_field(self, ledger: Ledger) -> None:
        original = full_row()
        for f in fields(LedgerRow):
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            assert getattr(original, f.name) != default, f"full_row() leaves {f.name} at its default"
        ledger.write([original])
        assert ledger.rows() == [original]

    def test_a_row_from_a_call_keeps_outcome_tokens_and_timings_but_no_content(self, ledger: Ledger) -> None:
        call = Call(feature="support", messages=[{"role": "user", "content": CONTENT}], key_id="team-a")
        call.model, call.provider = "small", "openai"
        call.usage = Usage(input_tokens=10, output_tokens=3, cost_usd=0.002, estimated=True)
        call.timings = {"input": 1.0, "llm": 40.0, "total": 45.5}
        call.add_verdict(Verdict("input.pii", Action.MODIFY, "email_redacted", detail="1 email"))
        call.count("input.invisible_removed", 4)
        call.status = Status.ERROR
        call.error = UpstreamStatusError("upstream said 503", upstream_status=503)
        ledger.write([LedgerRow.from_call(call)])

        (stored,) = ledger.rows()
        assert (stored.id, stored.ts, stored.key_id, stored.model) == (
            call.id,
            call.started_at,
            "team-a",
            "small",
        )
        assert (stored.status, stored.http_status, stored.error_code) == ("error", 502, "upstream_error")
        assert (stored.input_tokens, stored.output_tokens, stored.tokens_estimated) == (10, 3, True)
        assert (stored.latency_ms, stored.t_input_ms, stored.t_llm_ms, stored.t_context_ms) == (
            45.5,
            1.0,
            40.0,
            None,
        )
        assert stored.verdicts == [
            {"stage": "input.pii", "action": "modify", "reason": "email_redacted", "detail": "1 email"}
        ]
        assert stored.counters == {"input.invisible_removed": 4}
        assert CONTENT not in repr(stored)

    def test_a_blocked_call_records_the_status_the_caller_got(self, ledger: Ledger) -> None:
        call = Call(feature="support", messages=[{"role": "user", "content": "hi"}])
        call.status = Status.BLOCKED
        call.error = InputRejected("blocked", code="prompt_injection")
        ledger.write([LedgerRow.from_call(call)])
        (stored,) = ledger.rows()
        assert (stored.status, stored.http_status, stored.error_code) == ("blocked", 400, "prompt_injection")

    def test_rows_come_newest_first_filtered_by_since_and_limit(self, ledger: Ledger) -> None:
        ledger.write([row(f"r{i}", ts=NOW - 100 + i) for i in range(10)])
        assert [r.id for r in ledger.rows(limit=3)] == ["r9", "r8", "r7"]
        assert [r.id for r in ledger.rows(since=NOW - 93)] == ["r9", "r8", "r7"]
        assert len(ledger.rows(limit=100)) == 10

    def test_a_batch_with_a_bad_row_writes_nothing(self, ledger: Ledger) -> None:
        ledger.write([row("before")])
        batch = [row("a"), row("b"), row("bad", feature="lone surrogate \udcff"), row("c")]
        with pytest.raises(LedgerWriteError) as info:
            ledger.write(batch)
        assert info.value.retryable is False
        assert [r.id for r in ledger.rows()] == ["before"]

    def test_writing_a_stored_id_again_keeps_the_first_row(self, ledger: Ledger) -> None:
        ledger.write([row("same", input_tokens=1)])
        ledger.write([row("same", input_tokens=2), row("other")])
        assert sorted((r.id, r.input_tokens) for r in ledger.rows()) == [("other", 0), ("same", 1)]

    def test_summarize_totals_each_group_most_expensive_first(self, ledger: Ledger) -> None:
        ledger.write(
            [
                row(
                    "1", feature="cheap", input_tokens=100, output_tokens=10, cost_usd=0.001, latency_ms=10.0
                ),
                row("2", feature="cheap", status="error", http_status=502, latency_ms=20.0),
                row(
                    "3", feature="dear", input_tokens=5000, output_tokens=900, cost_usd=0.25, latency_ms=900.0
                ),
                row("4", feature="dear", status="blocked", http_status=400),
                row("5", feature="dear", cache="exact", saved_usd=0.25, latency_ms=2.0),
                row("6", feature="dear", cache="semantic", saved_usd=0.125, latency_ms=4.0),
            ]
        )
        dear, cheap = ledger.summarize(since=None, by="feature")
        assert (dear.group, dear.calls, dear.errors, dear.blocked, dear.cache_hits) == ("dear", 4, 0, 1, 2)
        assert (dear.input_tokens, dear.output_tokens) == (5000, 900)
        assert dear.cost_usd == pytest.approx(0.25)
        assert dear.saved_usd == pytest.approx(0.375)
        assert (cheap.group, cheap.calls, cheap.errors, cheap.blocked, cheap.cache_hits) == (
            "cheap",
            2,
            1,
            0,
            0,
        )
        assert cheap.cost_usd == pytest.approx(0.001)

    def test_latency_percentiles_interpolate_between_ranks(self, ledger: Ledger) -> None:
        # ten latencies 10..100: p50 sits halfway between 50 and 60, p95 halfway between 90 and 100
        ledger.write([row(f"a{i}", feature="a", latency_ms=float(10 * i)) for i in range(10, 0, -1)])
        ledger.write([row("b1", feature="b", latency_ms=7.0), row("b2", feature="b")])  # b2: no latency
        ledger.write([row("c1", feature="c")])
        by_group = {s.group: s for s in ledger.summarize(since=None, by="feature")}
        assert by_group["a"].latency_p50_ms == pytest.approx(55.0)
        assert by_group["a"].latency_p95_ms == pytest.approx(95.5)
        assert (by_group["b"].latency_p50_ms, by_group["b"].latency_p95_ms, by_group["b"].calls) == (
            7.0,
            7.0,
            2,
        )
        assert (by_group["c"].latency_p50_ms, by_group["c"].latency_p95_ms) == (None, None)

    def test_summarize_by_key_and_model_keeps_calls_without_one_in_a_none_group(self, ledger: Ledger) -> None:
        ledger.write(
            [
                row("1", key_id="team-a", model="small", cost_usd=0.5),
                row("2", key_id="team-a", model="large", cost_usd=1.0),
                row("3", key_id=None, model=None),
            ]
        )
        assert [(s.group, s.calls) for s in ledger.summarize(since=None, by="key")] == [
            ("team-a", 2),
            (None, 1),
        ]
        assert [s.group for s in ledger.summarize(since=None, by="model")] == ["large", "small", None]

    def test_summarize_counts_only_calls_since(self, ledger: Ledger) -> None:
        ledger.write([row("old", ts=NOW - 7200, cost_usd=9.0), row("new", ts=NOW - 60, cost_usd=1.0)])
        (s,) = ledger.summarize(since=NOW - 3600, by="feature")
        assert (s.calls, s.cost_usd) == (1, 1.0)
        assert ledger.summarize(since=NOW, by="feature") == []

    def test_close_is_idempotent(self, ledger: Ledger) -> None:
        ledger.close()
        ledger.close()

    # -- duplicates, savings and per-layer latency ------------------------------------------------

    def test_a_batch_holding_one_id_twice_keeps_the_first(self, ledger: Ledger) -> None:
        ledger.write([row("twice", input_tokens=1), row("twice", input_tokens=2)])
        assert [(r.id, r.input_tokens) for r in ledger.rows()] == [("twice", 1)]

    def test_summaries_split_savings_into_cache_and_route(self, ledger: Ledger) -> None:
        ledger.write(
            [
                row("1", cache="exact", saved_usd=0.5),
                row("2", cache="semantic", saved_usd=0.25),
                row("3", route="complexity:small", saved_usd=0.125),
                row("4", route="cascade:1", saved_usd=-0.0625),  # escalated: cost more than the baseline
            ]
        )
        (s,) = ledger.summarize(since=None, by="feature")
        assert s.cache_saved_usd == pytest.approx(0.75)
        assert s.route_saved_usd == pytest.approx(0.0625)
        assert s.saved_usd == pytest.approx(0.8125)

    def test_summaries_give_p50_and_p95_of_each_layer_and_of_time_to_first_token(
        self, ledger: Ledger
    ) -> None:
        ledger.write(
            [
                row(f"r{i}", latency_ms=10.0 * i, t_input_ms=0.1 * i, t_llm_ms=float(i), ttft_ms=2.0 * i)
                for i in range(1, 11)
            ]
            + [row("no-timings")]
        )
        (s,) = ledger.summarize(since=None, by="feature")
        assert s.calls == 11
        assert s.layer("input") == (pytest.approx(0.55), pytest.approx(0.955))
        assert s.layer("llm") == (pytest.approx(5.5), pytest.approx(9.55))
        assert s.layer("ttft") == (pytest.approx(11.0), pytest.approx(19.1))
        assert s.layer("context") == (None, None)
        assert s.layer("validation") == (None, None)
        assert (s.latency_p50_ms, s.latency_p95_ms) == (pytest.approx(55.0), pytest.approx(95.5))

    # -- following the ledger ------------------------------------------------------------------

    def test_tail_of_an_empty_ledger_has_no_rows_and_a_cursor_that_sees_the_first(
        self, ledger: Ledger
    ) -> None:
        page = ledger.tail(after=None, limit=10)
        assert page.rows == []
        ledger.write([row("first")])
        assert [r.id for r in ledger.tail(after=page.cursor).rows] == ["first"]

    def test_tail_starts_with_the_last_rows_oldest_first_then_follows(self, ledger: Ledger) -> None:
        ledger.write([row(f"a{i}", ts=NOW + i) for i in range(5)])
        page = ledger.tail(after=None, limit=3)
        assert [r.id for r in page.rows] == ["a2", "a3", "a4"]
        assert ledger.tail(after=page.cursor).rows == []
        ledger.write([row("b0", ts=NOW + 10)])
        ledger.write([row("b1", ts=NOW + 11), row("b2", ts=NOW + 12)])
        nxt = ledger.tail(after=page.cursor)
        assert [r.id for r in nxt.rows] == ["b0", "b1", "b2"]
        assert ledger.tail(after=nxt.cursor).rows == []

    def test_tail_follows_storage_order_so_a_slow_call_stored_late_is_not_missed(
        self, ledger: Ledger
    ) -> None:
        ledger.write([row("quick", ts=NOW)])
        cursor = ledger.tail(after=None).cursor
        ledger.write([row("slow", ts=NOW - 50)])  # started earlier, finished (and stored) later
        assert [r.id for r in ledger.tail(after=cursor).rows] == ["slow"]

    def test_tail_pages_through_a_burst_without_losing_or_repeating_rows(self, ledger: Ledger) -> None:
        cursor = ledger.tail(after=None).cursor
        ledger.write([row(f"r{i:03}") for i in range(25)])
        seen: list[str] = []
        for _ in range(10):
            page = ledger.tail(after=cursor, limit=10)
            seen += [r.id for r in page.rows]
            cursor = page.cursor
        assert seen == [f"r{i:03}" for i in range(25)]

    def test_tail_filters_by_feature_and_moves_past_other_features(self, ledger: Ledger) -> None:
        cursor = ledger.tail(after=None).cursor
        ledger.write([row("s1"), row("x1", feature="extract"), row("s2"), row("x2", feature="extract")])
        page = ledger.tail(after=cursor, feature="extract")
        assert [r.id for r in page.rows] == ["x1", "x2"]
        ledger.write([row("s3")])
        assert ledger.tail(after=page.cursor, feature="extract").rows == []
        assert [r.id for r in ledger.tail(after=page.cursor).rows] == ["s3"]
        assert [r.id for r in ledger.tail(after=None, limit=1, feature="extract").rows] == ["x2"]

    # -- verdicts for alert rules ----------------------------------------------------------------

    def test_verdict_stats_count_a_stage_and_its_sub_stages_per_feature(self, ledger: Ledger) -> None:
        def v(stage: str, action: str = "allow", score: float | None = None) -> dict[str, object]:
            d: dict[str, object] = {"stage": stage, "action": action, "reason": "r"}
            if score is not None:
                d["score"] = score
            return d

        ledger.write(
            [
                row("1", verdicts=[v("eval.relevance", score=0.5), v("input.injection", "block", 0.99)]),
                row("2", verdicts=[v("eval.relevance", score=0.75), v("eval.tone", "flag")]),
                row("3", feature="extract", verdicts=[v("eval", "block", 1.0), v("evaluation", score=0.0)]),
                row("old", ts=NOW - 7200, verdicts=[v("eval.relevance", score=0.0)]),
            ]
        )
        extract, support = ledger.verdict_stats(since=NOW - 3600, stage="eval")  # by feature name
        assert (support.feature, support.verdicts, support.blocks, support.scored) == ("support", 3, 0, 2)
        assert support.mean_score == pytest.approx(0.625)
        assert (extract.feature, extract.verdicts, extract.blocks, extract.mean_score) == (
            "extract",
            1,
            1,
            1.0,
        )
        (guard,) = ledger.verdict_stats(since=None, stage="input.injection")
        assert (guard.feature, guard.blocks) == ("support", 1)
        assert ledger.verdict_stats(since=None, stage="validation") == []

    # -- retention -------------------------------------------------------------------------------

    def test_delete_before_removes_older_rows_oldest_first_at_most_limit(self, ledger: Ledger) -> None:
        ledger.write([row(f"d{i}", ts=NOW - 100 + i) for i in range(10)])
        assert ledger.delete_before(NOW - 94, limit=4) == 4  # six are older; the four oldest go
        assert sorted(r.id for r in ledger.rows()) == [f"d{i}" for i in range(4, 10)]
        assert ledger.delete_before(NOW - 94) == 2
        assert ledger.delete_before(NOW - 94) == 0
        assert sorted(r.id for r in ledger.rows()) == [f"d{i}" for i in range(6, 10)]
