"""The usage report: reading --since/--by/--format, and rendering a table, CSV and JSON people can use."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from rich.console import Console

from keel.errors import InvalidRequest, KeelError
from keel.monitor.usage import (
    UsageSummary,
    build_summary,
    has_layers,
    parse_format,
    parse_group_by,
    parse_since,
    render_csv,
    render_json,
    render_layers,
    render_table,
    sort_summaries,
)

pytestmark = pytest.mark.unit

NOW = 1_900_000_000.0  # in 2030, after every date below


def summary(group: str | None, **kw: object) -> UsageSummary:
    base: dict[str, object] = {
        "calls": 1, "errors": 0, "blocked": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
        "saved_usd": 0.0, "cache_hits": 0, "latency_p50_ms": None, "latency_p95_ms": None,
    }  # fmt: skip
    return UsageSummary(group=group, **{**base, **kw})  # type: ignore[arg-type]


SUPPORT = summary(
    "support", calls=1204, errors=3, blocked=2, input_tokens=812_345, output_tokens=164_001, cache_hits=40,
    cost_usd=0.15600000000000003, saved_usd=0.0175, cache_saved_usd=0.0125, route_saved_usd=0.005,
    latency_p50_ms=412.25, latency_p95_ms=1890.5, input_p50_ms=0.25, input_p95_ms=1.5, llm_p50_ms=400.0,
    llm_p95_ms=1850.0, ttft_p50_ms=120.0, ttft_p95_ms=300.25,
)  # fmt: skip
EXTRACT = summary("extract", calls=7, cost_usd=0.000221, latency_p50_ms=9.0, latency_p95_ms=12.0)
ANONYMOUS = summary(None, calls=2)


@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [("24h", 86400), ("30m", 1800), ("7d", 7 * 86400), ("2w", 14 * 86400), (" 90s ", 90), ("1.5h", 5400),
     ("24H", 86400)],
)  # fmt: skip
def test_since_reads_durations_back_from_now(text: str, seconds_ago: float) -> None:
    assert parse_since(text, now=NOW) == NOW - seconds_ago


def test_since_reads_a_date_as_local_midnight_and_an_iso_time_with_its_offset() -> None:
    assert parse_since("2026-11-01", now=NOW) == datetime(2026, 11, 1).timestamp()
    utc = datetime(2026, 11, 1, 9, 30, tzinfo=UTC).timestamp()
    assert parse_since("2026-11-01T09:30:00+00:00", now=NOW) == utc
    assert parse_since("2026-11-01T09:30:00Z", now=NOW) == utc
    assert parse_since("2026-11-01T11:30:00+02:00", now=NOW) == utc


@pytest.mark.parametrize("text", ["", "yesterday", "24", "h", "-3h", "2026-13-01", "3 days", "24h ago"])
def test_a_since_that_is_no_time_is_a_clear_request_error(text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_since(text, now=NOW)
    message = str(info.value)
    assert message.startswith(f"--since {text!r}: expected a duration (30m, 24h, 7d, 2w)")
    assert "\n" not in message


def test_a_since_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"--since '2031-01-01' is in the future"):
        parse_since("2031-01-01", now=NOW)


def test_by_and_format_accept_their_choices_and_name_them_otherwise() -> None:
    assert [parse_group_by(x) for x in ("feature", "MODEL", " key ")] == ["feature", "model", "key"]
    assert [parse_format(x) for x in ("table", "CSV", "json")] == ["table", "csv", "json"]
    with pytest.raises(KeelError, match=r"^--by 'tenant': expected one of feature, model, key$"):
        parse_group_by("tenant")
    with pytest.raises(KeelError, match=r"^--format 'xml': expected one of table, csv, json$"):
        parse_format("xml")


def test_summaries_sort_by_cost_then_calls_then_name_with_no_group_last() -> None:
    a, b, c = summary("b", calls=5), summary("a", calls=5), summary("z", calls=9)
    assert sort_summaries([ANONYMOUS, a, EXTRACT, b, c, SUPPORT]) == [SUPPORT, EXTRACT, c, b, a, ANONYMOUS]


def _text(summaries: list[UsageSummary]) -> list[str]:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render_table(summaries, by="feature", title="usage by feature"))
    return console.export_text().splitlines()


def test_the_table_shows_every_number_right_aligned_with_cost_to_six_decimals() -> None:
    lines = _text([SUPPORT, EXTRACT, ANONYMOUS])
    support = next(line for line in lines if "support" in line)
    extract = next(line for line in lines if "extract" in line)
    for cell in ("1,204", "812,345", "164,001", "0.156000", "0.012500", "0.005000", "412.2", "1,890.5"):
        assert cell in support
    assert "0.000221" in extract
    anonymous = next(line for line in lines if "(none)" in line)
    assert anonymous.count(" - ") == 2  # no latency known
    # right-aligned: the cost cells end in the same column on every line
    ends = {line.index(cost) + len(cost) for line, cost in ((support, "0.156000"), (extract, "0.000221"))}
    assert len(ends) == 1
    total = next(line for line in lines if "total" in line)
    assert "1,213" in total
    assert "0.156221" in total


def test_a_single_group_has_no_total_line() -> None:
    assert not any("total" in line for line in _text([EXTRACT]))


def test_csv_has_a_header_and_one_parseable_line_per_group() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv([SUPPORT, ANONYMOUS], by="model"))))
    assert list(rows[0]) == [
        "model", "calls", "errors", "blocked", "input_tokens", "output_tokens", "cost_usd", "saved_usd",
        "cache_hits", "latency_p50_ms", "latency_p95_ms", "cache_saved_usd", "route_saved_usd",
        "ttft_p50_ms", "ttft_p95_ms", "input_p50_ms", "input_p95_ms", "context_p50_ms", "context_p95_ms",
        "llm_p50_ms", "llm_p95_ms", "validation_p50_ms", "validation_p95_ms",
    ]  # fmt: skip
    assert rows[0]["model"] == "support"
    assert (rows[0]["calls"], rows[0]["cost_usd"], rows[0]["latency_p95_ms"]) == ("1204", "0.156", "1890.5")
    assert (rows[1]["model"], rows[1]["latency_p50_ms"]) == ("", "")


def test_an_empty_csv_is_just_the_header() -> None:
    assert render_csv([], by="key").splitlines() == [
        "key,calls,errors,blocked,input_tokens,output_tokens,cost_usd,saved_usd,cache_hits,"
        "latency_p50_ms,latency_p95_ms,cache_saved_usd,route_saved_usd,ttft_p50_ms,ttft_p95_ms,"
        "input_p50_ms,input_p95_ms,context_p50_ms,context_p95_ms,llm_p50_ms,llm_p95_ms,"
        "validation_p50_ms,validation_p95_ms"
    ]


def test_json_names_the_window_and_the_grouping() -> None:
    doc = json.loads(render_json([SUPPORT, ANONYMOUS], by="key", since=NOW))
    assert datetime.fromisoformat(doc["since"]).timestamp() == NOW
    assert doc["by"] == "key"
    assert doc["groups"][0]["key"] == "support"
    assert doc["groups"][0]["cost_usd"] == 0.156
    assert doc["groups"][1] == {**ANONYMOUS.to_dict("key"), "key": None}
    assert json.loads(render_json([], by="feature", since=None)) == {
        "since": None,
        "by": "feature",
        "groups": [],
    }


def test_the_layer_table_shows_p50_and_p95_per_layer_with_a_dash_where_none_ran() -> None:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render_layers([SUPPORT, EXTRACT], by="feature"))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "input" in line)
    assert [h in header for h in ("input", "context", "llm", "validation", "ttft")] == [True] * 5
    support = next(line for line in lines if "support" in line)
    assert "0.2 / 1.5" in support and "400.0 / 1,850.0" in support and "120.0 / 300.2" in support
    assert support.count(" - ") == 2  # no context, no validation
    extract = next(line for line in lines if "extract" in line)
    assert extract.count(" - ") == 5


def test_layers_are_shown_only_when_some_group_recorded_them() -> None:
    assert has_layers([EXTRACT, SUPPORT])
    assert not has_layers([EXTRACT, ANONYMOUS])


def test_a_summary_built_from_backend_totals_adds_both_savings_and_names_each_percentile() -> None:
    s = build_summary("g", (3, 1, None, 10, 5, 0.5, 2, 0.25, 0.125), {"llm": (1.0, 2.0), "ttft": (3.0, None)})
    assert (s.calls, s.errors, s.blocked, s.input_tokens, s.output_tokens, s.cache_hits) == (
        3,
        1,
        0,
        10,
        5,
        2,
    )
    assert (s.cost_usd, s.saved_usd, s.cache_saved_usd, s.route_saved_usd) == (0.5, 0.375, 0.25, 0.125)
    assert (s.llm_p50_ms, s.llm_p95_ms, s.ttft_p50_ms, s.ttft_p95_ms) == (1.0, 2.0, 3.0, None)
    assert (s.latency_p50_ms, s.input_p50_ms) == (None, None)
