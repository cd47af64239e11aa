"""What a running feature serves: the version a label points at now, or a weighted split between labels.

The source resolves every label at load (so a broken or undeclared-variable version stops keel
before it serves), then polls the registry's revision at most every ``refresh_seconds``, off the
event loop. A label moved by ``keel prompts label`` is served from the next refresh on, without a
restart; a moved label whose version fails to compile keeps serving the version it had.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic

from keel.errors import ConfigError
from keel.prompts.registry import PromptRef, PromptRegistry
from keel.prompts.template import PromptTemplate

log = logging.getLogger("keel.prompts")

Check = Callable[[PromptTemplate], None]


@dataclass(frozen=True, slots=True)
class Arm:
    """One label of a split and the version it serves."""

    label: str
    weight: float
    template: PromptTemplate


class PromptSource:
    """A feature's prompt: one reference (``support@production``) or weighted labels of one prompt."""

    def __init__(
        self,
        registry: PromptRegistry,
        name: str,
        split: dict[str, float],
        *,
        refresh_seconds: float,
        check: Check | None = None,
    ) -> None:
        if not split or any(w <= 0 for w in split.values()):
            raise ConfigError(f"prompt {name!r}: every label of a split needs a weight > 0")
        self.registry = registry
        self.name = name
        self.split = dict(split)
        self.refresh_seconds = refresh_seconds
        self._check = check
        self._lock = threading.Lock()
        self._task: asyncio.Future[None] | None = None
        self._revision = registry.revision()
        self.arms = self._resolve()
        self._checked_at = monotonic()

    @property
    def first(self) -> PromptTemplate:
        """The version of the heaviest label (what a non-split feature serves)."""
        return max(self.arms, key=lambda a: a.weight).template

    def _resolve(self) -> list[Arm]:
        arms = []
        for label, weight in self.split.items():
            template = self.registry.template(PromptRef(self.name, label))
            if self._check is not None:
                self._check(template)
            arms.append(Arm(label, weight, template))
        return arms

    def pick(self, sticky: str | None = None) -> Arm:
        """The arm for one call: by weight, the same one for the same ``sticky`` value (a user id)."""
        self._maybe_refresh()
        arms = self.arms
        if len(arms) == 1:
            return arms[0]
        total = sum(a.weight for a in arms)
        if sticky:
            digest = hashlib.blake2b(f"{self.name}:{sticky}".encode(), digest_size=8).digest()
            point = int.from_bytes(digest, "big") / 2**64 * total
        else:
            point = random.random() * total
        for arm in arms:
            point -= arm.weight
            if point < 0:
                return arm
        return arms[-1]

    def _maybe_refresh(self) -> None:
        if monotonic() - self._checked_at < self.refresh_seconds or self._task is not None:
            return
        self._checked_at = monotonic()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.refresh()
            return
        self._task = loop.run_in_executor(None, self._refresh_quietly)
        self._task.add_done_callback(self._done)

    def _refresh_quietly(self) -> None:
        self.refresh()

    def _done(self, task: asyncio.Future[None]) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is not None:  # a bug, not a registry outage: say so
            log.error("prompt %s: label refresh crashed: %r", self.name, task.exception())

    def refresh(self) -> bool:
        """Re-resolve the labels if the registry changed; True when the served versions changed."""
        with self._lock:
            try:
                revision = self.registry.revision()
                if revision == self._revision:
                    return False
                arms = self._resolve()
            except ConfigError as exc:  # keep serving what we have; the operator sees why
                log.warning(
                    "prompt %s: label refresh failed, still serving the previous versions: %s", self.name, exc
                )
                return False
            self._revision = revision
            changed = [a.template.number for a in arms] != [a.template.number for a in self.arms]
            self.arms = arms
            if changed:
                log.info(
                    "prompt %s now serves %s",
                    self.name,
                    ", ".join(f"{a.label}=v{a.template.number}" for a in arms),
                )
            return changed
