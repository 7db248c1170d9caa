"""How close an algorithm's weight updates are to backprop's, per parameter.

Every function takes an update (a descent direction, i.e. an estimate of ``-dL/dtheta``) and
the autograd gradient ``dL/dtheta`` of the same batch and weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

__all__ = ["Fidelity", "compare", "gradient_angle", "layer_fidelity", "relative_error",
           "squared_divergence"]


def gradient_angle(update: Tensor, grad: Tensor) -> float:
    """Angle in degrees between the flattened update and ``-grad`` (Lillicrap et al. 2016);
    0 means the exact descent direction, 90 orthogonal. NaN if either is all zero."""
    u, g = update.detach().double().flatten(), -grad.detach().double().flatten()
    denom = float(u.norm() * g.norm())
    if denom == 0.0:
        return math.nan
    cos = max(-1.0, min(1.0, float(u @ g) / denom))
    return math.degrees(math.acos(cos))


def relative_error(update: Tensor, grad: Tensor) -> float:
    """``||update + grad|| / ||grad||``."""
    g = grad.detach().double()
    return float((update.detach().double() + g).norm() / g.norm())


def squared_divergence(update: Tensor, grad: Tensor) -> float:
    """``sum (update + grad)^2``: the thesis's "divergence" (Figs 6.3, 6.10)."""
    return float(((update.detach().double() + grad.detach().double()) ** 2).sum())


@dataclass(frozen=True)
class Fidelity:
    angle_degrees: float
    relative_error: float
    squared_divergence: float


def compare(updates: Mapping[str, Tensor], grads: Mapping[str, Tensor]) -> dict[str, Fidelity]:
    """Per-parameter fidelity for every name present in both mappings."""
    return {k: Fidelity(gradient_angle(updates[k], grads[k]), relative_error(updates[k], grads[k]),
                        squared_divergence(updates[k], grads[k]))
            for k in updates if k in grads}


def layer_fidelity(model, x0: Tensor, target: Tensor) -> list[Fidelity]:
    """Per-layer fidelity of ``model.updates(x0, target)`` (a PC or AR network) against the
    autograd gradient of the model's own loss (``model.loss``; ``1/2||y - T||^2`` for PC) at
    the same weights and batch."""
    from .backprop import gradients
    from .graph import Loss

    kind = getattr(model, "loss", Loss.MSE_HALF)
    spec = model.spec
    device = getattr(model, "device", None)  # torch models: where their synapses live
    x0 = x0.to(device=device, dtype=spec.torch_dtype)
    target = target.to(device=device, dtype=spec.torch_dtype)
    up = model.updates(x0, target)
    grads = gradients(model.params, spec, x0, target, kind)
    return [Fidelity(gradient_angle(u, g), relative_error(u, g), squared_divergence(u, g))
            for u, g in zip(up.weights, grads.weights)]
