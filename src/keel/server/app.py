"""The gateway application: OpenAI-compatible routes over one Pipeline."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

import keel
from keel.config import Settings, load_config
from keel.context.build import build_embedder
from keel.errors import KeelError, UnknownFeature
from keel.pipeline import Pipeline
from keel.server.auth import KeyRing
from keel.server.chat import ChatEndpoint
from keel.server.dashboard import mount_dashboard
from keel.server.embeddings import EmbeddingsEndpoint
from keel.server.errors import error_response, install_error_handlers, internal_error
from keel.server.protocol import request_schema

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


class Gateway:
    """The ASGI application uvicorn serves.

    Chat completions, the hot path, go straight to their handler; everything else (models,
    health, metrics, the OpenAPI document, lifespan) goes through the FastAPI app in ``api``.
    FastAPI's routing and middleware stack cost more CPU per request than the whole pipeline.
    """

    def __init__(self, api: FastAPI, chat: ChatEndpoint) -> None:
        self.api = api
        self.chat = chat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in CHAT_PATHS:
            await self.api(scope, receive, send)
            return
        try:
            response = await self.chat(Request(scope, receive))
        except Exception as exc:  # noqa: BLE001 - the hot path's share of the one error-to-response place
            response = internal_error(scope["path"], exc)
        await response(scope, receive, send)


def create_app(settings: Settings | None = None, *, pipeline: Pipeline | None = None) -> Gateway:
    """The gateway for ``settings`` (or a ready ``pipeline``); models load and the ledger opens at startup."""
    if pipeline is None:
        pipeline = Pipeline(settings if settings is not None else load_config())
    s = pipeline.settings
    keyring = KeyRing(pipeline.runtime.keys)
    # POST /v1/embeddings uses the pipeline's embedder, or its own (a local model loads on first use).
    own_embedder = pipeline.runtime.embedder is None
    embedder = pipeline.runtime.embedder or build_embedder(s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pipeline.start()
        # Everything built so far (modules, settings, models) lives as long as the process. A full
        # collection walks every tracked object; freezing them keeps those walks (tens of ms at
        # the tail under load) proportional to per-request garbage only.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if own_embedder:
                await embedder.aclose()
            await pipeline.aclose()

    app = FastAPI(
        title="keel gateway", version=keel.__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.pipeline = pipeline
    install_error_handlers(app)

    chat = ChatEndpoint(pipeline, keyring, s.server.max_body_bytes)
    body_schema, components = request_schema()
    # The `model` field names a feature of this gateway: say which.
    body_schema["properties"]["model"]["enum"] = sorted(pipeline.features)
    body_doc = {"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}}
    for path in ("/v1/chat/completions", "/chat/completions"):
        app.add_api_route(
            path,
            chat,
            methods=["POST"],
            openapi_extra=body_doc,
            include_in_schema=path.startswith("/v1"),
            summary="Create a chat completion (OpenAI-compatible)",
        )

    embeddings = EmbeddingsEndpoint(embedder, keyring, s.server.max_body_bytes, s.embeddings.model)
    for path in ("/v1/embeddings", "/embeddings"):
        app.add_api_route(
            path,
            embeddings,
            methods=["POST"],
            include_in_schema=path.startswith("/v1"),
            summary="Create embeddings (OpenAI-compatible) with the configured embedder",
        )

    def _model(name: str) -> dict[str, Any]:
        f = pipeline.features[name]
        info: dict[str, Any] = {
            "model": f.model.name,
            "provider": f.model.provider,
            "description": f.config.description,
        }
        if f.config.tools is not None:  # what a client may offer, and which calls need confirming
            info["tools"] = [t.model_dump() for t in f.config.tools]
        return {"id": name, "object": "model", "created": 0, "owned_by": "keel", "keel": info}

    @app.get("/v1/models", summary="List the features this key may use (as OpenAI models)")
    async def list_models(request: Request) -> Response:
        try:
            key = await keyring.authenticate(request.headers.get("authorization"))
        except KeelError as exc:
            return error_response(exc)
        data = [_model(n) for n, f in pipeline.features.items() if keyring.may_use(key, f.config)]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")

    @app.get("/v1/models/{model_id}", summary="Describe one feature")
    async def get_model(model_id: str, request: Request) -> Response:
        try:
            key = await keyring.authenticate(request.headers.get("authorization"))
            feature = pipeline.features.get(model_id)
            if feature is None or not keyring.may_use(key, feature.config):
                raise UnknownFeature(f"unknown feature {model_id!r}", param="model")
        except KeelError as exc:
            return error_response(exc)
        return Response(orjson.dumps(_model(model_id)), media_type="application/json")

    @app.get("/metrics", summary="Prometheus metrics (an admin key is needed when keys are configured)")
    async def metrics(request: Request) -> Response:
        try:
            await keyring.require_admin(request.headers.get("authorization"))
        except KeelError as exc:
            return error_response(exc)
        runtime = pipeline.runtime
        runtime.metrics.set_circuits(await runtime.health())
        await runtime.metrics.refresh()  # budgets left, ledger writer, alert levels
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/healthz", summary="Liveness, and each model's circuit state per deployment")
    async def healthz() -> Response:
        models = await pipeline.runtime.health()
        degraded = any(m.get("status") in ("degraded", "down") for m in models.values())
        body = {
            "status": "degraded" if degraded else "ok",
            "version": keel.__version__,
            "features": sorted(pipeline.features),
            "models": models,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    mount_dashboard(app, pipeline, keyring.require_admin)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the request body's component schemas and the Bearer-key scheme."""
        doc = default_openapi()
        doc.setdefault("components", {}).setdefault("schemas", {}).update(components)
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, methods in doc.get("paths", {}).items():
            for op in methods.values():  # a key is needed once keys exist; health checks never need one
                op["security"] = [] if path == "/healthz" else [{"bearer": []}]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    return Gateway(app, chat)
