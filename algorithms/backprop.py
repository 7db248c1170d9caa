"""The backprop twin: the same MLP, initial weights, loss and learning rate as the PC network.

The default loss is the PC network's output energy at the feedforward state,
``1/2 ||target - f_L(a_L)||^2`` per sample (``Loss.MSE_HALF``; activation relaxation's
comparisons use ``Loss.MSE_SUM``), reduced over the batch as the spec says, and the
gradients come from ``torch.autograd``. This is both the baseline of every accuracy curve
and the oracle the PC rules are tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .graph import Loss, loss_value, per_sample_loss
from .device import DeviceLike
from .pc import LayeredModel, PCParams, check_batch, feedforward, init_params
from .spec import BatchReduction, PCSpec

__all__ = ["BackpropNetwork", "gradients", "gradients_and_loss", "loss"]


def loss(params: PCParams, spec: PCSpec, x0: Tensor, target: Tensor,
         kind: Loss = Loss.MSE_HALF) -> Tensor:
    """Per-sample loss of the feedforward prediction (shape ``B``)."""
    return per_sample_loss(kind, feedforward(params, spec, x0).values[-1], target)


def gradients(params: PCParams, spec: PCSpec, x0: Tensor, target: Tensor,
              kind: Loss = Loss.MSE_HALF) -> PCParams:
    """Autograd gradients of the batch-reduced loss w.r.t. the forward weights and biases
    (``backward`` and ``psi`` slots are ``None``)."""
    return gradients_and_loss(params, spec, x0, target, kind)[0]


def gradients_and_loss(params: PCParams, spec: PCSpec, x0: Tensor, target: Tensor,
                       kind: Loss = Loss.MSE_HALF) -> tuple[PCParams, float]:
    """:func:`gradients` and the batch's summed per-sample loss, from one forward pass."""
    leaves = [w.detach().requires_grad_(True) for w in params.weights]
    bleaves = [None if b is None else b.detach().requires_grad_(True) for b in params.biases]
    p = PCParams(leaves, bleaves, [None] * len(leaves), [None] * (len(leaves) + 1))
    per_sample = loss(p, spec, x0, target, kind)
    total = per_sample.mean() if spec.batch_reduction is BatchReduction.MEAN else per_sample.sum()
    inputs = leaves + [b for b in bleaves if b is not None]
    grads = torch.autograd.grad(total, inputs)
    gw = list(grads[: len(leaves)])
    it = iter(grads[len(leaves):])
    gb = [None if b is None else next(it) for b in bleaves]
    return (PCParams(gw, gb, [None] * len(gw), [None] * (len(gw) + 1)),
            float(per_sample.detach().sum()))


class BackpropNetwork(LayeredModel):
    """SGD with autograd on the same architecture; ``train_batch`` returns the batch's summed
    loss before the update (the analogue of the PC energy). Only the forward weights and
    biases of ``params`` are used, copied (the twin never shares synapses with a PC net)."""

    _detached_view = False  # autograd must see the parameters themselves

    def __init__(self, spec: PCSpec, params: PCParams | None = None,
                 loss: Loss = Loss.MSE_HALF, *, device: DeviceLike | None = None) -> None:
        p = params if params is not None else init_params(spec, device=device)
        own = PCParams([w.clone() for w in p.weights],
                       [None if b is None else b.clone() for b in p.biases],
                       [None] * spec.n_layers, [None] * (spec.n_layers + 1))
        super().__init__(spec, own, device)
        self.loss = loss
        for theta in self.parameters():  # trained by autograd, unlike the local rules
            theta.requires_grad_(True)

    def train_batch(self, x0: Tensor, target: Tensor) -> float:
        """One SGD step on the batch-reduced loss, by ``backward()`` into the parameters'
        ``.grad`` (plain autograd: the gradients come in the parameters' own layout, so the
        update is one contiguous pass); returns the batch's summed loss before the step."""
        x0, target = check_batch(self.spec, x0, target, device=self.device)
        assert target is not None
        spec = self.spec
        with torch.enable_grad():
            y = feedforward(self.params, spec, x0).values[-1]
            summed = loss_value(self.loss, y, target)
            total = summed / len(x0) if spec.batch_reduction is BatchReduction.MEAN else summed
            total.backward()
        eta, c = spec.learning_rate, spec.update_clamp
        with torch.no_grad():
            for theta in (*self.params.weights, *self.params.biases):
                if theta is None:
                    continue
                g = theta.grad
                if g is None:
                    continue
                if c is not None:
                    g = g.clamp(-c, c)
                theta.add_(g, alpha=-eta)
                theta.grad = None
        return float(summed.detach())
