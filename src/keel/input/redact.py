"""The Input layer's PII and secret stages: find, then flag, redact, pseudonymise or block.

Redaction replaces each value with a numbered placeholder (``<EMAIL_1>``, ``<SECRET_1>``), the same
value with the same placeholder everywhere in the call; pseudonymisation with a consistent fake
value (``keel.input.pseudonyms``). With ``restore``, the placeholder → original pairs go into
``call.vault`` (only for the call's lifetime) so the answer can be given back with the originals
(``keel.input.restore``). Verdicts and counters carry entity types and counts, never values.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any, Literal

from keel.call import Action, Call, Message, Verdict
from keel.errors import InputRejected
from keel.input.findings import Finding, counts, describe
from keel.input.pii import PIIDetector
from keel.input.pseudonyms import pseudonym
from keel.input.secrets import SecretDetector
from keel.settings import GuardAction, PIIGuard
from keel.stage import Layer, Stage

LABELS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP"}
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_THREAD_CHARS = 16_000  # scan longer inputs on a worker thread, off the event loop

Mode = Literal["redact", "pseudonymize"]


class Masker:
    """Stand-ins for one call: the same (entity, value) always gets the same one."""

    def __init__(
        self, mode: Mode, vault: dict[str, str] | None = None, taken: set[str] | None = None
    ) -> None:
        self.mode = mode
        self.vault = vault  # stand-in → original, kept only when the answer is restored
        self._given: dict[tuple[str, str], str] = {}
        self._numbers: dict[str, int] = {}
        # Stand-ins already in use, or already written in the input (a restore must not touch those).
        self._used: set[str] = set(vault or ()) | (taken or set())

    def stand_in(self, entity: str, original: str) -> str:
        """The placeholder or fake value for ``original``."""
        key = (entity, original)
        got = self._given.get(key)
        if got is not None:
            return got
        if self.mode == "redact":
            label = LABELS.get(entity, entity)
            n = self._numbers.get(label, 0)
            while True:
                n += 1
                got = f"<{label}_{n}>"
                if got not in self._used:
                    break
            self._numbers[label] = n
        else:
            attempt = 0
            got = pseudonym(entity, original)
            while got in self._used or got == original:
                attempt += 1
                got = pseudonym(entity, original, attempt)
        self._given[key] = got
        self._used.add(got)
        if self.vault is not None:
            self.vault[got] = original
        return got

    def apply(self, text: str, findings: list[Finding]) -> str:
        """``text`` with every finding replaced by its stand-in."""
        out, at = [], 0
        for f in findings:
            out += [text[at : f.start], self.stand_in(f.entity, text[f.start : f.end])]
            at = f.end
        out.append(text[at:])
        return "".join(out)


def texts(messages: list[Message]) -> Iterator[tuple[int, str | int | None, str]]:
    """``(message index, where, text)`` for every text a model reads in ``messages``.

    ``where`` is ``None`` for string content, a part index for content parts, and ``"args:N"``
    for the arguments of the message's N-th tool call.
    """
    for i, m in enumerate(messages):
        content = m.get("content")
        if isinstance(content, str):
            yield i, None, content
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield i, j, part["text"]
        for k, tc in enumerate(m.get("tool_calls") or ()):
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                yield i, f"args:{k}", fn["arguments"]


def replace_text(messages: list[Message], i: int, where: str | int | None, text: str) -> None:
    """Put ``text`` back where ``texts`` found it, copying the message (the caller's dicts are kept)."""
    m = dict(messages[i])
    if where is None:
        m["content"] = text
    elif isinstance(where, int):
        parts = list(m["content"])
        parts[where] = {**parts[where], "text": text}
        m["content"] = parts
    else:
        k = int(where.split(":")[1])
        calls = list(m["tool_calls"])
        calls[k] = {**calls[k], "function": {**calls[k]["function"], "arguments": text}}
        m["tool_calls"] = calls
    messages[i] = m


class _GuardStage(Stage):
    """Scan every text of the call with ``find``; act as configured."""

    layer = Layer.INPUT
    what = ""  # "pii" or "secret", for reason codes

    def __init__(self, action: str, find: Callable[[str], list[Finding]], *, restore: bool = False) -> None:
        self.action = action
        self.find = find
        self.restore = restore

    async def run(self, call: Call) -> None:
        """Find, then record and act."""
        if sum(len(t) for *_, t in texts(call.messages)) > _THREAD_CHARS:
            found = await asyncio.to_thread(self._scan, call.messages)
        else:
            found = self._scan(call.messages)
        if not found:
            return
        everything = [f for _, _, _, fs in found for f in fs]
        by_entity = counts(everything)
        for entity, n in by_entity.items():
            call.count(f"{self.name}.{entity.lower()}", n)
        score = max(f.score for f in everything)
        detail = describe(by_entity)
        if self.action == "flag":
            call.add_verdict(Verdict(self.name, Action.FLAG, f"input.{self.what}_detected", score, detail))
            return
        if self.action == "block":
            reason = f"input.{self.what}_detected"
            call.add_verdict(Verdict(self.name, Action.BLOCK, reason, score, detail))
            kinds = ", ".join(sorted(by_entity))
            raise InputRejected(
                f"the input contains {_NOUN[self.what]} ({kinds}); this feature refuses it "
                f"(input.{self.what}: block)",
                code=reason.replace(".", "_"),
            )
        mode: Mode = "pseudonymize" if self.action == "pseudonymize" else "redact"
        taken = {m.group() for _, _, text in texts(call.messages) for m in _PLACEHOLDER.finditer(text)}
        masker = Masker(mode, call.vault if self.restore else None, taken)
        messages = list(call.messages)
        for i, where, text, fs in found:
            replace_text(messages, i, where, masker.apply(text, fs))
        call.messages = messages
        done = "pseudonymized" if mode == "pseudonymize" else "redacted"
        call.add_verdict(Verdict(self.name, Action.MODIFY, f"input.{self.what}_{done}", score, detail))

    def _scan(self, messages: list[Message]) -> list[tuple[int, Any, str, list[Finding]]]:
        out = []
        for i, where, text in texts(messages):
            fs = self.find(text)
            if fs:
                out.append((i, where, text, fs))
        return out


_NOUN = {"pii": "personal data", "secret": "secrets (API keys, tokens, private keys or passwords)"}


class PIIStage(_GuardStage):
    """Personal data in any message: flag, redact, pseudonymise or block (``input.pii``)."""

    name = "input.pii"
    what = "pii"

    @classmethod
    def for_guard(cls, guard: PIIGuard, *, where: str = "input.pii") -> PIIStage | None:
        """The stage for a feature's ``input.pii`` (None when it is off)."""
        if guard.action == "off":
            return None
        detector = PIIDetector(guard.entities, score_threshold=guard.score_threshold, where=where)
        return cls(guard.action, detector.find, restore=guard.restore)


class SecretsStage(_GuardStage):
    """API keys, tokens, private keys and passwords in any message (``input.secrets``)."""

    name = "input.secrets"
    what = "secret"

    @classmethod
    def for_action(cls, action: GuardAction) -> SecretsStage | None:
        """The stage for a feature's ``input.secrets`` (None when it is off)."""
        if action == "off":
            return None
        return cls(action, SecretDetector().find)
