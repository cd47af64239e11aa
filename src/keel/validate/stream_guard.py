"""Output guards on a live stream: each piece is checked before it goes out.

A stream is not held whole (that would cost the caller its time to first token). Instead each
choice's text passes through a chain of filters:

1. ``OutputFilter``: the leak watch sees every piece *before* it is released, so the piece that
   completes a canary or a ``min_leak_chars`` run of the system prompt is never sent: the stream
   ends with an error event instead (at most ``min_leak_chars - 1`` characters of the prompt can
   have gone out, which by definition is not a leak). For secrets and PII it keeps a carry-over
   window: the last ``window`` characters, widened back to the start of an unfinished word, an
   open private-key block, or a finding that reaches into it, stay pending until more text shows
   they are complete. Once ``_STEP`` more characters have arrived, the pending text plus some
   already released text is scanned and what is safe is released.
2. ``StreamReplacer`` (``keel.input.restore``) when the caller gets its original values back.

Tool-call arguments in a stream get only the restore step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from keel.call import Call
from keel.input.findings import Finding
from keel.input.restore import StreamReplacer
from keel.llm.providers.base import Chunk
from keel.validate.leakage import LeakageStage, LeakWatch, Scanner, found_verdict, leak_error, redact, scan

_CONTEXT = 96  # released characters scanned again with the pending ones (keywords before a value)
_STEP = 24  # scan again once this many characters have arrived since the last release
_MAX_HOLD = 16_384  # never hold more than this, whatever it looks like
_OPEN_KEY = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?![\s\S]*-----END)")


class OutputFilter:
    """The leak watch and the secret/PII scanners for one choice of one stream."""

    def __init__(
        self, call: Call, stage: LeakageStage, watch: LeakWatch | None, window: int, *, record: bool = True
    ) -> None:
        self.call = call
        self.stage = stage
        self.watch = watch
        self.record = record  # False: the Validation layer recorded the verdicts already
        self.scanners = stage.scanners
        self.window = window if self.scanners else 0
        self._pending = ""
        self._released = ""  # the tail of what went out, for context
        self._next = 0  # scan when this much is pending (grows while a long token is held)

    def feed(self, text: str) -> str:
        """What may be released now that ``text`` arrived (OutputRejected on a leak or a block)."""
        if self.watch is not None:
            reason = self.watch.feed(text)
            if reason is not None:
                raise leak_error(self.call, self.stage.name, reason)
        if not self.scanners:
            return text
        self._pending += text
        if len(self._pending) < max(self.window + _STEP, self._next):
            return ""  # scan in steps, not on every token
        out = self._release(final=False)
        held = len(self._pending)
        self._next = held + max(_STEP, held // 2)  # a long unfinished token: rescan less and less often
        return out

    def end(self) -> str:
        """Everything still pending, scanned, at the end of the stream."""
        return self._release(final=True) if self.scanners else ""

    def _release(self, *, final: bool) -> str:
        ctx = self._released
        text = ctx + self._pending
        base = len(ctx)
        findings = {s: [f for f in scan(s, text, self.call.vault) if f.end > base] for s in self.scanners}
        cut = len(text) if final else self._cut(text, base, findings)
        if cut <= base:
            return ""
        out = text[base:cut]
        for scanner, fs in findings.items():
            done = [f for f in fs if f.end <= cut]
            if not done:
                continue
            if self.record:
                found_verdict(self.call, self.stage.name, scanner, done)
            if scanner.action == "redact":
                shifted = [Finding(f.entity, max(f.start, base) - base, f.end - base, f.score) for f in done]
                out = redact(out, shifted)
            for f in done:
                fs.remove(f)
        self._pending = text[cut:]
        self._released = (self._released + text[base:cut])[-_CONTEXT:]
        return out

    def _cut(self, text: str, base: int, findings: dict[Scanner, list[Finding]]) -> int:
        cut = len(text) - self.window
        if len(text) - base > _MAX_HOLD:
            return max(cut, base)
        space = max(text.rfind(" ", base, cut), text.rfind("\n", base, cut))
        cut = space + 1 if space >= base else base  # never in the middle of a word
        key = _OPEN_KEY.search(text, base)
        if key is not None:
            cut = min(cut, key.start())
        for fs in findings.values():
            for f in fs:
                if f.start < cut < f.end or f.end >= len(text) - 1:
                    cut = min(cut, max(f.start, base))
        return max(cut, base)


FilterChain = list[Any]  # objects with feed(str) -> str and end() -> str


class StreamGuard:
    """Rewrites a stream's chunks through per-choice filter chains."""

    def __init__(self, make: Callable[[], FilterChain], args_vault: dict[str, str] | None) -> None:
        self.make = make
        self.args_vault = args_vault
        self.chains: dict[int, FilterChain] = {}
        self.args: dict[tuple[int, int], StreamReplacer] = {}
        self.open: set[int] = set()

    def apply(self, chunk: Chunk) -> Chunk:
        """The chunk as it may go out (text held back or rewritten; a finishing choice flushed)."""
        choices = chunk.get("choices")
        if not choices:
            return chunk
        out = []
        for choice in choices:
            idx = int(choice.get("index", 0))
            delta = dict(choice.get("delta") or {})
            chain = self.chains.get(idx)
            if chain is None:
                chain = self.chains[idx] = self.make()
                self.open.add(idx)
            text = delta.get("content")
            if isinstance(text, str) and text:
                delta["content"] = _feed(chain, text)
            if delta.get("tool_calls") and self.args_vault:
                delta["tool_calls"] = [self._args(idx, tc) for tc in delta["tool_calls"]]
            if choice.get("finish_reason") is not None and idx in self.open:
                self.open.discard(idx)
                delta["content"] = (delta.get("content") or "") + _end(chain)
                if not delta["content"] and "content" not in (choice.get("delta") or {}):
                    del delta["content"]
                rests = [
                    {"index": ti, "function": {"arguments": rest}}
                    for (ci, ti), rep in self.args.items()
                    if ci == idx and (rest := rep.end())
                ]
                if rests:
                    delta["tool_calls"] = [*(delta.get("tool_calls") or []), *rests]
            out.append({**choice, "delta": delta})
        return {**chunk, "choices": out}

    def finish(self, last: Chunk | None) -> Chunk | None:
        """A last chunk with what is still held, when the stream ended without finishing a choice."""
        rest = []
        for idx in sorted(self.open):
            text = _end(self.chains[idx])
            if text:
                rest.append({"index": idx, "delta": {"content": text}, "finish_reason": None})
        self.open.clear()
        if not rest:
            return None
        base = {k: v for k, v in (last or {}).items() if k in ("id", "object", "created", "model")}
        return {**base, "object": "chat.completion.chunk", "choices": rest}

    def _args(self, idx: int, tc: Any) -> Any:
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str) or self.args_vault is None:
            return tc
        key = (idx, int(tc.get("index", 0)))
        rep = self.args.get(key)
        if rep is None:
            rep = self.args[key] = StreamReplacer(
                {k: json.dumps(v)[1:-1] for k, v in self.args_vault.items()}
            )
        return {**tc, "function": {**fn, "arguments": rep.feed(fn["arguments"])}}


def guard_for(call: Call, stage: LeakageStage | None, *, live: bool) -> StreamGuard | None:
    """The stream guard for ``call`` (None when nothing needs to look at the chunks).

    ``live``: the stream goes out as it arrives, so this guard records what it finds; a held
    stream was checked whole by the Validation layer, and its guard only rewrites the chunks.
    """
    output = stage is not None and (
        bool(stage.scanners) or stage.canary is not None or stage.leak_chars is not None
    )
    vault = call.vault or None
    if not output and vault is None:
        return None
    window = 64 if stage is not None and any(s.what == "pii" for s in stage.scanners) else 32

    def make() -> FilterChain:
        chain: FilterChain = []
        if output and stage is not None:
            chain.append(OutputFilter(call, stage, stage.watch(call) if live else None, window, record=live))
        if vault is not None:
            chain.append(StreamReplacer(vault))
        return chain

    return StreamGuard(make, vault)


def _feed(chain: FilterChain, text: str) -> str:
    for f in chain:
        text = f.feed(text)
        if not text:
            return ""
    return text


def _end(chain: FilterChain) -> str:
    text = ""
    for f in chain:
        text = f.feed(text) + f.end() if text else f.end()
    return text
