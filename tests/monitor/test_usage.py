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
    parse_format,
    parse_group_by,
    parse_since,
    render_csv,
    render_json,
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
    cost_usd=0.15600000000000003, saved_usd=0.0125, latency_p50_ms=412.25, latency_p95_ms=1890.5,
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
    for cell in ("1,204", "812,345", "164,001", "0.156000", "0.012500", "412.2", "1,890.5"):
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
        "cache_hits", "latency_p50_ms", "latency_p95_ms",
    ]  # fmt: skip
    assert rows[0]["model"] == "support"
    assert (rows[0]["calls"], rows[0]["cost_usd"], rows[0]["latency_p95_ms"]) == ("1204", "0.156", "1890.5")
    assert (rows[1]["model"], rows[1]["latency_p50_ms"]) == ("", "")


def test_an_empty_csv_is_just_the_header() -> None:
    assert render_csv([], by="key").splitlines() == [
        "key,calls,errors,blocked,input_tokens,output_tokens,cost_usd,saved_usd,cache_hits,"
        "latency_p50_ms,latency_p95_ms"
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
