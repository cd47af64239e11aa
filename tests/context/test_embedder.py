"""Embedders: unit rows per text from the local model, an HTTP endpoint, or the hashing fake."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from keel.context import local_embed
from keel.context.build import build_embedder
from keel.context.embed import HashEmbedder, HTTPEmbedder
from keel.context.local_embed import LocalEmbedder
from keel.errors import ConfigError, ProviderUnavailable, UpstreamConnectionError, UpstreamStatusError
from keel.settings import EmbeddingsConfig, Settings
from keel.testing import FakeUpstream
from keel.testing.fake_content import embedding

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def go() -> T:
        return await coro

    return asyncio.run(go())


def settings(**embeddings: Any) -> Settings:
    return Settings(models=[], features=[], embeddings=EmbeddingsConfig(**embeddings), source="keel.yaml")


# -- the fake ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_hashing_fake_gives_unit_rows_that_reflect_shared_words() -> None:
    rows = run(HashEmbedder().embed(["where is my parcel", "Where is my parcel?", "reset my password"]))
    assert rows.dtype == np.float32 and rows.shape == (3, 256)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert rows[0] @ rows[1] == pytest.approx(1.0) and abs(rows[0] @ rows[2]) < 0.6


# -- from configuration -----------------------------------------------------------------------------


@pytest.mark.unit
def test_the_default_configuration_builds_the_packaged_local_model() -> None:
    assert isinstance(build_embedder(settings()), LocalEmbedder)


@pytest.mark.unit
def test_an_http_endpoint_needs_its_key_variable_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_TEST_EMBED_KEY", raising=False)
    config = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "KEEL_TEST_EMBED_KEY"}
    with pytest.raises(ConfigError, match=r"keel.yaml: embeddings.api_key_env: .*KEEL_TEST_EMBED_KEY"):
        build_embedder(settings(**config))
    monkeypatch.setenv("KEEL_TEST_EMBED_KEY", "sk-test")
    assert isinstance(build_embedder(settings(**config)), HTTPEmbedder)


@pytest.mark.unit
def test_a_local_model_that_is_not_on_disk_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"embeddings.model: 'bge-small'.*nothing is downloaded"):
        build_embedder(settings(model="bge-small"))
    assert isinstance(build_embedder(settings(model=str(tmp_path))), LocalEmbedder)


# -- HTTP -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(embedding_dim=48) as server:
        yield server


@pytest.mark.integration
def test_http_rows_are_the_endpoints_vectors_in_order(fake: FakeUpstream) -> None:
    async def go() -> np.ndarray:
        embedder = HTTPEmbedder(fake.base_url, "text-embedding-3-small")
        try:
            return await embedder.embed(["first", "second", "third"])
        finally:
            await embedder.aclose()

    rows = run(go())
    assert rows.dtype == np.float32 and rows.shape == (3, 48)
    for row, t in zip(rows, ["first", "second", "third"], strict=True):
        assert np.allclose(row, embedding(t, 48), atol=1e-6)


@pytest.mark.integration
def test_concurrent_http_calls_share_requests(fake: FakeUpstream) -> None:
    fake.reset()

    async def go() -> list[np.ndarray]:
        embedder = HTTPEmbedder(fake.base_url, "m", batch_size=16, batch_wait_ms=20, concurrency=1)
        try:
            return await asyncio.gather(*(embedder.embed([f"text {i}"]) for i in range(32)))
        finally:
            await embedder.aclose()

    rows = run(go())
    assert len(rows) == 32 and all(r.shape == (1, 48) for r in rows)
    assert fake.stats()["paths"]["/v1/embeddings"] == 2  # 32 texts in batches of 16


@pytest.mark.integration
def test_http_errors_are_upstream_errors(fake: FakeUpstream) -> None:
    async def go(url: str) -> None:
        embedder = HTTPEmbedder(url, "m", batch_wait_ms=0)
        try:
            await embedder.embed(["x"])
        finally:
            await embedder.aclose()

    fake.configure(error_rate=1.0, error_status=503)
    try:
        with pytest.raises(UpstreamStatusError) as info:
            run(go(fake.base_url))
        assert info.value.upstream_status == 503
    finally:
        fake.configure(error_rate=0.0)
    with pytest.raises(UpstreamConnectionError):
        run(go("http://127.0.0.1:9/v1"))


# -- the local model --------------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_gives_unit_rows_close_for_paraphrases_and_batches_concurrent_calls() -> None:
    embedder = LocalEmbedder(batch_wait_ms=20)

    async def go() -> list[np.ndarray]:
        await embedder.start()
        try:
            return await asyncio.gather(
                embedder.embed(["How do I reset my password?"]),
                embedder.embed(["I forgot my password, how can I reset it?"]),
                embedder.embed(["What are your opening hours on Sunday?", "Is the store open on Sundays?"]),
            )
        finally:
            await embedder.aclose()

    a, b, cd = run(go())
    assert embedder.dim == 384 and a.shape == (1, 384) and cd.shape == (2, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(np.vstack([a, b, cd]), axis=1), 1.0, atol=1e-5)
    assert float(a[0] @ b[0]) > 0.8 and float(a[0] @ cd[0]) < 0.3
    assert embedder.batcher.batches == 1  # three concurrent calls, one model call


TEXTS = [
    "How do I reset my password?",
    "Café crème, naïve façade — ½ price!",
    "x",
    " ".join(f"token{i} and some more words" for i in range(200)),  # past the 256-token limit
    "Is the store open on Sundays?",
]


@pytest.mark.slow
def test_the_onnx_runtime_gives_sentence_transformers_vectors_and_exports_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_CACHE_DIR", str(tmp_path))
    onnx, torch = LocalEmbedder(runtime="onnx", threads=3), LocalEmbedder(runtime="torch")

    async def go(embedder: LocalEmbedder) -> np.ndarray:
        try:
            return await embedder.embed(TEXTS)
        finally:
            await embedder.aclose()

    a, b = run(go(onnx)), run(go(torch))
    assert onnx.model().runtime == "onnx" and torch.model().runtime == "torch"
    assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.all(np.sum(a * b, axis=1) > 0.9999)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    assert not list((tmp_path / "onnx").glob("*.part"))

    def no_export(path: Path, out: Path) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(local_embed, "export_onnx", no_export)
    again = LocalEmbedder(runtime="onnx", threads=1)  # another session, from the cached file
    assert np.allclose(run(go(again)), a, atol=1e-5)

    [cached] = (tmp_path / "onnx").glob("*.onnx")
    good = cached.read_bytes()
    cached.write_bytes(good[: len(good) // 3])  # damaged on disk
    exports: list[Path] = []

    def export_again(path: Path, out: Path) -> None:
        exports.append(path)
        out.write_bytes(good)

    monkeypatch.setattr(local_embed, "export_onnx", export_again)
    recovered = LocalEmbedder(runtime="onnx", threads=2)
    assert np.allclose(run(go(recovered)), a, atol=1e-5) and len(exports) == 1


@pytest.mark.slow
def test_a_model_the_onnx_runtime_cannot_run_is_refused_or_left_to_torch(tmp_path: Path) -> None:
    packaged = local_embed.packaged_model_path()
    model = tmp_path / "sqrt-pooled"
    shutil.copytree(packaged, model, symlinks=True, copy_function=os.symlink)
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.unlink()
    config.update(pooling_mode_mean_tokens=False, pooling_mode_mean_sqrt_len_tokens=True)
    pooling.write_text(json.dumps(config))
    with pytest.raises(ProviderUnavailable, match=r"pooling \['mean_sqrt_len_tokens'\].*runtime: torch"):
        LocalEmbedder(model, runtime="onnx").model()
    assert LocalEmbedder(model, runtime="auto").model().runtime == "torch"


@pytest.mark.unit
def test_the_runtime_and_threads_come_from_configuration() -> None:
    embedder = build_embedder(settings(runtime="torch", threads=2))
    assert isinstance(embedder, LocalEmbedder) and (embedder.runtime, embedder.threads) == ("torch", 2)
    with pytest.raises(ValueError, match="runtime"):
        settings(runtime="tensorflow")
