"""Retrieval on the gateway: the documents a request brings, and the sources and citations an answer
carries back (the ``keel`` body field, ``X-Keel-Sources`` and ``X-Keel-Citations``).

- ``keel.sources``: every source the prompt held, ``{"n", "id", "source", ...}``, numbered as the
  model saw them; ``X-Keel-Sources`` lists them as ``1=docs/a.md#0; 2=docs/b.md#3`` (a stream
  sends it too: the sources are known before the first token).
- ``keel.citations``: the sources the answer cites with ``[n]``, in order of first citation;
  ``X-Keel-Citations`` in the same form. A stream's headers go before the answer exists, so a
  stream carries both in a closing chunk instead (``stream_sources``).
"""

from __future__ import annotations

from typing import Any

from keel.call import Call, Result
from keel.context.citations import Citation, Source, citations_header, cite, sources_of
from keel.context.settings import check_filters
from keel.errors import InvalidRequest
from keel.llm.providers.base import Chunk
from keel.settings import FeatureConfig


def attach_documents(call: Call, feature: FeatureConfig, documents: Any) -> None:
    """Put the request's ``keel.documents`` on the call; 400 when its feature does no retrieval."""
    if documents is None:
        return
    if feature.retrieval is None:
        raise InvalidRequest(
            f"keel.documents: feature {feature.name!r} does no retrieval (configure retrieval: for it)",
            param="keel.documents",
        )
    call.chunks = list(documents)


def attach_filters(call: Call, feature: FeatureConfig, filters: Any) -> None:
    """Put the request's ``keel.filters`` on the call; 400 naming the problem. They are added to
    the feature's own filters, which always hold (on a key both name, the feature's value wins):
    a caller can narrow a search, never widen it."""
    if filters is None:
        return
    if feature.retrieval is None or feature.retrieval.collection is None:
        raise InvalidRequest(
            f"keel.filters: feature {feature.name!r} retrieves from no collection", param="keel.filters"
        )
    for key, value in filters.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int | float | bool) for v in values):
            raise InvalidRequest(
                f"keel.filters.{key}: expected a string, number or boolean, or a list of them",
                param="keel.filters",
            )
    try:
        call.filters = check_filters(dict(filters))
    except ValueError as exc:
        raise InvalidRequest(f"keel.filters: {exc}", param="keel.filters") from None


def _as_citation(s: Source) -> Citation:
    page = s.chunk.metadata.get("page")
    return Citation(
        s.n,
        s.id,
        s.chunk.source,
        s.chunk.title,
        s.chunk.heading,
        s.collection,
        page if isinstance(page, int) else None,
    )


def source_fields(result: Result) -> dict[str, Any]:
    """``sources`` and ``citations`` for the response's ``keel`` field (nothing without sources)."""
    if not result.sources:
        return {}
    return {
        "sources": [_as_citation(s).to_dict() for s in result.sources],
        "citations": [c.to_dict() for c in result.citations],
    }


def source_headers(call: Call, *, answered: bool) -> dict[str, str]:
    """``x-keel-sources`` (and, once ``answered``, ``x-keel-citations``) for a call with sources."""
    sources = sources_of(call.chunks)
    if not sources:
        return {}
    h = {"x-keel-sources": citations_header([_as_citation(s) for s in sources])}
    if answered:
        h["x-keel-citations"] = citations_header(cite(call.text, sources))
    return h


def stream_sources(call: Call, last: Chunk | None) -> Chunk | None:
    """The chunk that closes a stream with sources: no choices, and a ``keel`` field holding the
    call id, the sources and the citations of the finished answer (None for a call without sources)."""
    sources = sources_of(call.chunks)
    if not sources:
        return None
    last = last or {}
    return {
        "id": last.get("id") or f"chatcmpl-{call.id}",
        "object": "chat.completion.chunk",
        "created": last.get("created") or int(call.started_at),
        "model": last.get("model") or call.model or "",
        "choices": [],
        "keel": {
            "call_id": call.id,
            "sources": [_as_citation(s).to_dict() for s in sources],
            "citations": [c.to_dict() for c in cite(call.text, sources)],
        },
    }
