"""A feature's privacy and leakage guards, built from ``input`` and ``output`` in keel.yaml.

They span three layers: PII and secret redaction in the Input layer, the canary in the LLM layer
(after the prompt is rendered), and the leakage checks in the Validation layer. ``features.py``
puts each list in its layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keel.input.pii import PIIDetector
from keel.input.redact import PIIStage, SecretsStage
from keel.input.secrets import SecretDetector
from keel.llm.canary import CanaryStage, canary_token
from keel.settings import FeatureConfig
from keel.stage import Stage
from keel.validate.leakage import LeakageStage, Scanner


@dataclass(slots=True)
class Guards:
    """The stages for each layer."""

    input: list[Stage] = field(default_factory=list)
    llm: list[Stage] = field(default_factory=list)
    leakage: LeakageStage | None = None


def build_guards(fc: FeatureConfig, *, where: str) -> Guards:
    """The guards ``fc`` turns on; ConfigError names the key when one is misconfigured (``where``:
    the feature, as ``keel.yaml: features[2]``)."""
    guards = Guards()
    pii = PIIStage.for_guard(fc.input.pii, where=f"{where}.input.pii")
    secrets = SecretsStage.for_action(fc.input.secrets)
    guards.input += [st for st in (secrets, pii) if st is not None]

    out = fc.output
    scanners = []
    if out.secrets != "off":
        scanners.append(Scanner("secret", out.secrets, SecretDetector().find))
    if out.pii != "off":  # the types and threshold of input.pii
        pii_in = fc.input.pii
        detector = PIIDetector(
            pii_in.entities, score_threshold=pii_in.score_threshold, where=f"{where}.input.pii"
        )
        scanners.append(Scanner("pii", out.pii, detector.find))
    canary = canary_token(fc.name) if out.canary else None
    if canary is not None:
        guards.llm.append(CanaryStage(canary))
    leak_chars = out.min_leak_chars if out.system_prompt_leak else None
    if scanners or canary is not None or leak_chars is not None:
        guards.leakage = LeakageStage(canary, leak_chars, scanners, live=True)
    return guards
