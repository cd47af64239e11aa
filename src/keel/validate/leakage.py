"""The Validation layer's leakage checks: the canary, verbatim system prompt, secrets and PII.

- **canary** (``output.canary``): an answer containing the feature's canary token is blocked
  (``output.canary_leaked``).
- **verbatim system prompt** (``output.system_prompt_leak``): an answer that repeats a run of at
  least ``min_leak_chars`` characters of the system prompt (case and whitespace ignored) is blocked
  (``output.system_prompt_leaked``). The system prompt is every system or developer message but
  the Context layer's sources, without the canary. The hashes of its runs are kept for the last 64
  distinct prompts up to 20,000 characters.
- **secrets** and **PII** in the answer, with the Input layer's detectors: flagged, redacted
  (``[REDACTED_SECRET]``, ``[REDACTED_EMAIL]``) or blocked.

A live stream is checked chunk by chunk before each piece goes out (``stream_guard.py``); this
stage then only redacts the recorded answer, so traces never see what the caller did not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from keel.call import Action, Call, Verdict
from keel.errors import OutputRejected
from keel.input.findings import Finding, counts, describe
from keel.input.redact import LABELS
from keel.llm.canary import marker
from keel.llm.tokens import message_text
from keel.stage import Layer, Stage

_WS = re.compile(r"\s+")
_SOURCES = "Sources (retrieved documents"  # the Context layer's message (keel.context.pack)


def _norm(text: str) -> str:
    return _WS.sub(" ", text.lower())


_CACHED_PROMPT_CHARS = 20_000  # longer system prompts are hashed per call, not kept


def _runs(prompt: str, k: int) -> frozenset[int]:
    """The hashes of every ``k``-character run of the normalised system prompt."""
    return _hash_runs(prompt, k) if len(prompt) > _CACHED_PROMPT_CHARS else _cached_runs(prompt, k)


def _hash_runs(prompt: str, k: int) -> frozenset[int]:
    norm = _norm(prompt).strip()
    return frozenset(hash(norm[i : i + k]) for i in range(len(norm) - k + 1))


_cached_runs = lru_cache(maxsize=64)(_hash_runs)  # about 45 bytes per character of each prompt


def system_prompt(call: Call, canary: str | None) -> str:
    """The call's system prompt as the leak check sees it: no sources, no canary."""
    parts = []
    for m in call.messages:
        if m.get("role") in ("system", "developer"):
            text = message_text(m)
            if not text.startswith(_SOURCES):
                parts.append(text.replace(marker(canary), "") if canary else text)
    return "\n".join(parts)


class LeakWatch:
    """Watches an answer, piece by piece, for the canary and verbatim runs of the system prompt."""

    def __init__(self, canary: str | None, prompt: str | None, k: int) -> None:
        self.canary = canary.lower() if canary else None
        self.runs = _runs(prompt, k) if prompt and len(prompt) >= k else frozenset()
        self.k = k
        self._tail = ""  # the last k-1 normalised characters
        self._ctail = ""  # the last characters, as many as the canary has minus one

    def feed(self, text: str) -> str | None:
        """The reason code when the answer so far leaks, else None."""
        if self.canary:
            seen = self._ctail + text.lower()
            if self.canary in seen:
                return "output.canary_leaked"
            self._ctail = seen[-(len(self.canary) - 1) :]
        if self.runs:
            piece = _norm(text)
            if self._tail.endswith(" ") and piece.startswith(" "):
                piece = piece[1:]
            window = self._tail + piece
            k = self.k
            runs = self.runs
            for i in range(len(window) - k + 1):
                if hash(window[i : i + k]) in runs:
                    return "output.system_prompt_leaked"
            self._tail = window[-(k - 1) :]
        return None


@dataclass(slots=True, frozen=True)
class Scanner:
    """One output scanner: what it finds (``secret`` or ``pii``), how, and what to do about it."""

    what: str
    action: str  # flag | redact | block
    find: Callable[[str], list[Finding]]


def scan(scanner: Scanner, text: str, vault: dict[str, str]) -> list[Finding]:
    """What ``scanner`` finds in ``text``, except the call's own stand-ins (a pseudonym the caller
    gets restored is not the model inventing personal data)."""
    found = scanner.find(text)
    return [f for f in found if text[f.start : f.end] not in vault] if vault else found


def redaction(entity: str) -> str:
    """What replaces a value found in an answer (never a placeholder a restore would fill in)."""
    return f"[REDACTED_{LABELS.get(entity, entity)}]"


def redact(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with each finding replaced by its redaction marker."""
    out, at = [], 0
    for f in findings:
        out += [text[at : f.start], redaction(f.entity)]
        at = f.end
    out.append(text[at:])
    return "".join(out)


def leak_error(call: Call, stage: str, reason: str) -> OutputRejected:
    """Record the blocking verdict and return the error to raise."""
    call.add_verdict(Verdict(stage, Action.BLOCK, reason))
    what = "the feature's canary token" if reason == "output.canary_leaked" else "its system prompt"
    return OutputRejected(
        f"the answer repeated {what}; it was withheld ({reason})", code=reason.replace(".", "_")
    )


def found_verdict(call: Call, stage: str, scanner: Scanner, findings: list[Finding]) -> None:
    """Record what ``scanner`` found (counts only); raise when its action is block."""
    by_entity = counts(findings)
    for entity, n in by_entity.items():
        call.count(f"output.{scanner.what}.{entity.lower()}", n)
    score = max(f.score for f in findings)
    detail = describe(by_entity)
    reason = f"output.{scanner.what}_detected"
    if scanner.action == "block":
        call.add_verdict(Verdict(stage, Action.BLOCK, reason, score, detail))
        raise OutputRejected(
            f"the answer contained {scanner.what} values ({', '.join(sorted(by_entity))}); it was withheld",
            code=reason.replace(".", "_"),
        )
    if scanner.action == "flag":
        call.add_verdict(Verdict(stage, Action.FLAG, reason, score, detail))
    else:
        call.add_verdict(Verdict(stage, Action.MODIFY, f"output.{scanner.what}_redacted", score, detail))


class LeakageStage(Stage):
    """Check the answer for the canary and system-prompt runs; scan it for secrets and PII."""

    name = "validation.leakage"
    layer = Layer.VALIDATION

    def __init__(
        self, canary: str | None, leak_chars: int | None, scanners: list[Scanner], *, live: bool
    ) -> None:
        self.canary = canary
        self.leak_chars = leak_chars
        self.scanners = scanners
        self.live = live  # a live stream was checked piece by piece already

    def watch(self, call: Call) -> LeakWatch | None:
        """A fresh watcher for ``call`` (None when neither check is on)."""
        if self.canary is None and self.leak_chars is None:
            return None
        prompt = system_prompt(call, self.canary) if self.leak_chars is not None else None
        return LeakWatch(self.canary, prompt, self.leak_chars or 80)

    async def run(self, call: Call) -> None:
        """Block a leak; flag, redact or block what the scanners find."""
        comp = call.completion
        if comp is None:
            return
        live = call.stream and self.live
        for choice in comp.choices:
            watch = None if live else self.watch(call)
            msg = choice.get("message") or {}
            content = msg.get("content")
            text = content if isinstance(content, str) else ""
            args = "\n".join(
                (tc.get("function") or {}).get("arguments") or "" for tc in msg.get("tool_calls") or ()
            )
            if watch is not None:
                reason = watch.feed(text + "\n" + args) if args else watch.feed(text)
                if reason is not None:
                    raise leak_error(call, self.name, reason)
            for scanner in self.scanners:
                findings = scan(scanner, text, call.vault) if text else []
                if not findings:
                    continue
                if not live:
                    found_verdict(call, self.name, scanner, findings)
                if scanner.action == "redact":
                    text = redact(text, findings)
                    msg = {**msg, "content": text}
                    choice["message"] = msg
