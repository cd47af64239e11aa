"""``POST /v1/embeddings``: OpenAI's embeddings API over keel's configured embedder.

Request: ``input`` (a string or a list of up to 2048 non-empty strings), ``model`` (any name:
the answer says which model embedded), ``encoding_format`` (``float`` or ``base64``). Token
arrays as input and ``dimensions`` are refused with 400: the embedder has one size. Any key the
gateway accepts may embed. Usage counts the inputs' tokens (o200k_base).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from keel.context.embed import Embedder
from keel.errors import InvalidRequest, KeelError
from keel.llm.tokens import count_tokens
from keel.server.auth import KeyRing
from keel.server.chat import read_body
from keel.server.errors import error_response

MAX_INPUTS = 2048  # as OpenAI's endpoint
MAX_INPUT_TOKENS = 8192
_FIELDS = frozenset({"input", "model", "encoding_format", "dimensions", "user"})


def parse_embeddings_request(raw: bytes) -> tuple[list[str], str]:
    """The texts to embed and the encoding format; InvalidRequest names the offending field."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown parameter", param=unknown[0])
    if body.get("dimensions") is not None:
        raise InvalidRequest(
            "dimensions: not supported; this gateway's embedder has one output size", param="dimensions"
        )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("model: expected a string", param="model")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise InvalidRequest("encoding_format: expected 'float' or 'base64'", param="encoding_format")
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise InvalidRequest("input: expected a string or a non-empty list of strings", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"input: at most {MAX_INPUTS} inputs per request", param="input")
    for i, text in enumerate(texts):
        where = "input" if isinstance(value, str) else f"input[{i}]"
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}: expected a string (token arrays are not supported)", param=where)
        if not text:
            raise InvalidRequest(f"{where}: must not be empty", param=where)
    return texts, fmt


class EmbeddingsEndpoint:
    """The embeddings handler, bound to one embedder, key ring and body limit."""

    def __init__(self, embedder: Embedder, keyring: KeyRing, max_body_bytes: int, model: str) -> None:
        self.embedder = embedder
        self.keyring = keyring
        self.max_body_bytes = max_body_bytes
        self.model = model

    async def __call__(self, request: Request) -> Response:
        """Embed the inputs; every refusal is OpenAI error JSON."""
        try:
            await self.keyring.authenticate(request.headers.get("authorization"))
            texts, fmt = parse_embeddings_request(await read_body(request, self.max_body_bytes))
            tokens = [count_tokens(t) for t in texts]
            for i, n in enumerate(tokens):
                if n > MAX_INPUT_TOKENS:
                    where = f"input[{i}]" if len(texts) > 1 else "input"
                    raise InvalidRequest(
                        f"{where}: {n} tokens; at most {MAX_INPUT_TOKENS} per input", param=where
                    )
            rows = await self.embedder.embed(texts)
        except KeelError as exc:
            return error_response(exc)
        data: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            vec: Any = row if fmt == "float" else base64.b64encode(row.astype("<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": vec})
        total = sum(tokens)
        body = {
            "object": "list",
            "data": data,
            "model": self.model,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
