"""The review queue's routes: the page, the items, labelling one, and the JSONL export (admin key)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, cast

import orjson
from fastapi import FastAPI, Path, Request
from fastapi.responses import Response

from keel.errors import InvalidRequest
from keel.evals.review import STATUSES, ExportFormat, ReviewStore, open_review_store, parse_label
from keel.pipeline import Pipeline
from keel.settings import KeyConfig

Authorize = Callable[[str | None], Awaitable[KeyConfig | None]]
# A review item's id: SQLite's INTEGER range (a larger number is a 400, not an overflow inside the store).
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _json(data: Any) -> Response:
    return Response(
        orjson.dumps(data),
        media_type="application/json",
        headers={"cache-control": "no-store", "x-content-type-options": "nosniff"},
    )


def mount_review(
    app: FastAPI, pipeline: Pipeline, authorize: Authorize, page: Callable[[str], Response]
) -> None:
    """Add ``/dashboard/review`` and ``/dashboard/api/review/...`` to ``app``."""
    opened: list[ReviewStore] = []

    def store() -> ReviewStore:
        # The runtime's queue when sampling is on; else the same file, for what was sampled before.
        if not opened:
            queue = pipeline.runtime.review
            opened.append(queue.store if queue is not None else open_review_store(pipeline.settings))
        return opened[0]

    def feature_param(request: Request) -> str | None:
        value = request.query_params.get("feature", "").strip()
        return value or None

    @app.get("/dashboard/review", include_in_schema=False)
    async def review_page() -> Response:
        return page("review.html")

    @app.get("/dashboard/api/review/items", summary="Review queue: items waiting or reviewed, and counts")
    async def review_items(request: Request) -> Response:
        await authorize(request.headers.get("authorization"))
        status = request.query_params.get("status", "pending")
        if status not in STATUSES:
            raise InvalidRequest(f"status: expected one of {', '.join(STATUSES)}", param="status")
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit: expected a whole number from 1 to 1000", param="limit")
        feature = feature_param(request)
        s = store()

        def read() -> dict[str, Any]:
            return {
                "items": s.items(status=status, feature=feature, limit=limit),
                "counts": s.counts(feature=feature),
                "features": s.features(),
            }

        data = await asyncio.to_thread(read)
        review = pipeline.settings.review
        data["sampling"] = {"sample": review.sample, "features": review.features}
        return _json(data)

    @app.get("/dashboard/api/review/items/{item_id}", summary="Review queue: one item with its content")
    async def review_item(item_id: ItemId, request: Request) -> Response:
        await authorize(request.headers.get("authorization"))
        return _json(await asyncio.to_thread(store().get, item_id))

    @app.post("/dashboard/api/review/items/{item_id}", summary="Review queue: label one item")
    async def review_label(item_id: ItemId, request: Request) -> Response:
        key = await authorize(request.headers.get("authorization"))
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body is not valid JSON") from None
        label = parse_label(body)
        reviewer = key.name if key is not None else None
        item = await asyncio.to_thread(lambda: store().label(item_id, reviewer=reviewer, **label))
        return _json(item)

    @app.get("/dashboard/api/review/export", summary="Review queue: reviewed items as JSONL")
    async def review_export(request: Request) -> Response:
        await authorize(request.headers.get("authorization"))
        fmt = request.query_params.get("format", "cases")
        if fmt not in ("cases", "full"):
            raise InvalidRequest("format: expected cases or full", param="format")
        feature = feature_param(request)
        items = await asyncio.to_thread(
            lambda: list(store().export(feature=feature, fmt=cast(ExportFormat, fmt)))
        )
        body = b"".join(orjson.dumps(i) + b"\n" for i in items)
        name = f"review-{re.sub(r'[^A-Za-z0-9_.-]', '_', feature or 'all')}-{fmt}.jsonl"
        return Response(
            body,
            media_type="application/x-ndjson",
            headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"},
        )
