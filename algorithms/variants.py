"""Named model variants: backprop and predictive coding with each biological relaxation.

A variant is a function of a base :class:`PCSpec`; all variants built from one spec share
its seed and therefore start from identical forward weights.
"""

from __future__ import annotations

from enum import Enum

from .backprop import BackpropNetwork
from .pc import PredictiveCodingNetwork
from .spec import BackwardPathway, DerivativeUse, ErrorConnections, PCSpec, Relaxations
from .training import Model

__all__ = ["Variant", "build_model", "variant_spec"]


class Variant(Enum):
    """The comparison of thesis section 3.5 (Figs 3.17-3.22), plus feedback alignment."""

    BACKPROP = "backprop"
    PC = "pc"
    LEARNED_BACKWARD = "learned-backward"
    FEEDBACK_ALIGNMENT = "feedback-alignment"
    NO_DERIVATIVE = "no-derivative"
    LEARNED_ERROR = "learned-error"
    FULLY_RELAXED = "fully-relaxed"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Variant.BACKPROP: "backprop",
    Variant.PC: "standard PC",
    Variant.LEARNED_BACKWARD: "learned backward weights",
    Variant.FEEDBACK_ALIGNMENT: "feedback alignment",
    Variant.NO_DERIVATIVE: "no nonlinear derivative",
    Variant.LEARNED_ERROR: "learned error connections",
    Variant.FULLY_RELAXED: "fully relaxed",
}

_RELAXATIONS = {
    Variant.BACKPROP: Relaxations(),
    Variant.PC: Relaxations(),
    Variant.LEARNED_BACKWARD: Relaxations(backward=BackwardPathway.LEARNED),
    Variant.FEEDBACK_ALIGNMENT: Relaxations(backward=BackwardPathway.RANDOM),
    Variant.NO_DERIVATIVE: Relaxations(derivative=DerivativeUse.DROPPED_IN_INFERENCE),
    Variant.LEARNED_ERROR: Relaxations(error_connections=ErrorConnections.LEARNED_PSI),
    Variant.FULLY_RELAXED: Relaxations(
        backward=BackwardPathway.LEARNED,
        derivative=DerivativeUse.DROPPED_IN_INFERENCE,
        error_connections=ErrorConnections.LEARNED_PSI,
    ),
}


def variant_spec(variant: Variant, base: PCSpec) -> PCSpec:
    """``base`` with the variant's relaxations (the base's own relaxations are replaced)."""
    return base.replace(relaxations=_RELAXATIONS[variant])


def build_model(variant: Variant, base: PCSpec) -> Model:
    """A fresh model for ``variant``, initialised from ``base.seed``."""
    spec = variant_spec(variant, base)
    if variant is Variant.BACKPROP:
        return BackpropNetwork(spec)
    return PredictiveCodingNetwork(spec)
