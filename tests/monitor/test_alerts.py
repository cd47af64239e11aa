"""Alert rules over the ledger: levels per feature, one event per change, webhooks with retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from receivers import Receiver

from keel.monitor.alerts import AlertMonitor, WebhookSender
from keel.monitor.ledger import LedgerRow
from keel.monitor.settings import AlertRule, AlertSettings
from keel.monitor.sqlite_ledger import SQLiteLedger

pytestmark = pytest.mark.integration  # a real local HTTP receiver

NOW = 1_800_000_000.0


def _row(id: str, feature: str = "support", ago: float = 60, **kw: Any) -> LedgerRow:
    return LedgerRow(id=id, ts=NOW - ago, feature=feature, **kw)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SQLiteLedger]:
    with SQLiteLedger(tmp_path / "keel.db") as ledger:
        yield ledger


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _monitor(ledger: SQLiteLedger, hook: Receiver, *rules: dict[str, Any]) -> AlertMonitor:
    settings = AlertSettings(
        webhooks=[hook.url + "/alerts"], rules=[AlertRule(**r) for r in rules], backoff=0
    )
    return AlertMonitor(settings, ledger)


def test_levels_rise_and_fall_with_the_window_and_each_change_is_one_event(
    ledger: SQLiteLedger, hook: Receiver
) -> None:
    monitor = _monitor(
        ledger, hook, {"name": "spend", "metric": "cost_usd", "window": "1h", "warn": 1, "alert": 5}
    )
    ledger.write([_row("a", cost_usd=0.5)])
    assert monitor.evaluate(NOW) == []
    ledger.write([_row("b", cost_usd=1.0)])
    (warn,) = monitor.evaluate(NOW)
    assert (warn.feature, warn.level, warn.previous, warn.value) == ("support", "warn", "ok", 1.5)
    assert monitor.evaluate(NOW) == []  # still warn: nothing new to say
    ledger.write([_row("c", cost_usd=4.0)])
    (alert,) = monitor.evaluate(NOW)
    assert (alert.level, alert.previous) == ("alert", "warn")
    (ok,) = monitor.evaluate(NOW + 3600)  # the window moved past every call
    assert (ok.level, ok.previous, ok.value) == ("ok", "alert", 0.0)
    assert "back to normal" in ok.message
    monitor.close()
    posts = hook.wait_for(lambda p: len(p) == 3)
    assert [orjson.loads(p.body)["level"] for p in posts] == ["warn", "alert", "ok"]
    [state] = monitor.states()
    assert (state.rule, state.feature, state.level) == ("spend", "support", "ok")


def test_error_rate_p95_and_blocks_are_measured_per_feature(ledger: SQLiteLedger, hook: Receiver) -> None:
    monitor = _monitor(
        ledger,
        hook,
        {"name": "errors", "metric": "error_rate", "warn": 0.2, "alert": 0.5, "min_calls": 4},
        {"name": "slow", "metric": "p95_latency_ms", "alert": 1000},
        {"name": "blocks", "metric": "guard_blocks", "warn": 2},
    )
    ledger.write(
        [
            *(_row(f"s{i}", latency_ms=100.0) for i in range(3)),
            _row("s3", status="error", latency_ms=5000.0),
            _row("x0", feature="extract", status="error"),  # one call: below min_calls for error_rate
            _row("x1", feature="extract", status="blocked"),
            _row("x2", feature="extract", status="blocked"),
        ]
    )
    events = {(e.rule, e.feature): e for e in monitor.evaluate(NOW)}
    assert set(events) == {("errors", "support"), ("slow", "support"), ("blocks", "extract")}
    assert (events["errors", "support"].level, events["errors", "support"].value) == ("warn", 0.25)
    assert events["slow", "support"].level == "alert"
    assert events["blocks", "extract"].value == 2.0
    monitor.close()


def test_eval_scores_alert_below_their_thresholds(ledger: SQLiteLedger, hook: Receiver) -> None:
    monitor = _monitor(ledger, hook, {"name": "quality", "metric": "eval_score", "warn": 0.8, "alert": 0.5})

    def scored(id: str, score: float) -> LedgerRow:
        return _row(
            id, verdicts=[{"stage": "eval.relevance", "action": "allow", "reason": "r", "score": score}]
        )

    ledger.write([scored("a", 0.9), scored("b", 0.7)])
    (warn,) = monitor.evaluate(NOW)
    assert (warn.level, warn.value, warn.direction) == ("warn", pytest.approx(0.8), "below")
    ledger.write([scored("c", 0.0), scored("d", 0.1)])
    (alert,) = monitor.evaluate(NOW)
    assert alert.level == "alert"
    monitor.close()


def test_a_webhook_failing_with_5xx_is_retried_until_it_answers() -> None:
    with Receiver(statuses=(500, 503)) as hook:
        sender = WebhookSender(attempts=5, backoff=0.01)
        sender.send([hook.url + "/x"], {"rule": "r"})
        sender.close()
        assert hook.answered == [500, 503, 200]
        assert [orjson.loads(p.body) for p in hook.received] == [{"rule": "r"}]
        assert (sender.delivered, sender.failed) == (1, 0)


def test_a_webhook_refusing_with_4xx_is_not_retried() -> None:
    with Receiver(statuses=(404,)) as hook:
        sender = WebhookSender(attempts=5, backoff=0.01)
        sender.send([hook.url + "/gone"], {"rule": "r"})
        sender.close()
        assert hook.answered == [404]
        assert (sender.delivered, sender.failed) == (0, 1)


def test_rules_are_checked_when_the_config_loads() -> None:
    with pytest.raises(ValidationError, match="warn must be <= alert"):
        AlertRule(name="r", metric="cost_usd", warn=5, alert=1)
    with pytest.raises(ValidationError, match="warn must be >= alert"):
        AlertRule(name="r", metric="eval_score", warn=0.2, alert=0.5)
    with pytest.raises(ValidationError, match="give warn, alert or both"):
        AlertRule(name="r", metric="cost_usd")
    with pytest.raises(ValidationError, match="expected an http"):
        AlertSettings(webhooks=["ftp://x"])
    with pytest.raises(ValidationError, match="duplicate rule name"):
        AlertSettings(rules=[AlertRule(name="r", metric="cost_usd", warn=1)] * 2)
    assert AlertRule(name="r", metric="cost_usd", warn=1, window="15m").window == 900
