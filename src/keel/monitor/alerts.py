"""Budgets and alerts: rules evaluated from the ledger now and then, level changes POSTed to webhooks.

A rule watches one metric per feature over a sliding window and puts each feature at ``ok``,
``warn`` or ``alert``. Only a change of level makes an event, so a webhook hears once when a
feature crosses a threshold and once when it comes back (``ok``). Evaluation runs on a thread of
its own every ``interval`` seconds and delivery on another, with retries and backoff: neither
is ever on the request path. ``states()`` is what the dashboard shows.

Levels live in memory: a restart starts every feature at ``ok``, so a condition that still holds
is announced again once. With several replicas on one ledger, run alerts in one of them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

from keel.errors import KeelError
from keel.monitor.ledger import Ledger, VerdictStats
from keel.monitor.settings import AlertRule, AlertSettings
from keel.monitor.usage import UsageSummary

Level = Literal["ok", "warn", "alert"]
log = logging.getLogger("keel.alerts")

_DEFAULT_EVAL_STAGE = "eval"


@dataclass(frozen=True, slots=True)
class AlertState:
    """Where one rule stands for one feature, as of the last evaluation."""

    rule: str
    feature: str
    metric: str
    level: Level
    value: float | None  # None: no data (or fewer calls than the rule's min_calls)
    calls: int  # the sample the value is taken over
    since: float  # when this level began (epoch seconds)
    checked_at: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able data for the dashboard."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change of level, as delivered to webhooks."""

    rule: str
    feature: str
    metric: str
    level: Level
    previous: Level
    value: float | None
    calls: int
    warn: float | None
    alert: float | None
    direction: Literal["above", "below"]
    window_seconds: float
    at: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The webhook's JSON body (``at`` also as an ISO time)."""
        d = asdict(self)
        d["at_iso"] = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds")
        return d


class WebhookSender:
    """POST JSON to webhook URLs from a thread of its own, retrying with exponential backoff.

    2xx is delivered; 4xx other than 408 and 429 will never succeed and is not retried; anything
    else (5xx, timeouts, refused connections) is retried up to ``attempts`` times in all.
    """

    def __init__(
        self, *, timeout: float = 5.0, attempts: int = 5, backoff: float = 1.0, max_backoff: float = 60.0
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-alert-webhooks", daemon=True)
        self._thread.start()

    def send(self, urls: list[str], payload: dict[str, Any]) -> None:
        """Queue ``payload`` for each URL (returns at once)."""
        body = orjson.dumps(payload)
        for url in urls:
            self._queue.put((url, body))

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (retrying without waiting), then stop; at most ``timeout`` seconds."""
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, body = item
            if self._deliver(url, body):
                self.delivered += 1
            else:
                self.failed += 1

    def _deliver(self, url: str, body: bytes) -> bool:
        host = urlsplit(url).netloc  # the rest of a webhook URL is often its secret: never logged
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"content-type": "application/json", "user-agent": "keel"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                exc.close()
                reason = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    log.error("event=alert_webhook_refused host=%s status=%d", host, exc.code)
                    return False
            except (urllib.error.URLError, OSError) as exc:
                reason = str(getattr(exc, "reason", exc))
            log.warning("event=alert_webhook_failed host=%s attempt=%d error=%r", host, attempt, reason)
            if attempt < self.attempts:
                self._closing.wait(delay)
                delay = min(delay * 2, self.max_backoff)
        log.error("event=alert_webhook_gave_up host=%s attempts=%d", host, self.attempts)
        return False


class AlertMonitor:
    """Evaluate ``settings.rules`` against ``ledger`` every ``settings.interval`` seconds."""

    def __init__(
        self, settings: AlertSettings, ledger: Ledger, *, sender: WebhookSender | None = None
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.sender = sender or WebhookSender(
            timeout=settings.timeout, attempts=settings.attempts, backoff=settings.backoff
        )
        self._states: dict[tuple[str, str], AlertState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading -----------------------------------------------------------------------------------

    def states(self) -> list[AlertState]:
        """Every (rule, feature) evaluated so far, worst first."""
        rank = {"alert": 0, "warn": 1, "ok": 2}
        with self._lock:
            found = list(self._states.values())
        return sorted(found, key=lambda s: (rank[s.level], s.rule, s.feature))

    # -- evaluating --------------------------------------------------------------------------------

    def evaluate(self, now: float | None = None) -> list[AlertEvent]:
        """One pass over every rule: update the levels, queue an event per change, and return the events."""
        now = time.time() if now is None else now
        summaries: dict[float, dict[str, UsageSummary]] = {}
        verdicts: dict[tuple[float, str], dict[str, VerdictStats]] = {}
        events: list[AlertEvent] = []
        for rule in self.settings.rules:
            since = now - rule.window
            if rule.window not in summaries:
                found = self.ledger.summarize(since=since, by="feature")
                summaries[rule.window] = {s.group: s for s in found if s.group is not None}
            stage = rule.stage or (_DEFAULT_EVAL_STAGE if rule.metric == "eval_score" else None)
            stats: dict[str, VerdictStats] = {}
            if stage is not None:
                if (rule.window, stage) not in verdicts:
                    found_v = self.ledger.verdict_stats(since=since, stage=stage)
                    verdicts[rule.window, stage] = {v.feature: v for v in found_v}
                stats = verdicts[rule.window, stage]
            for feature in self._features(rule, summaries[rule.window], stats):
                value, calls = _measure(rule, summaries[rule.window].get(feature), stats.get(feature), stage)
                event = self._update(rule, feature, value, calls, now)
                if event is not None:
                    events.append(event)
        for event in events:
            rule = next(r for r in self.settings.rules if r.name == event.rule)
            urls = rule.webhooks if rule.webhooks is not None else self.settings.webhooks
            if urls:
                self.sender.send(urls, event.to_dict())
            log.warning(
                "event=alert rule=%s feature=%s level=%s value=%s",
                event.rule,
                event.feature,
                event.level,
                event.value,
            )
        return events

    def _features(
        self, rule: AlertRule, summaries: dict[str, UsageSummary], stats: dict[str, VerdictStats]
    ) -> list[str]:
        """The rule's feature, or every feature with calls in the window or a level to come back from."""
        if rule.feature is not None:
            return [rule.feature]
        with self._lock:
            known = {f for (r, f) in self._states if r == rule.name}
        return sorted(known | set(summaries) | set(stats))

    def _update(
        self, rule: AlertRule, feature: str, value: float | None, calls: int, now: float
    ) -> AlertEvent | None:
        level = _classify(rule, value, calls)
        with self._lock:
            old = self._states.get((rule.name, feature))
            previous: Level = "ok" if old is None else old.level
            since = now if old is None or old.level != level else old.since
            self._states[rule.name, feature] = AlertState(
                rule.name, feature, rule.metric, level, value, calls, since, now
            )
        if level == previous:
            return None
        return AlertEvent(
            rule=rule.name,
            feature=feature,
            metric=rule.metric,
            level=level,
            previous=previous,
            value=value,
            calls=calls,
            warn=rule.warn,
            alert=rule.alert,
            direction="below" if rule.lower_is_worse else "above",
            window_seconds=rule.window,
            at=now,
            message=_message(rule, feature, level, value),
        )

    # -- running -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Evaluate every ``interval`` seconds on a daemon thread until ``close()``."""
        if self._thread is None and self.settings.rules:
            self._thread = threading.Thread(target=self._run, name="keel-alerts", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop evaluating and deliver the events already queued (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.sender.close(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval):
            try:
                self.evaluate()
            except KeelError as exc:  # the ledger is unreachable: keep the levels, try again later
                log.warning("event=alert_evaluation_failed error=%r", str(exc))


def _measure(
    rule: AlertRule, s: UsageSummary | None, v: VerdictStats | None, stage: str | None
) -> tuple[float | None, int]:
    """The rule's value for one feature and the number of calls (or scores) it is taken over."""
    calls = 0 if s is None else s.calls
    if rule.metric == "cost_usd":
        return (0.0 if s is None else s.cost_usd), calls
    if rule.metric == "error_rate":
        return (None if s is None or not s.calls else s.errors / s.calls), calls
    if rule.metric == "p95_latency_ms":
        return (None if s is None else s.latency_p95_ms), calls
    if rule.metric == "guard_blocks":
        if stage is None:
            return float(0 if s is None else s.blocked), calls
        return float(0 if v is None else v.blocks), calls
    # eval_score: the mean over the scored verdicts
    return (None if v is None else v.mean_score), (0 if v is None else v.scored)


def _classify(rule: AlertRule, value: float | None, calls: int) -> Level:
    if value is None or calls < rule.min_calls:
        return "ok"

    def crossed(threshold: float | None) -> bool:
        if threshold is None:
            return False
        return value <= threshold if rule.lower_is_worse else value >= threshold

    if crossed(rule.alert):
        return "alert"
    return "warn" if crossed(rule.warn) else "ok"


def _message(rule: AlertRule, feature: str, level: Level, value: float | None) -> str:
    window = _human(rule.window)
    shown = "no data" if value is None else f"{value:.6g}"
    if level == "ok":
        return f"{feature}: {rule.metric} back to normal ({shown} over the last {window})"
    threshold = rule.alert if level == "alert" else rule.warn
    side = "below" if rule.lower_is_worse else "above"
    return (
        f"{feature}: {rule.metric} {shown} over the last {window} is {side} the {level} threshold {threshold}"
    )


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
