"""The review queue's store, on SQLite and PostgreSQL: items in, labels on, JSONL out; bad labels
refused with the field named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.pg_schema import fresh_schema

from keel.errors import InvalidRequest
from keel.evals.review import ReviewItem, ReviewItemNotFound, ReviewQueue, ReviewStore, parse_label
from keel.evals.review_sqlite import SQLiteReviewStore
from keel.evals.suite import Case


def _item(n: int, feature: str = "support") -> ReviewItem:
    return ReviewItem(
        call_id=f"call-{n}",
        ts=1000.0 + n,
        feature=feature,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {n}"}],
        answer=f"answer {n}",
        model="large",
        variables={"product": "Acme"} if n == 1 else {},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReviewStore]:
    if request.param == "sqlite":
        yield SQLiteReviewStore(tmp_path / "keel.db")
        return
    from keel.evals.review_postgres import PostgresReviewStore

    with fresh_schema() as url:
        s = PostgresReviewStore(url)
        yield s
        s.close()


@pytest.fixture
def store(empty_store: ReviewStore) -> ReviewStore:
    assert empty_store.add([_item(1), _item(2), _item(3), _item(4, "extract")]) == 4
    return empty_store


def test_items_wait_oldest_first_and_a_call_is_queued_once(store: ReviewStore) -> None:
    assert store.add([_item(1)]) == 0
    pending = store.items(status="pending", feature="support")
    assert [i["call_id"] for i in pending] == ["call-1", "call-2", "call-3"]
    assert "messages" not in pending[0]  # the list carries no content
    assert store.counts() == {"pending": 4, "reviewed": 0, "passed": 0, "failed": 0}
    assert store.features() == ["extract", "support"]


def test_labels_are_kept_and_replace_an_earlier_review(store: ReviewStore) -> None:
    first = store.items()[0]["id"]
    store.label(first, verdict="fail", score=0.2, note="wrong city", reviewer="ops", now=5.0)
    item = store.label(first, verdict="fail", score=0.1, corrected="Lisbon", reviewer="ana", now=6.0)
    assert (item["status"], item["verdict"], item["score"], item["note"]) == ("reviewed", "fail", 0.1, None)
    assert (item["corrected"], item["reviewer"], item["reviewed_at"]) == ("Lisbon", "ana", 6.0)
    assert item["messages"][1] == {"role": "user", "content": "question 1"}
    assert store.counts(feature="support") == {"pending": 2, "reviewed": 1, "passed": 0, "failed": 1}
    with pytest.raises(ReviewItemNotFound):
        store.label(999, verdict="pass")
    with pytest.raises(ReviewItemNotFound):
        store.get(999)


def test_export_as_eval_cases_expects_the_correction_or_the_passed_answer(store: ReviewStore) -> None:
    ids = [i["id"] for i in store.items(feature="support")]
    store.label(ids[0], verdict="fail", corrected="the right answer")
    store.label(ids[1], verdict="pass", score=1.0)
    store.label(ids[2], verdict="fail", note="no idea what is right")  # nothing to expect: left out
    cases = list(store.export(feature="support"))
    assert [c["expected"] for c in cases] == ["the right answer", "answer 2"]
    assert cases[0]["messages"] == [
        {"role": "user", "content": "question 1"}
    ]  # the prompt adds its own system
    assert cases[0]["vars"] == {"product": "Acme"}
    for c in cases:
        Case.model_validate(json.loads(json.dumps(c)))  # an eval suite reads them as they are
    full = list(store.export(fmt="full"))
    assert [f["verdict"] for f in full] == ["fail", "pass", "fail"]
    assert full[2]["note"] == "no idea what is right"


def test_the_queue_writes_off_the_caller_and_stops_sampling_when_full(empty_store: ReviewStore) -> None:
    store = empty_store
    queue = ReviewQueue(store, max_pending=2, interval=60)
    assert queue.accepting
    queue.offer(_item(1))
    queue.offer(_item(2))
    assert not queue.accepting
    assert store.pending() == 0  # not written yet
    queue.flush()
    assert store.pending() == 2
    queue.close()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"verdict": "maybe"}, "verdict"),
        ({}, "verdict"),
        ({"verdict": "pass", "score": 1.5}, "score"),
        ({"verdict": "pass", "score": True}, "score"),
        ({"verdict": "pass", "note": 3}, "note"),
        ({"verdict": "pass", "grade": "A"}, "grade"),
    ],
)
def test_bad_labels_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_label(body)
    assert err.value.param == param


@pytest.mark.unit
def test_a_label_is_trimmed_and_empty_text_is_none() -> None:
    assert parse_label({"verdict": "pass", "score": 1, "note": "  ", "corrected": " x "}) == {
        "verdict": "pass",
        "score": 1.0,
        "note": None,
        "corrected": "x",
    }
