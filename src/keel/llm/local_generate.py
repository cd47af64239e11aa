"""One generation on the local model, run on its worker thread, one token at a time.

Streamed and whole answers come out of this same loop, so a streamed answer's text is exactly
the text the same request gets in one piece. The loop checks between tokens whether its caller
has gone away (or its deadline passed), so an abandoned request frees the queue at the next token.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from keel.errors import PayloadTooLarge, UpstreamError, UpstreamTimeout
from keel.llm.local_model import LocalModel
from keel.llm.local_prompt import Prompt


@dataclass(frozen=True, slots=True)
class Sampling:
    """How the next token is picked (temperature 0 is greedy)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 40
    min_p: float = 0.05
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = 0


@dataclass(slots=True)
class Job:
    """One request for the worker: what to continue, how, and where each piece of text goes."""

    prompt: Prompt
    sampling: Sampling
    max_tokens: int
    stop: tuple[str, ...]
    emit: Callable[[str], None]
    grammar: str | None = None  # GBNF the output must follow
    on_start: Callable[[int], None] | None = None  # called with the prompt's token count
    deadline: float | None = None  # time.monotonic() after which the answer is abandoned
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a generation ended."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop", "length" or "cancelled"


def generate(model: LocalModel, job: Job) -> Outcome:
    """Run ``job`` to its end on ``model`` (call on the model's worker thread)."""
    if job.cancelled.is_set():
        return Outcome(0, 0, "cancelled")
    _check_deadline(job, "waiting for the local model")
    tokens = model.tokenize(job.prompt.text, add_bos=job.prompt.add_bos, special=job.prompt.special)
    if len(tokens) >= model.n_ctx:
        raise PayloadTooLarge(
            f"the prompt is {len(tokens)} tokens but the local model's context window (n_ctx) is "
            f"{model.n_ctx} tokens; shorten the conversation or raise n_ctx"
        )
    grammar = model.grammar(job.grammar) if job.grammar is not None else None
    if job.on_start is not None:
        job.on_start(len(tokens))
    budget = min(job.max_tokens, model.n_ctx - len(tokens))
    llama = model.llama
    s = job.sampling
    llama.set_seed(s.seed)
    text = TextFilter(job.stop)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    produced = 0
    finish = "length"
    steps = llama.generate(
        tokens,
        temp=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        min_p=s.min_p,
        presence_penalty=s.presence_penalty,
        frequency_penalty=s.frequency_penalty,
        repeat_penalty=1.0,
        grammar=grammar,
    )
    try:
        for token in steps:
            if model.is_end(token):
                finish = "stop"
                break
            produced += 1
            piece = text.feed(decoder.decode(model.piece(token)))
            if piece:
                job.emit(piece)
            if text.stopped:
                finish = "stop"
                break
            if produced >= budget:
                break
            if job.cancelled.is_set():
                return Outcome(len(tokens), produced, "cancelled")
            _check_deadline(job, "generating")
    except (RuntimeError, ValueError, OSError) as exc:
        raise UpstreamError(f"the local model failed: {exc}") from exc
    finally:
        steps.close()
    tail = text.feed(decoder.decode(b"", final=True)) + text.flush()
    if tail:
        job.emit(tail)
    return Outcome(len(tokens), produced, finish)


def _check_deadline(job: Job, doing: str) -> None:
    if job.deadline is not None and time.monotonic() >= job.deadline:
        raise UpstreamTimeout(f"the request's deadline passed while {doing}")


class TextFilter:
    """Turns decoded pieces into the answer: leading and trailing space trimmed, cut at the first stop.

    Text that might be the start of a stop sequence, or trailing whitespace, is held back until
    the next piece shows what it is, so nothing is ever emitted that a later piece would take back.
    """

    __slots__ = ("_pending", "_started", "stopped", "stops")

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._pending = ""
        self._started = False
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that can be emitted now that ``piece`` arrived."""
        if self.stopped:
            return ""
        text = self._pending + piece
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        # The stop that completes first wins, as it would have had the text come token by token.
        hits = [(i + len(s), i) for s in self.stops if (i := text.find(s)) >= 0]
        if hits:
            self.stopped = True
            self._pending = ""
            return text[: min(hits)[1]].rstrip()
        cut = len(text) - self._held(text)
        self._pending = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        """What is left at the end of the answer (held-back text that turned out not to be a stop)."""
        rest, self._pending = self._pending, ""
        return "" if self.stopped else rest.rstrip()

    def _held(self, text: str) -> int:
        held = len(text) - len(text.rstrip())
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(text)), held, -1):
                if text.endswith(stop[:k]):
                    held = k
                    break
        return held
