"""The injection stage: prompt-injection and jailbreak detection on the Input layer, on by default.

Every message of a scanned role (``input.injection.roles``: the caller's ``user`` messages and
``tool`` results by default) is read by the detector (``keel.input.detector``); the worst score
decides, against the feature's thresholds:

- at ``block_threshold`` or above, the feature's ``action``: ``block`` (400 with code
  ``prompt_injection``; the message names the reason code), ``flag`` (answered, recorded) or
  ``strip`` (the offending windows replaced by a notice, then answered);
- between ``flag_threshold`` and ``block_threshold``, the judge model when one is configured
  (ATTACK is treated as a block-level score, SAFE clears it), else a flag;
- below, nothing is recorded (a judge's SAFE is: an ``allow`` verdict with the score).

Tool results are also fenced with ``wrap_untrusted`` so the model reads them as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keel.call import Action, Call, Message, Spend, Verdict
from keel.context.untrusted import REMOVED, wrap_untrusted
from keel.errors import InputRejected
from keel.input.detector import Detection, Detector, default_detector
from keel.input.judge import Judge
from keel.llm.providers.base import Provider
from keel.settings import FeatureConfig, InjectionGuard
from keel.stage import Layer, Stage

CODE = "prompt_injection"
JUDGED = "prompt_injection.judge"


@dataclass(slots=True)
class _Scanned:
    index: int  # message index
    part: int | None  # content part index, None for string content
    role: str
    detection: Detection


class InjectionStage(Stage):
    """Score the caller's messages for prompt injection and block, flag or strip by the feature's settings."""

    name = "input.injection"
    layer = Layer.INPUT

    def __init__(
        self, guard: InjectionGuard, *, detector: Detector | None = None, judge: Judge | None = None
    ) -> None:
        self.guard = guard
        self.detector = detector or default_detector()
        self.judge = judge
        self.roles = frozenset(guard.roles)

    @classmethod
    def for_feature(cls, fc: FeatureConfig, providers: Mapping[str, Provider]) -> InjectionStage | None:
        """The stage for a feature's ``input.injection`` settings (None when turned off)."""
        guard = fc.input.injection
        if not guard.enabled:
            return None
        judge = Judge(providers[guard.judge]) if guard.judge is not None else None
        return cls(guard, judge=judge)

    async def run(self, call: Call) -> None:
        """Scan, decide, record one verdict; raise InputRejected when the decision is to block."""
        scanned = self._scan(call.messages)
        g = self.guard
        if not scanned:
            return
        worst = max(scanned, key=lambda s: s.detection.score)
        det = worst.detection
        score, reason, detail = det.score, det.reason, f"{worst.role} message {worst.index}: {det.detail}"
        if g.flag_threshold <= score < g.block_threshold and self.judge is not None:
            ruling = await self.judge.rule(det.text, feature=call.feature)
            if ruling.usage is not None and g.judge is not None:
                call.spend.insert(
                    0, Spend(g.judge, ruling.usage)
                )  # priced with the call; the answer stays last
            detail = f"{detail}; {ruling.detail}"
            if ruling.attack is True:
                score, reason = max(score, g.block_threshold), JUDGED
            elif ruling.attack is False:
                call.add_verdict(Verdict(self.name, Action.ALLOW, reason, det.score, detail))
                self._wrap_tools(call, scanned)
                return
        if score >= g.block_threshold:
            self._act(call, scanned, score, reason, detail)
        elif score >= g.flag_threshold:
            call.add_verdict(Verdict(self.name, Action.FLAG, reason, score, detail))
        # Below the flag threshold nothing is recorded: a verdict on every clean call would bury
        # the ones that matter in the ledger and the dashboard.
        self._wrap_tools(call, scanned)

    def _act(self, call: Call, scanned: list[_Scanned], score: float, reason: str, detail: str) -> None:
        action = self.guard.action
        if action == "block":
            call.add_verdict(Verdict(self.name, Action.BLOCK, reason, score, detail))
            raise InputRejected(
                f"the request was blocked as a likely prompt injection ({reason}, score {score:.2f}); "
                f"feature {call.feature!r} blocks at {self.guard.block_threshold}",
                code=CODE,
            )
        if action == "flag":
            call.add_verdict(Verdict(self.name, Action.FLAG, reason, score, detail))
            return
        # A judge's ATTACK on a grey-zone text strips its windows from the flag threshold up.
        judged = reason == JUDGED
        threshold = self.guard.flag_threshold if judged else self.guard.block_threshold
        stripped = 0
        for s in scanned:
            if s.detection.score >= threshold:
                _replace(call.messages, s, self.detector.strip(s.detection, threshold, REMOVED))
                stripped += 1
        call.add_verdict(Verdict(self.name, Action.MODIFY, reason, score, f"{detail}; stripped {stripped}"))

    def _scan(self, messages: list[Message]) -> list[_Scanned]:
        out = []
        for i, m in enumerate(messages):
            role = m.get("role")
            if role not in self.roles:
                continue
            content = m.get("content")
            if isinstance(content, str):
                out.append(_Scanned(i, None, str(role), self.detector.scan(content)))
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        out.append(_Scanned(i, j, str(role), self.detector.scan(part["text"])))
        return out

    def _wrap_tools(self, call: Call, scanned: list[_Scanned]) -> None:
        for s in scanned:
            if s.role == "tool":
                m = call.messages[s.index]
                source = f"tool:{m.get('name') or m.get('tool_call_id') or s.index}"
                current = m["content"] if s.part is None else m["content"][s.part]["text"]
                _replace(call.messages, s, wrap_untrusted(current, source, kind="tool result"))


def _replace(messages: list[Message], s: _Scanned, text: str) -> None:
    """Set the scanned text of a message (copy-on-write: the caller's dicts are not changed)."""
    m = messages[s.index]
    if s.part is None:
        messages[s.index] = {**m, "content": text}
        return
    parts: list[Any] = list(m["content"])
    parts[s.part] = {**parts[s.part], "text": text}
    messages[s.index] = {**m, "content": parts}
