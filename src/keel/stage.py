"""The stage interface: a stage reads the ``Call`` and adds to it; the pipeline decides the order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import ClassVar

from keel.call import Call


class Layer(StrEnum):
    """The five layers, in the order a call passes through them."""

    INPUT = "input"
    CONTEXT = "context"
    LLM = "llm"
    VALIDATION = "validation"
    MONITORING = "monitoring"


class Stage(ABC):
    """One step of one layer. ``name`` is ``<layer>.<stage>``, used in verdicts and timings."""

    name: ClassVar[str]
    layer: ClassVar[Layer]

    @abstractmethod
    async def run(self, call: Call) -> None:
        """Read the call and add to it; record a blocking Verdict (and raise) to stop it."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
