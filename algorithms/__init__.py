"""Rate-based PyTorch backend of predictive-circuits.

Import what you need from the submodules (``algorithms.spec``, ``algorithms.pc``,
``algorithms.backprop``, ``algorithms.data``, ``algorithms.training``,
``algorithms.variants``); nothing is computed at import time.
"""

from .spec import (
    Activation,
    BackwardPathway,
    BatchReduction,
    DerivativeUse,
    ErrorConnections,
    ErrorToValue,
    HiddenInit,
    PCSpec,
    PsiInit,
    Relaxations,
    SpecError,
)

__all__ = [
    "Activation",
    "BackwardPathway",
    "BatchReduction",
    "DerivativeUse",
    "ErrorConnections",
    "ErrorToValue",
    "HiddenInit",
    "PCSpec",
    "PsiInit",
    "Relaxations",
    "SpecError",
]
