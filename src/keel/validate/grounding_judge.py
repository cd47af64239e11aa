"""An optional LLM judge for grounding: does the source text support the answer, claim by claim?

The support score catches added claims but hardly a single changed detail (a swapped name, a
negation: docs/benchmarks.md). A feature with ``grounding.judge`` asks that model about every
answer the score let through; UNSUPPORTED makes the answer unsupported. A judge that fails or
answers neither word decides nothing: the score's decision stands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.call import Usage
from keel.context.untrusted import wrap_untrusted
from keel.errors import KeelError
from keel.llm.providers.base import ModelRequest, Provider

MAX_SOURCES = 12000  # characters of sources shown to the judge
INSTRUCTION = (
    "You check an assistant's answer against the sources it was given. Every claim in the answer "
    "must be stated in the sources: a changed number, name, order or negation, or a claim the "
    "sources do not make, is UNSUPPORTED. Wording may differ. Answer with exactly one word: "
    "SUPPORTED or UNSUPPORTED."
)
_WORD = re.compile(r"\b(UNSUPPORTED|SUPPORTED)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GroundingRuling:
    """The judge's word: ``supported`` None when it could not decide."""

    supported: bool | None
    detail: str
    usage: Usage | None = None


class GroundingJudge:
    """Asks one configured model whether the sources support an answer."""

    def __init__(self, provider: Provider, model: str, *, timeout: float = 20.0) -> None:
        self.provider = provider
        self.model = model
        self.timeout = timeout

    async def rule(self, answer: str, sources: list[str], *, feature: str = "") -> GroundingRuling:
        """SUPPORTED, UNSUPPORTED or undecided; never raises for upstream failures."""
        shown = "\n\n".join(sources)[:MAX_SOURCES]
        request = ModelRequest(
            messages=[
                {"role": "system", "content": INSTRUCTION},
                {
                    "role": "user",
                    "content": f"Sources:\n{wrap_untrusted(shown, 'sources', kind='text')}\n\n"
                    f"Answer:\n{wrap_untrusted(answer, 'answer', kind='text')}",
                },
            ],
            params={"temperature": 0, "max_tokens": 5},
            timeout=self.timeout,
            feature=f"{feature}:grounding-judge",
        )
        try:
            completion = await self.provider.complete(request)
        except KeelError as exc:  # optional: a failing judge leaves the score's decision
            return GroundingRuling(None, f"judge {self.model} failed: {exc.code}")
        m = _WORD.search(completion.text)
        if m is None:
            return GroundingRuling(None, f"judge {self.model} answered neither word", completion.usage)
        supported = m.group(1).upper() == "SUPPORTED"
        word = "supported" if supported else "unsupported"
        return GroundingRuling(supported, f"judge {self.model}: {word}", completion.usage)
