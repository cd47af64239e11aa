"""Model routing: rules by input size and wording, and a trained complexity scorer (small vs large model).

``RoutingProvider`` is itself a provider that wraps one provider per configured model.
"""

from __future__ import annotations

from keel.llm.routing.calibration import ShareCalibrator
from keel.llm.routing.complexity import ComplexityModel, shipped_model
from keel.llm.routing.router import Route, RoutingProvider
from keel.llm.routing.rules import Rules, last_user_text

__all__ = [
    "ComplexityModel",
    "Route",
    "RoutingProvider",
    "Rules",
    "ShareCalibrator",
    "last_user_text",
    "shipped_model",
]
