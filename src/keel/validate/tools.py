"""Tool permissions: a feature declares the tools a model may call, each with a JSON schema for its arguments.

Two stages share one ``ToolPolicy``:

- ``ToolRequestStage`` (Input layer) refuses, with 400 ``tool_undeclared``, a request that offers
  a tool the feature does not declare, names one in ``tool_choice``, or uses legacy ``functions``.
  Offered tools are passed on as the caller wrote them; answers are checked against the
  declared schemas, so keep the two in step.
- ``ToolPolicyStage`` (Validation layer) removes from the answer every tool call that is not
  declared (``tool.undeclared``) or whose arguments are not JSON or fail the tool's schema
  (``tool.invalid_arguments``): refused calls are never passed on, and each is recorded as a
  verdict naming the tool, never its arguments. If a choice keeps text, it is answered as text
  (finish_reason ``stop``); if nothing valid remains, the call fails with OutputRejected
  (502 ``tool_refused``), which also makes a cascade try its next model. Valid calls to a tool
  with ``confirm: true`` are held back until the caller confirms them (``validate.tool_confirm``);
  a call to a ``side_effects: true`` tool that is passed on is flagged (``tool.side_effect``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson

from keel.call import Action, Call, Completion, Verdict
from keel.errors import ConfigError, InputRejected, OutputRejected
from keel.settings import FeatureConfig, ToolSpec
from keel.stage import Layer, Stage
from keel.stores.base import StateBackend
from keel.validate.tool_confirm import Confirmations, ToolConfirmStage, was_confirmed


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one tool call was removed: a reason code and a detail that names the tool, not its arguments."""

    reason: str  # tool.undeclared | tool.invalid_arguments
    detail: str


class ToolPolicy:
    """A feature's declared tools, compiled once: names, argument validators, which need confirming."""

    def __init__(self, feature: str, specs: list[ToolSpec], *, where: str = "tools") -> None:
        self.feature = feature
        self.specs: dict[str, ToolSpec] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        for i, spec in enumerate(specs):
            if spec.name in self.specs:
                raise ConfigError(f"{where}[{i}].name: duplicate tool {spec.name!r}")
            cls = jsonschema.validators.validator_for(spec.parameters)
            try:
                cls.check_schema(spec.parameters)
            except jsonschema.SchemaError as exc:
                raise ConfigError(f"{where}[{i}].parameters: invalid JSON schema: {exc.message}") from None
            self.specs[spec.name] = spec
            self._validators[spec.name] = cls(spec.parameters, format_checker=cls.FORMAT_CHECKER)
        self.confirm = frozenset(s.name for s in specs if s.confirm)

    @classmethod
    def for_feature(cls, fc: FeatureConfig, *, where: str) -> ToolPolicy | None:
        """The policy of feature ``fc`` (``where`` names it in errors), or None when it declares no tools."""
        return None if fc.tools is None else cls(fc.name, fc.tools, where=f"{where}.tools")

    @property
    def declared(self) -> str:
        """The declared tool names, for messages."""
        return ", ".join(self.specs) or "none"

    def check_request(self, params: dict[str, Any]) -> tuple[str, str] | None:
        """(tool, message) for the first thing in the request's parameters the policy refuses, else None."""
        if params.get("functions") is not None or params.get("function_call") is not None:
            return "functions", "legacy 'functions' are not checked against the feature's tools; send 'tools'"
        offered = params.get("tools") or []
        for i, tool in enumerate(offered):
            fn = tool.get("function") if isinstance(tool, dict) else None
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not name:
                return str(i), f"tools[{i}]: only function tools can be declared for a feature"
            if name not in self.specs:
                return str(name), self._undeclared(str(name))
        choice = params.get("tool_choice")
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if name not in self.specs:
                return str(name), f"tool_choice: {self._undeclared(str(name))}"
        n = params.get("n")
        if isinstance(n, int) and n > 1 and offered and self.confirm:
            return "n", "n > 1 cannot be used with tools that need confirmation"
        return None

    def check_call(self, tool_call: Any) -> Refusal | None:
        """Why ``tool_call`` (an entry of a message's ``tool_calls``) may not be passed on, or None."""
        if not isinstance(tool_call, dict) or tool_call.get("type", "function") != "function":
            kind = tool_call.get("type") if isinstance(tool_call, dict) else type(tool_call).__name__
            return Refusal("tool.undeclared", f"a tool call of type {kind!r}")
        fn = tool_call.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(fn, dict) or not isinstance(name, str) or name not in self.specs:
            return Refusal("tool.undeclared", f"{name!r} is not declared (declared: {self.declared})")
        raw = fn.get("arguments")
        if isinstance(raw, str):
            try:
                args = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return Refusal("tool.invalid_arguments", f"{name}: arguments are not valid JSON")
        elif isinstance(raw, dict):
            args = raw
        else:
            return Refusal("tool.invalid_arguments", f"{name}: arguments are missing")
        error = next(iter(self._validators[name].iter_errors(args)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            # The failing keyword, not jsonschema's message: that would quote the argument values.
            return Refusal(
                "tool.invalid_arguments", f"{name}: arguments fail the schema at {where}: {error.validator}"
            )
        return None

    def _undeclared(self, name: str) -> str:
        return f"tool {name!r} is not declared for feature {self.feature!r} (declared: {self.declared})"


class ToolRequestStage(Stage):
    """Refuse a request that offers tools the feature does not declare (400, before anything is spent)."""

    name = "input.tools"
    layer = Layer.INPUT

    def __init__(self, policy: ToolPolicy) -> None:
        self.policy = policy

    async def run(self, call: Call) -> None:
        """InputRejected ``tool_undeclared`` for the first undeclared tool offered."""
        problem = self.policy.check_request(call.params)
        if problem is not None:
            tool, message = problem
            call.add_verdict(Verdict(self.name, Action.BLOCK, "tool.undeclared", detail=tool[:200]))
            raise InputRejected(message, code="tool_undeclared", param="tools")


class ToolPolicyStage(Stage):
    """Remove refused tool calls from the answer; hold back the ones that need the caller's confirmation."""

    name = "validation.tools"
    layer = Layer.VALIDATION

    def __init__(self, policy: ToolPolicy, confirmations: Confirmations | None = None) -> None:
        if policy.confirm and confirmations is None:
            raise ConfigError(f"feature {policy.feature!r}: tools that need confirmation need shared state")
        self.policy = policy
        self.confirmations = confirmations

    async def run(self, call: Call) -> None:
        """Check every tool call of every choice; OutputRejected when no choice keeps anything valid."""
        comp = call.completion
        if comp is None or not any(_has_calls(c) for c in comp.choices):
            return
        choices = [self._checked(call, choice) for choice in comp.choices]
        if not any(_has_calls(c) or _text(c) for c in choices):
            detail = "; ".join(v.detail or v.reason for v in call.verdicts if v.stage == self.name)[:500]
            call.add_verdict(Verdict(self.name, Action.BLOCK, "tool.refused", detail=detail))
            raise OutputRejected(
                f"the model answered only with tool calls keel refused ({detail})", code="tool_refused"
            )
        extra = dict(comp.extra)
        if self.policy.confirm and not was_confirmed(call):
            assert self.confirmations is not None
            for i, choice in enumerate(choices):
                calls = (choice.get("message") or {}).get("tool_calls") or []
                if not any(_name(tc) in self.policy.confirm for tc in calls):
                    continue
                if i > 0:  # one confirmation per answer; n > 1 is refused with such tools
                    choices[i] = _without_calls(choice)
                    continue
                pending = await self.confirmations.hold(call, calls)
                names = ",".join(dict.fromkeys(str(_name(tc)) for tc in pending["tool_calls"]))
                detail = f"id={pending['id']} tools={names} sha256={pending['sha256'][:16]}"
                call.add_verdict(
                    Verdict(self.name, Action.MODIFY, "tool.confirmation_required", detail=detail)
                )
                keel = extra.get("keel")
                extra["keel"] = {**(keel if isinstance(keel, dict) else {}), "pending_confirmation": pending}
                choices[i] = _asking(choice, pending)
        self._flag_side_effects(call, choices)
        call.completion = Completion(
            choices=choices, model=comp.model, usage=comp.usage, id=comp.id, created=comp.created, extra=extra
        )

    def _flag_side_effects(self, call: Call, choices: list[dict[str, Any]]) -> None:
        """Record each side-effecting call the answer passes on, so the ledger shows who was told to act."""
        for choice in choices:
            for tc in (choice.get("message") or {}).get("tool_calls") or ():
                spec = self.policy.specs.get(_name(tc) or "")
                if spec is not None and spec.side_effects:
                    detail = f"{spec.name} id={str(tc.get('id'))[:64]}"
                    call.add_verdict(Verdict(self.name, Action.FLAG, "tool.side_effect", detail=detail))

    def _checked(self, call: Call, choice: dict[str, Any]) -> dict[str, Any]:
        """``choice`` with its refused tool calls removed (and recorded)."""
        message = choice.get("message") or {}
        if not _has_calls(choice):
            return choice
        kept = []
        for tc in message.get("tool_calls") or ():
            refusal = self.policy.check_call(tc)
            if refusal is None:
                kept.append(tc)
            else:
                call.add_verdict(
                    Verdict(self.name, Action.MODIFY, refusal.reason, detail=refusal.detail[:300])
                )
        if message.get("function_call") is not None:
            call.add_verdict(
                Verdict(self.name, Action.MODIFY, "tool.undeclared", detail="a legacy function_call")
            )
        if (
            kept
            and message.get("function_call") is None
            and len(kept) == len(message.get("tool_calls") or ())
        ):
            return choice
        if not kept:
            return _without_calls(choice)
        return {
            **choice,
            "message": {k: v for k, v in message.items() if k != "function_call"} | {"tool_calls": kept},
        }


@dataclass(frozen=True, slots=True)
class ToolStages:
    """What a feature's declared tools add: a request check, a confirmation step, an answer check."""

    policy: ToolPolicy
    request: ToolRequestStage  # Input layer
    confirm: ToolConfirmStage | None  # last in the LLM layer, when a tool needs confirming
    check: ToolPolicyStage  # first in the Validation layer

    @classmethod
    def for_feature(cls, fc: FeatureConfig, state: StateBackend, *, where: str) -> ToolStages | None:
        """The stages feature ``fc`` needs, or None when it declares no tools (calls pass unchecked)."""
        policy = ToolPolicy.for_feature(fc, where=where)
        if policy is None:
            return None
        confirmations = Confirmations(state) if policy.confirm else None
        return cls(
            policy=policy,
            request=ToolRequestStage(policy),
            confirm=ToolConfirmStage(confirmations) if confirmations is not None else None,
            check=ToolPolicyStage(policy, confirmations),
        )


def _has_calls(choice: dict[str, Any]) -> bool:
    message = choice.get("message") or {}
    return bool(message.get("tool_calls")) or message.get("function_call") is not None


def _text(choice: dict[str, Any]) -> bool:
    content = (choice.get("message") or {}).get("content")
    return bool(content.strip()) if isinstance(content, str) else bool(content)


def _name(tool_call: dict[str, Any]) -> str | None:
    fn = tool_call.get("function") or {}
    name = fn.get("name")
    return name if isinstance(name, str) else None


def _without_calls(choice: dict[str, Any]) -> dict[str, Any]:
    """The choice as a plain text answer (an empty one if it had no text)."""
    message = {
        k: v for k, v in (choice.get("message") or {}).items() if k not in ("tool_calls", "function_call")
    }
    message.setdefault("role", "assistant")
    if message.get("content") is None:
        message["content"] = ""
    return {**choice, "message": message, "finish_reason": "stop"}


def _asking(choice: dict[str, Any], pending: dict[str, Any]) -> dict[str, Any]:
    """The choice as a short message that asks for confirmation instead of the held tool calls."""
    names = ", ".join(dict.fromkeys(str(_name(tc)) for tc in pending["tool_calls"]))
    text = f"Confirmation needed before calling {names}: confirm with keel.confirm = {pending['id']}."
    return {**choice, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
