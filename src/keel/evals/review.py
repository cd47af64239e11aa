"""The human review queue: sampled calls with their messages and answer, labelled by people.

A reviewer marks each item pass or fail, with an optional score (0-1), a note and a corrected
answer. Reviewed items export as JSONL: either as eval-suite cases (``id``, ``messages``,
``vars``, ``expected``: the corrected answer, or the answer itself when it passed), ready for
``dataset:`` in a suite, or in full with the labels.

The queue is the table ``review_items`` in the SQLite file at ``storage.path`` (``review_sqlite``),
or in PostgreSQL when ``review.store`` is a URL, so replicas share one queue (``review_postgres``).
Items arrive through ``ReviewQueue``: the Monitoring layer appends to an in-memory queue and a
daemon thread writes them in batches. Eval runs' outputs join the queue with ``items_from_eval``
(``keel review add-eval``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import ConfigError, InvalidRequest, KeelError

if TYPE_CHECKING:
    from keel.evals.store import Run
    from keel.evals.suite import Suite
    from keel.settings import Settings

log = logging.getLogger("keel.review")

Status = Literal["pending", "reviewed", "all"]
Verdict = Literal["pass", "fail"]
ExportFormat = Literal["cases", "full"]
STATUSES: tuple[Status, ...] = ("pending", "reviewed", "all")
MAX_TEXT = 100_000  # characters of a note or a corrected answer


class ReviewItemNotFound(KeelError):
    """No review item has this id (404)."""

    status = 404
    type = "invalid_request_error"
    code = "review_item_not_found"


@dataclass(slots=True)
class ReviewItem:
    """One sampled call as the queue keeps it: what was asked (as the model saw it) and answered."""

    call_id: str
    ts: float
    feature: str
    messages: list[dict[str, Any]]
    answer: str | None
    key_id: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    source: str = "production"


_SUMMARY = "id, call_id, ts, feature, key_id, model, prompt_version, source, status, verdict, score, reviewer"
_FULL = f"{_SUMMARY}, messages, variables, answer, note, corrected, reviewed_at"


class ReviewStore(ABC):
    """The review queue's storage: SQL written once with ``?`` placeholders; a backend runs it.

    Every backend is safe to use from several threads and passes ``tests/evals/test_review_store.py``.
    """

    where: str = "review queue"

    @abstractmethod
    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a query, as dicts by column name."""

    @abstractmethod
    def _change(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; how many rows it changed."""

    @abstractmethod
    def _insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run an ``INSERT ... ON CONFLICT DO NOTHING`` for each row in one transaction; how many went in."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; idempotent."""

    def add(self, items: Sequence[ReviewItem]) -> int:
        """Store ``items`` in one transaction (a call already queued is skipped); how many were new."""
        rows = [
            (
                i.call_id, i.ts, i.feature, i.key_id, i.model, i.prompt_version, i.source,
                json.dumps(i.messages, default=str), json.dumps(i.variables, default=str), i.answer,
            )
            for i in items
        ]  # fmt: skip
        return self._insert_new(
            "INSERT INTO review_items (call_id, ts, feature, key_id, model, prompt_version, source,"
            " messages, variables, answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id) DO NOTHING",
            rows,
        )

    def items(
        self, *, status: Status = "pending", feature: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Items without their content, oldest pending first (newest first when reviewed or all)."""
        where, params = _where(status, feature)
        order = "ts ASC" if status == "pending" else "ts DESC"
        return self._select(
            f"SELECT {_SUMMARY} FROM review_items{where} ORDER BY {order}, id LIMIT ?", (*params, limit)
        )

    def counts(self, *, feature: str | None = None) -> dict[str, int]:
        """How many items are pending, reviewed, passed and failed."""
        where, params = _where("all", feature)
        (row,) = self._select(
            "SELECT SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS pending,"
            " SUM(CASE WHEN status = 'reviewed' THEN 1 ELSE 0 END) AS reviewed,"
            " SUM(CASE WHEN verdict = 'pass' THEN 1 ELSE 0 END) AS passed,"
            f" SUM(CASE WHEN verdict = 'fail' THEN 1 ELSE 0 END) AS failed FROM review_items{where}",
            params,
        )
        return {name: int(v or 0) for name, v in row.items()}

    def features(self) -> list[str]:
        """Features that have items."""
        return [
            r["feature"] for r in self._select("SELECT DISTINCT feature FROM review_items ORDER BY feature")
        ]

    def get(self, item_id: int) -> dict[str, Any]:
        """One item with its messages, answer and labels; ReviewItemNotFound otherwise."""
        rows = self._select(f"SELECT {_FULL} FROM review_items WHERE id = ?", (item_id,))
        if not rows:
            raise ReviewItemNotFound(f"no review item {item_id}")
        return _full(rows[0])

    def label(
        self,
        item_id: int,
        *,
        verdict: Verdict,
        score: float | None = None,
        note: str | None = None,
        corrected: str | None = None,
        reviewer: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Record a review (a second review replaces the first); the item as it is now."""
        now = time.time() if now is None else now
        changed = self._change(
            "UPDATE review_items SET status = 'reviewed', verdict = ?, score = ?, note = ?,"
            " corrected = ?, reviewer = ?, reviewed_at = ? WHERE id = ?",
            (verdict, score, note, corrected, reviewer, now, item_id),
        )
        if changed == 0:
            raise ReviewItemNotFound(f"no review item {item_id}")
        return self.get(item_id)

    def export(self, *, feature: str | None = None, fmt: ExportFormat = "cases") -> Iterator[dict[str, Any]]:
        """Reviewed items, oldest first: as eval cases (only those with an expected answer) or in full."""
        where, params = _where("reviewed", feature)
        for row in self._select(f"SELECT {_FULL} FROM review_items{where} ORDER BY ts, id", params):
            item = _full(row)
            if fmt == "full":
                yield item
                continue
            expected = item["corrected"] if item["corrected"] else None
            if expected is None and item["verdict"] == "pass":
                expected = item["answer"]
            if expected is None:
                continue  # failed and not corrected: nothing to expect
            case: dict[str, Any] = {"id": f"review-{item['id']}", "messages": _asked(item["messages"])}
            if item["variables"]:
                case["vars"] = item["variables"]
            case["expected"] = expected
            yield case

    def pending(self) -> int:
        """How many items wait for review."""
        return int(self._select("SELECT COUNT(*) AS n FROM review_items WHERE status = 'pending'")[0]["n"])


def _asked(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation a case replays: without the system messages the feature's prompt adds again."""
    return [m for m in messages if m.get("role") not in ("system", "developer")] or messages


def _where(status: Status, feature: str | None) -> tuple[str, tuple[Any, ...]]:
    parts: list[str] = []
    params: list[Any] = []
    if status != "all":
        parts.append("status = ?")
        params.append(status)
    if feature is not None:
        parts.append("feature = ?")
        params.append(feature)
    return (" WHERE " + " AND ".join(parts) if parts else ""), tuple(params)


def _full(row: dict[str, Any]) -> dict[str, Any]:
    item = dict(row)
    item["messages"] = json.loads(item["messages"])
    item["variables"] = json.loads(item["variables"])
    return item


def parse_label(body: Any) -> dict[str, Any]:
    """A review from a request body: ``verdict`` pass|fail, ``score`` 0..1, ``note``, ``corrected``."""
    if not isinstance(body, dict):
        raise InvalidRequest("expected a JSON object with 'verdict' (pass or fail)")
    unknown = set(body) - {"verdict", "score", "note", "corrected"}
    if unknown:
        raise InvalidRequest(f"unknown field {sorted(unknown)[0]!r}", param=sorted(unknown)[0])
    verdict = body.get("verdict")
    if verdict not in ("pass", "fail"):
        raise InvalidRequest("verdict: expected 'pass' or 'fail'", param="verdict")
    score = body.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1
    ):
        raise InvalidRequest("score: expected a number from 0 to 1, or null", param="score")
    out: dict[str, Any] = {"verdict": verdict, "score": None if score is None else float(score)}
    for name in ("note", "corrected"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{name}: expected text or null", param=name)
        if value is not None and len(value) > MAX_TEXT:
            raise InvalidRequest(f"{name}: at most {MAX_TEXT} characters", param=name)
        out[name] = value.strip() or None if value is not None else None
    return out


class ReviewQueue:
    """Items sampled on the request path, written to the store by a daemon thread (never on the path).

    ``offer()`` is a deque append. Every ``interval`` seconds the thread writes what waits and
    refreshes the pending count that ``accepting`` compares with ``max_pending``.
    """

    def __init__(self, store: ReviewStore, *, max_pending: int = 1000, interval: float = 0.5) -> None:
        self.store = store
        self.max_pending = max_pending
        self.interval = interval
        self._queue: deque[ReviewItem] = deque(maxlen=max_pending)
        self._pending = store.pending()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-review-writer", daemon=True)
        self._thread.start()

    @property
    def accepting(self) -> bool:
        """False while the queue holds ``max_pending`` items waiting for review."""
        return self._pending + len(self._queue) < self.max_pending

    def offer(self, item: ReviewItem) -> None:
        """Queue ``item`` for the next write."""
        self._queue.append(item)

    def flush(self) -> None:
        """Write every item offered so far (in the caller's thread)."""
        items = [self._queue.popleft() for _ in range(len(self._queue))]
        try:
            if items:
                self.store.add(items)
            self._pending = self.store.pending()
        except ConfigError as exc:
            log.warning("event=review_write_failed items=%d error=%r", len(items), str(exc))

    def close(self) -> None:
        """Stop the thread and write what is left; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.flush()
        self.store.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


def items_from_eval(run: Run, suite: Suite, *, failed_only: bool = False) -> list[ReviewItem]:
    """An eval run's outputs as review items, with each case's messages and variables from ``suite``.

    Cases of the run that the suite no longer has are skipped. The item's ``source`` names the run.
    """
    cases = {c.id: c for c in suite.cases}
    items = []
    for result in run.results:
        case = cases.get(result.case_id)
        if case is None or (failed_only and result.passed) or result.error is not None:
            continue
        items.append(
            ReviewItem(
                call_id=f"eval:{run.id}:{case.id}",
                ts=run.created_at,
                feature=run.feature,
                messages=case.chat(),
                answer=result.output,
                model=run.model,
                prompt_version=run.prompt,
                variables={**suite.defaults.vars, **case.vars},
                source=f"eval {run.suite} {run.id[:8]}",
            )
        )
    return items


def open_review_store(settings: Settings) -> ReviewStore:
    """The store ``review.store`` names: PostgreSQL for a ``postgresql://`` URL, else a SQLite file
    (a path relative to the config file; by default keel's state file, ``storage.path``)."""
    target = settings.review.store
    if target is not None and target.startswith(("postgresql://", "postgres://")):
        from keel.evals.review_postgres import PostgresReviewStore  # psycopg loads only when used

        return PostgresReviewStore(target)
    from keel.evals.review_sqlite import SQLiteReviewStore

    return SQLiteReviewStore(settings.db_path if target is None else settings.resolve(Path(target)))


def open_review_queue(settings: Settings) -> ReviewQueue | None:
    """The queue sampled calls go to, when ``review.sample`` is above 0 (else None: nothing sampled)."""
    if settings.review.sample <= 0:
        return None
    return ReviewQueue(open_review_store(settings), max_pending=settings.review.max_pending)
