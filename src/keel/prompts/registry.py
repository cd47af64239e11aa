"""The prompt registry: every change an immutable, numbered version; labels that point at versions.

A version is the prompt file's text as it was registered, with a number (1, 2, … per prompt) and
the content hash of ``template.py``. Registering text whose hash equals the latest version's is a
no-op, so syncing an unchanged ``prompts/`` directory never grows the registry. A label
(``production``, ``staging``, any name) points at one version; moving it is a deploy or a
rollback, recorded as an append-only event. The built-in label ``latest`` always means the newest
version, and a prompt's first version gets ``production`` so a fresh project serves something.

Two backends share one contract (``tests/prompts/registry_contract.py``): SQLite (the default, in
keel's state file) and PostgreSQL (``prompts.registry: postgresql://…``) for several replicas.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from keel.errors import ConfigError, InvalidRequest
from keel.prompts.template import PromptTemplate, parse_prompt

LATEST = "latest"
FIRST_LABEL = "production"
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One registered version of a prompt."""

    name: str
    number: int
    hash: str
    text: str
    created_at: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """A label set or moved: ``previous`` is None the first time."""

    name: str
    label: str
    number: int
    previous: int | None
    at: float
    actor: str = ""


@dataclass(frozen=True, slots=True)
class PromptRef:
    """``NAME@REF``: a label, a version number, or a content hash (prefix)."""

    name: str
    ref: str = LATEST

    @classmethod
    def parse(cls, text: str, *, default: str = LATEST) -> PromptRef:
        """``support@production`` → PromptRef("support", "production"); a bare name gets ``default``."""
        name, _, ref = text.partition("@")
        name, ref = name.strip(), ref.strip() or default
        if not _NAME.match(name):
            raise InvalidRequest(f"bad prompt reference {text!r}: expected NAME@LABEL or NAME@VERSION")
        return cls(name, ref)

    def __str__(self) -> str:
        return f"{self.name}@{self.ref}"


def check_label(label: str) -> str:
    """``label`` if it is a usable label name (not a number, not ``latest``), else InvalidRequest."""
    if not _LABEL.match(label):
        raise InvalidRequest(f"bad label {label!r}: a letter, then letters, digits, '_', '-' or '.'")
    if label == LATEST:
        raise InvalidRequest("'latest' always means the newest version; it cannot be moved")
    return label


class PromptRegistry(ABC):
    """Where prompt versions and labels live. Implementations store; this class holds the rules."""

    where: str = "prompt registry"

    # -- storage, per backend --------------------------------------------------------------------

    @abstractmethod
    def _add_version(self, name: str, text: str, hash_: str, note: str) -> tuple[PromptVersion, bool]:
        """Append a version numbered one past the newest, atomically, unless the newest has ``hash_``
        already (then return it and False); the first version also gets ``production``."""

    @abstractmethod
    def versions(self, name: str) -> list[PromptVersion]:
        """Every version of ``name``, oldest first (empty when unknown)."""

    @abstractmethod
    def names(self) -> list[str]:
        """Every prompt with at least one version, sorted."""

    @abstractmethod
    def labels(self, name: str) -> dict[str, int]:
        """Label → version number for ``name`` (``latest`` not included)."""

    @abstractmethod
    def _move_label(self, name: str, label: str, number: int, actor: str) -> LabelEvent:
        """Point ``label`` at ``number`` and append the event, atomically."""

    @abstractmethod
    def history(self, name: str) -> list[LabelEvent]:
        """Every label event of ``name``, oldest first."""

    @abstractmethod
    def revision(self) -> int:
        """A number that grows whenever any version or label changes (cheap: for polling)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    # -- the rules ---------------------------------------------------------------------------------

    def register(self, name: str, text: str, *, note: str = "") -> tuple[PromptVersion, bool]:
        """Record ``text`` as the newest version of ``name`` unless it is unchanged; True when new.

        The text is checked (YAML, templates, declared variables, schema) first: an invalid prompt
        never becomes a version.
        """
        if not _NAME.match(name):
            raise ConfigError(f"bad prompt name {name!r}")
        template = parse_prompt(text, name=name, where=f"prompt {name!r}")
        return self._add_version(name, text, template.version, note)

    def sync_dir(self, directory: Path) -> list[PromptVersion]:
        """Register every ``*.yaml``/``*.yml`` file of ``directory`` that changed; the new versions."""
        if not directory.is_dir():
            return []
        added: list[PromptVersion] = []
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: cannot read prompt file: {exc}") from None
            try:
                version, new = self.register(path.stem, text, note=f"from {path.name}")
            except ConfigError as exc:
                raise ConfigError(str(exc).replace(f"prompt {path.stem!r}", str(path), 1)) from None
            if new:
                added.append(version)
        return added

    def get(self, ref: PromptRef | str) -> PromptVersion:
        """The version ``ref`` names: a label, ``latest``, a number (``3`` or ``v3``) or a hash prefix."""
        r = PromptRef.parse(ref) if isinstance(ref, str) else ref
        versions = self.versions(r.name)
        if not versions:
            known = ", ".join(self.names()) or "none yet"
            raise ConfigError(f"{self.where}: no prompt {r.name!r} (registered: {known})")
        if r.ref == LATEST:
            return versions[-1]
        digits = r.ref[1:] if r.ref[:1] in "vV" and r.ref[1:].isdigit() else r.ref
        if digits.isdigit():
            for v in versions:
                if v.number == int(digits):
                    return v
            raise ConfigError(f"{self.where}: prompt {r.name!r} has no version {digits} (1-{len(versions)})")
        labels = self.labels(r.name)
        if r.ref in labels:
            return self._by_number(versions, labels[r.ref])
        hits = [v for v in versions if len(r.ref) >= 4 and v.hash.startswith(r.ref.lower())]
        if len(hits) == 1:
            return hits[0]
        shown = ", ".join(f"{k}→{n}" for k, n in sorted(labels.items())) or "none"
        raise ConfigError(
            f"{self.where}: prompt {r.name!r} has no label or version {r.ref!r} (labels: {shown})"
        )

    def template(self, ref: PromptRef | str) -> PromptTemplate:
        """The compiled template of the version ``ref`` names."""
        v = self.get(ref)
        return parse_prompt(v.text, name=v.name, where=f"prompt {v.name}@{v.number}", number=v.number)

    def set_label(self, ref: PromptRef | str, label: str, *, actor: str = "") -> LabelEvent:
        """Point ``label`` at the version ``ref`` names (a deploy, or a rollback)."""
        v = self.get(ref)
        return self._move_label(v.name, check_label(label), v.number, actor)

    @staticmethod
    def _by_number(versions: list[PromptVersion], number: int) -> PromptVersion:
        return next(v for v in versions if v.number == number)

    def __enter__(self) -> PromptRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
