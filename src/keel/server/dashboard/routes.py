"""The dashboard's HTTP routes: the page, its script and style, and the JSON API the page draws from.

The page itself holds no data and needs no key; every ``/dashboard/api/`` route needs an admin
key (when keys are configured), sent by the page's script as ``Authorization: Bearer <key>``.
The script keeps the key in ``sessionStorage`` (this tab only, gone when it closes) and never in
a cookie, so no other site can make the browser send it: there is nothing to forge (no CSRF).
A strict Content-Security-Policy allows only the gateway's own script and style.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from keel.errors import InvalidRequest
from keel.monitor.dashboard_queries import DashboardQueries, Filters, queries_for
from keel.pipeline import Pipeline
from keel.server.dashboard.budgets import budget_status
from keel.server.dashboard.review_routes import mount_review
from keel.settings import KeyConfig

Authorize = Callable[[str | None], Awaitable[KeyConfig | None]]

_ASSETS = {
    "auth.js": "text/javascript; charset=utf-8",
    "review.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_RANGE = 400 * 86400.0
DEFAULT_RANGE = "24h"


def _static(name: str) -> bytes:
    return files("keel.server.dashboard").joinpath("static", name).read_bytes()


def _json(data: Any) -> Response:
    return Response(
        orjson.dumps(data),
        media_type="application/json",
        headers={"cache-control": "no-store", "x-content-type-options": "nosniff"},
    )


def parse_filters(request: Request, *, now: float | None = None) -> Filters:
    """The time range and filters from the query: ``range=24h`` (or ``since``/``until`` epoch
    seconds), ``feature``, ``model``, ``key``. InvalidRequest naming the parameter otherwise."""
    q = request.query_params
    now = time.time() if now is None else now
    until_text = q.get("until")
    until = _epoch(until_text, "until") if until_text else now
    if q.get("since"):
        since = _epoch(q["since"], "since")
        if q.get("range"):
            raise InvalidRequest("give either range or since, not both", param="range")
    else:
        text = (q.get("range") or DEFAULT_RANGE).strip().lower()
        m = _DURATION.fullmatch(text)
        if m is None:
            raise InvalidRequest(
                f"range {text!r}: expected a duration such as 15m, 1h, 24h, 7d or 4w", param="range"
            )
        since = until - float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if since >= until:
        raise InvalidRequest("the time range is empty: since must be before until", param="since")
    if until - since > MAX_RANGE:
        raise InvalidRequest("the time range is longer than 400 days", param="range")

    def opt(name: str) -> str | None:
        value = q.get(name, "").strip()
        if len(value) > 200:
            raise InvalidRequest(f"{name}: at most 200 characters", param=name)
        return value or None

    return Filters(since=since, until=until, feature=opt("feature"), model=opt("model"), key=opt("key"))


def _epoch(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(f"{name} {text!r}: expected epoch seconds", param=name)
    return value


def alert_status(pipeline: Pipeline, feature: str | None) -> list[dict[str, Any]]:
    """Each alert rule's level per feature (worst first), with the rule's thresholds and window."""
    rules = {r.name: r for r in pipeline.settings.alerts.rules}
    out = []
    for state in pipeline.runtime.monitoring.alert_states():
        if feature is not None and state.feature != feature:
            continue
        d = state.to_dict()
        rule = rules.get(state.rule)
        if rule is not None:
            d.update(
                warn=rule.warn,
                alert=rule.alert,
                window_seconds=rule.window,
                direction="below" if rule.lower_is_worse else "above",
            )
        out.append(d)
    return out


def mount_dashboard(app: FastAPI, pipeline: Pipeline, authorize: Authorize) -> None:
    """Add ``/dashboard`` and its API to ``app``; ``authorize`` checks a request's Authorization header."""
    pages = {name: _static(name) for name in ("index.html", "review.html")}
    assets = {name: _static(name) for name in _ASSETS}

    def page(name: str) -> Response:
        return Response(pages[name], media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    opened: dict[int, DashboardQueries] = {}  # one set of read connections per ledger

    def queries() -> DashboardQueries | None:
        writer = pipeline.runtime.writer
        if writer is None:
            return None
        q = opened.get(id(writer.ledger))
        if q is None:
            q = opened[id(writer.ledger)] = queries_for(writer.ledger)
        return q

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_page() -> Response:
        return page("index.html")

    @app.get("/dashboard/assets/{name}", include_in_schema=False)
    async def dashboard_asset(name: str) -> Response:
        if name not in assets:
            return Response(b"not found", status_code=404, media_type="text/plain")
        return Response(assets[name], media_type=_ASSETS[name], headers=_PAGE_HEADERS)

    @app.get("/dashboard/api/overview", summary="Dashboard: usage, latency, cache, routes, verdicts, budgets")
    async def dashboard_overview(request: Request) -> Response:
        await authorize(request.headers.get("authorization"))
        f = parse_filters(request)
        q = queries()
        data: dict[str, Any] = {"ledger": q is not None, "features": sorted(pipeline.features)}
        if q is not None:
            data.update(await asyncio.to_thread(q.overview, f))
        runtime = pipeline.runtime
        seen = [runtime.keys.by_name(name) for name in data.get("options", {}).get("keys", [])]
        budgets = await budget_status(
            pipeline.settings, runtime.state.budgets, keys=[k for k in seen if k is not None]
        )
        wanted = {"feature": f.feature, "key": f.key}  # a filter shows its own budgets only
        data["budgets"] = [b for b in budgets if wanted[b["scope"]] in (None, b["name"])]
        data["alerts"] = alert_status(pipeline, f.feature)
        return _json(data)

    mount_review(app, pipeline, authorize, page)

    @app.get("/dashboard/api/calls", summary="Dashboard: the newest calls (no content, no keys)")
    async def dashboard_calls(request: Request) -> Response:
        await authorize(request.headers.get("authorization"))
        f = parse_filters(request)
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 500:
            raise InvalidRequest("limit: expected a whole number from 1 to 500", param="limit")
        q = queries()
        calls = [] if q is None else await asyncio.to_thread(q.recent, f, limit)
        return _json({"ledger": q is not None, "calls": calls})
