"""Elementwise activations as (f, f') pairs.

Every error neuron needs both the nonlinearity ``f`` applied to its summed top-down
input ``a`` and the local gain ``f'(a)``. Keeping them together in one enum means the
torch backend and the Brian2 circuits (issue 4) read the same definitions.
"""

from __future__ import annotations

from enum import Enum

import torch


class Activation(Enum):
    """Elementwise nonlinearity ``f`` with its derivative ``f'``.

    ``relu'(0)`` is 0, the convention of ``torch.autograd``, so hand-written rules and
    autograd agree exactly at the kink.
    """

    LINEAR = "linear"
    RELU = "relu"
    TANH = "tanh"
    SIGMOID = "sigmoid"

    def f(self, a: torch.Tensor) -> torch.Tensor:
        """``f(a)``, any shape."""
        if self is Activation.LINEAR:
            return a
        if self is Activation.RELU:
            return torch.relu(a)
        if self is Activation.TANH:
            return torch.tanh(a)
        return torch.sigmoid(a)

    def df_from_f(self, fa: torch.Tensor) -> torch.Tensor:
        """``f'(a)`` from ``fa = f(a)`` without recomputing ``f``: the same arithmetic as
        :meth:`df` after its own ``f``, so the result is bitwise equal."""
        if self is Activation.LINEAR:
            return torch.ones_like(fa)
        if self is Activation.RELU:
            return (fa > 0).to(fa.dtype)
        if self is Activation.TANH:
            return 1.0 - fa * fa
        return fa * (1.0 - fa)

    def df(self, a: torch.Tensor) -> torch.Tensor:
        """``f'(a)``, same shape as ``a``."""
        if self is Activation.LINEAR:
            return torch.ones_like(a)
        if self is Activation.RELU:
            return (a > 0).to(a.dtype)
        if self is Activation.TANH:
            t = torch.tanh(a)
            return 1.0 - t * t
        s = torch.sigmoid(a)
        return s * (1.0 - s)
