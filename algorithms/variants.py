"""Named model variants: backprop, predictive coding and activation relaxation with their
biological relaxations.

A variant is a function of a base :class:`PCSpec`; all variants built from one spec share
its seed and therefore start from identical forward weights.
"""

from __future__ import annotations

from enum import Enum

from .ar import ActivationRelaxationNetwork
from .backprop import BackpropNetwork
from .device import DeviceLike
from .graph import Loss
from .pc import PredictiveCodingNetwork
from .spec import (BackwardPathway, DerivativeUse, ErrorConnections, ErrorToValue, ForwardPass,
                   PassValue, PCSpec, PsiPlacement, Relaxations)
from .training import Model

__all__ = ["ARVariant", "PSI_VARIANTS", "THESIS_VARIANTS", "Variant", "build_model",
           "variant_spec"]


class Variant(Enum):
    """The comparison of thesis section 3.5 (Figs 3.17-3.22), plus feedback alignment."""

    BACKPROP = "backprop"
    PC = "pc"
    LEARNED_BACKWARD = "learned-backward"
    FEEDBACK_ALIGNMENT = "feedback-alignment"
    NO_DERIVATIVE = "no-derivative"
    LEARNED_ERROR = "learned-error"
    FULLY_RELAXED = "fully-relaxed"
    PSI_ON_VALUE = "psi-value"  # beyond the thesis (issue 13): not in THESIS_VARIANTS

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
    Variant.PSI_ON_VALUE: "learned psi on the value, psi^T feedback",
}

THESIS_VARIANTS: tuple[Variant, ...] = tuple(v for v in Variant if v is not Variant.PSI_ON_VALUE)
"""The comparison of thesis 3.5 (what ``--variants all`` runs)."""

PSI_VARIANTS: frozenset[Variant] = frozenset({Variant.LEARNED_ERROR, Variant.FULLY_RELAXED,
                                              Variant.PSI_ON_VALUE})
"""Variants with dense error connections ``psi``."""

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
    # eps = psi x - mu_hat with the exact gradient psi^T eps fed back to the value neuron;
    # pair it with PsiInit.IDENTITY_NOISE (the |N(0, 0.05^2)| start is unstable there)
    Variant.PSI_ON_VALUE: Relaxations(
        error_connections=ErrorConnections.LEARNED_PSI,
        error_to_value=ErrorToValue.PSI_TRANSPOSE,
        psi_placement=PsiPlacement.VALUE,
    ),
}


class ARVariant(Enum):
    """Activation relaxation and its relaxations (thesis 6.4.2, Figs 6.13-6.16)."""

    BACKPROP = "backprop"
    AR = "ar"
    LEARNED_BACKWARD = "ar-learned-backward"  # R1
    FEEDBACK_ALIGNMENT = "ar-feedback-alignment"  # R2
    NO_DERIVATIVE = "ar-no-derivative"  # R3
    COMBINED = "ar-combined"  # R4 = R1 + R3
    UNFROZEN_RELAXATION_GAIN = "ar-r5"
    UNFROZEN_UPDATE_GAIN = "ar-r6"
    UNFROZEN_GAINS = "ar-r7"
    RELAXED_PRESYNAPTIC = "ar-r8"

    @property
    def label(self) -> str:
        return _AR_LABELS[self]


_AR_LABELS = {
    ARVariant.BACKPROP: "backprop",
    ARVariant.AR: "activation relaxation",
    ARVariant.LEARNED_BACKWARD: "R1 learned backward weights",
    ARVariant.FEEDBACK_ALIGNMENT: "R2 feedback alignment",
    ARVariant.NO_DERIVATIVE: "R3 no f' in relaxation",
    ARVariant.COMBINED: "R4 learned backward + no f'",
    ARVariant.UNFROZEN_RELAXATION_GAIN: "R5 current f' in relaxation",
    ARVariant.UNFROZEN_UPDATE_GAIN: "R6 current f' in update",
    ARVariant.UNFROZEN_GAINS: "R7 current f' in both",
    ARVariant.RELAXED_PRESYNAPTIC: "R8 relaxed presynaptic activity",
}

_AR_RELAXATIONS = {
    ARVariant.BACKPROP: Relaxations(),
    ARVariant.AR: Relaxations(),
    ARVariant.LEARNED_BACKWARD: Relaxations(backward=BackwardPathway.LEARNED),
    ARVariant.FEEDBACK_ALIGNMENT: Relaxations(backward=BackwardPathway.RANDOM),
    ARVariant.NO_DERIVATIVE: Relaxations(derivative=DerivativeUse.DROPPED_IN_INFERENCE),
    ARVariant.COMBINED: Relaxations(backward=BackwardPathway.LEARNED,
                                    derivative=DerivativeUse.DROPPED_IN_INFERENCE),
    ARVariant.UNFROZEN_RELAXATION_GAIN: Relaxations(
        forward_pass=ForwardPass(gain_in_relaxation=PassValue.CURRENT)),
    ARVariant.UNFROZEN_UPDATE_GAIN: Relaxations(
        forward_pass=ForwardPass(gain_in_update=PassValue.CURRENT)),
    ARVariant.UNFROZEN_GAINS: Relaxations(forward_pass=ForwardPass(
        gain_in_relaxation=PassValue.CURRENT, gain_in_update=PassValue.CURRENT)),
    ARVariant.RELAXED_PRESYNAPTIC: Relaxations(
        forward_pass=ForwardPass(presynaptic_in_update=PassValue.CURRENT)),
}


def variant_spec(variant: Variant | ARVariant, base: PCSpec) -> PCSpec:
    """``base`` with the variant's relaxations (the base's own relaxations are replaced)."""
    table = _AR_RELAXATIONS if isinstance(variant, ARVariant) else _RELAXATIONS
    return base.replace(relaxations=table[variant])


def build_model(variant: Variant | ARVariant, base: PCSpec, loss: Loss = Loss.MSE_SUM, *,
                device: DeviceLike | None = None) -> Model:
    """A fresh model for ``variant`` on ``device`` (default CPU), initialised from
    ``base.seed``. ``loss`` applies to activation relaxation (the PC energy and the backprop
    twin use ``1/2||y - T||^2``)."""
    spec = variant_spec(variant, base)
    if variant is Variant.BACKPROP:
        return BackpropNetwork(spec, device=device)
    if variant is ARVariant.BACKPROP:
        return BackpropNetwork(spec, loss=loss, device=device)
    if isinstance(variant, ARVariant):
        return ActivationRelaxationNetwork(spec, loss=loss, device=device)
    return PredictiveCodingNetwork(spec, device=device)
