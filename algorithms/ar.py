"""Activation relaxation (thesis 6.4): one population per layer relaxes to the backprop adjoint.

Batched rows, layers as in :mod:`algorithms.pc` (``W_l``: ``n_{l+1} x n_l``). After the
forward pass ``xbar_{l+1} = f(xbar_l W_l^T + b_l)`` with gains ``g_{l+1} = f'(a_{l+1})``:

    x_L  := dL/dx_L (xbar_L, T)                      (clamped at the loss gradient)
    x_l  <- x_l + rate * (-x_l + (h_{l+1} * x_{l+1}) B_l^T)    l = L-1 .. 1
    dW_l  = -(h'_{l+1} * x*_{l+1})^T xbar_l          (descent direction, -dL/dW at convergence)

with ``B_l = W_l^T`` (exact), a fixed random or a learned matrix (``dB_l = dW_l^T``);
``h = g`` frozen, ``f'`` at the current activity (R5) or 1 (no ``f'``); ``h' = g`` frozen,
current (R6) or 1; presynaptic ``xbar_l`` or the relaxed ``x_l`` (R8). The options are the
shared :class:`~algorithms.spec.Relaxations`: ``backward``, ``derivative`` and
``forward_pass``. Pure functions first, then :class:`ActivationRelaxationNetwork`.

``relax_input`` (default off, the thesis text) follows the authors' code
(Dynamical-Activation-Relaxation ``main.py``, ``FCLayer.backward``/``update_weights``): the
input layer's activity ``x_0`` also starts at the input and relaxes by the same rule,
``x_0 <- x_0 + rate * (-x_0 + (h_1 * x_1) W_0)``, towards ``dL/dx_0``. It enters only the
forward-pass options that read the current activity: the gain of ``dW_0`` under R6/R7 is
``f'(x_0 W_0^T)`` and the presynaptic term of ``dW_0`` under R8 is ``x_0`` (exact AR and
R1-R5 are unchanged). Separate backward weights have no ``B_0``, so it needs
``backward=TRANSPOSE``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .device import DeviceLike
from .graph import Loss, Schedule, loss_gradient, loss_value
from .pc import (Forward, LayeredModel, PCParams, PCUpdate, apply_update, check_batch,
                 feedforward)
from .spec import Activation, BackwardPathway, BatchReduction, DerivativeUse, PassValue, PCSpec

__all__ = ["ARRelaxation", "ActivationRelaxationNetwork", "ar_relax", "ar_step", "ar_update",
           "check_ar_spec", "check_relax_input"]


def check_ar_spec(spec: PCSpec) -> None:
    """AR has no error units: reject the relaxations that only exist for PC."""
    r = spec.relaxations
    if r.has_psi:
        raise ValueError("error_connections: activation relaxation has no error neurons; "
                         "use ONE_TO_ONE")
    if spec.fixed_predictions:
        raise ValueError("fixed_predictions: a PC option; AR's counterpart is "
                         "relaxations.forward_pass")


def check_relax_input(spec: PCSpec, relax_input: object) -> bool:
    """Validate the ``relax_input`` option (a bool; needs weight-transport feedback)."""
    if not isinstance(relax_input, bool):
        raise TypeError(f"relax_input: expected a bool, got {type(relax_input).__name__}")
    if relax_input and spec.relaxations.backward is not BackwardPathway.TRANSPOSE:
        raise ValueError("relax_input: the input layer relaxes through W_0^T; separate "
                         "backward weights (backward=%s) have no B_0"
                         % spec.relaxations.backward.name)
    return relax_input


@dataclass
class ARRelaxation:
    """Relaxed activities ``x`` (``L+1`` tensors; ``x[0]`` is the relaxed input layer under
    ``relax_input``, else unused zeros, and ``x[L]`` is the clamped loss gradient), the
    forward pass and, if recorded, every iterate."""

    x: list[Tensor]
    forward: Forward
    history: list[list[Tensor]] | None = None


def _gain(spec: PCSpec, params: PCParams, layer: int, fwd: Forward, x_below: Tensor,
          which: PassValue, dropped: bool) -> Tensor | None:
    """``f'`` of the weights arriving at ``layer``: frozen (computed once per forward pass),
    at the current activity of the layer below, or ``None`` (derivative dropped, or a linear
    layer, whose ``f'`` is 1)."""
    act = spec.activation_of(layer)
    if dropped or act is Activation.LINEAR:
        return None
    if which is PassValue.FROZEN:
        return fwd.gain(spec, layer)
    w, b = params.weights[layer - 1], params.biases[layer - 1]
    return act.df(x_below @ w.T if b is None else torch.addmm(b, x_below, w.T))


def _advance(params: PCParams, spec: PCSpec, x: list[Tensor], fwd: Forward, rate: float,
             schedule: Schedule, relax_input: bool) -> None:
    """One iteration in place on ``x``: ``x_l <- x_l + rate * (down_l - x_l)``; Jacobi reads
    every message before any activity moves, reverse Gauss-Seidel goes top-down."""
    _advance_planned((spec, params, _plan(params, spec, fwd, relax_input)), x, rate, schedule)


def _plan(params: PCParams, spec: PCSpec, fwd: Forward, relax_input: bool
          ) -> list[tuple[int, Tensor | None, bool, Tensor]]:
    """Per relaxing layer ``l`` (top first): ``(l, frozen gain or None, gain is current,
    matrix the message is multiplied by)``; the batch's constants, computed once."""
    r = spec.relaxations
    dropped = r.derivative is not DerivativeUse.KEPT
    current = r.forward_pass.gain_in_relaxation is PassValue.CURRENT
    out = []
    for l in range(spec.n_layers - 1, -1 if relax_input else 0, -1):
        linear = spec.activation_of(l + 1) is Activation.LINEAR
        uses_gain = not (dropped or linear)
        gain = fwd.gain(spec, l + 1) if (uses_gain and not current) else None
        back = params.backward[l]
        out.append((l, gain, uses_gain and current,
                    params.weights[l] if back is None else back.T))
    return out


def _message(spec: PCSpec, params: PCParams, l: int, x: list[Tensor],
             step: tuple[int, Tensor | None, bool, Tensor]) -> Tensor:
    _, gain, current, back = step
    if current:  # f' at the current activity of the layer below (R5)
        w, b = params.weights[l], params.biases[l]
        a = x[l] @ w.T if b is None else torch.addmm(b, x[l], w.T)
        gain = spec.activation_of(l + 1).df(a)
    top = x[l + 1] if gain is None else gain * x[l + 1]
    return top @ back


def _advance_planned(plan: tuple[PCSpec, PCParams, list[tuple[int, Tensor | None, bool, Tensor]]],
                     x: list[Tensor], rate: float, schedule: Schedule) -> None:
    spec, params, steps = plan
    keep = 1.0 - rate
    if schedule is Schedule.REVERSE_GAUSS_SEIDEL:
        for step in steps:
            d = _message(spec, params, step[0], x, step)  # reads x[l] (R5): before it moves
            x[step[0]].mul_(keep).add_(d, alpha=rate)
        return
    downs = [_message(spec, params, step[0], x, step) for step in steps]
    for step, d in zip(steps, downs):
        x[step[0]].mul_(keep).add_(d, alpha=rate)


def ar_step(params: PCParams, spec: PCSpec, x: list[Tensor], fwd: Forward, rate: float,
            schedule: Schedule = Schedule.JACOBI, *, relax_input: bool = False) -> list[Tensor]:
    """One iteration: Jacobi (every layer from the previous iterate) or reverse Gauss-Seidel
    (top hidden layer first, each layer using the just-updated one above). With
    ``relax_input`` the input layer ``x[0]`` relaxes too. Returns new tensors (``x`` is
    unchanged); :func:`ar_relax` runs the same iteration in place."""
    new = [v.clone() for v in x[:-1]] + [x[-1]]
    _advance(params, spec, new, fwd, rate, schedule, relax_input)
    return new


def ar_relax(params: PCParams, spec: PCSpec, x0: Tensor, target: Tensor, *,
             loss: Loss = Loss.MSE_SUM, schedule: Schedule = Schedule.JACOBI,
             init_from_forward: bool = True, steps: int | None = None,
             record: bool = False, relax_input: bool = False) -> ARRelaxation:
    """Forward pass, clamp the output at ``dL/dy``, relax ``steps`` (default
    ``spec.inference_steps``) iterations at ``spec.inference_rate``. Hidden activities (and,
    with ``relax_input``, the input layer) start at the forward values (reference code) or
    at zero."""
    check_relax_input(spec, relax_input)
    fwd = feedforward(params, spec, x0)
    L = spec.n_layers
    x = [x0.clone() if (relax_input and init_from_forward) else torch.zeros_like(x0)]
    for l in range(1, L):
        x.append(fwd.values[l].clone() if init_from_forward else torch.zeros_like(fwd.values[l]))
    x.append(loss_gradient(loss, fwd.values[L], target))
    history = [[v.clone() for v in x]] if record else None
    plan = (spec, params, _plan(params, spec, fwd, relax_input))
    for _ in range(spec.inference_steps if steps is None else steps):
        _advance_planned(plan, x, spec.inference_rate, schedule)
        if history is not None:
            history.append([v.clone() for v in x])
    return ARRelaxation(x, fwd, history)


def _scale(spec: PCSpec, x: list[Tensor]) -> float:
    return 1.0 / x[-1].shape[0] if spec.batch_reduction is BatchReduction.MEAN else 1.0


def _ar_terms(params: PCParams, spec: PCSpec, x: list[Tensor], fwd: Forward,
              relax_input: bool) -> list[tuple[Tensor, Tensor]]:
    """Per layer ``l``, the presynaptic and postsynaptic factors ``(pre_l, h' * x_{l+1})``
    of ``dW_l = -post^T pre`` (before the batch scale)."""
    fp = spec.relaxations.forward_pass
    drop = spec.relaxations.derivative is DerivativeUse.DROPPED_EVERYWHERE
    out = []
    for l in range(spec.n_layers):
        current = x[l] if (l > 0 or relax_input) else fwd.values[l]
        pre = fwd.values[l] if fp.presynaptic_in_update is PassValue.FROZEN else current
        h = _gain(spec, params, l + 1, fwd, current, fp.gain_in_update, drop)
        out.append((pre, x[l + 1] if h is None else h * x[l + 1]))
    return out


def ar_update(params: PCParams, spec: PCSpec, x: list[Tensor], fwd: Forward, *,
              relax_input: bool = False) -> PCUpdate:
    """Descent directions ``dW_l = -(h' * x_{l+1})^T pre_l`` (batch-reduced), ``db_l``, and
    ``dB_l = dW_l^T`` for learned backward weights. Layer 0's current activity is the input
    unless ``relax_input`` (then ``x[0]``, the relaxed input layer)."""
    scale = _scale(spec, x)
    dW, db = [], []
    dB: list[Tensor | None] = [None] * spec.n_layers
    for l, (pre, post) in enumerate(_ar_terms(params, spec, x, fwd, relax_input)):
        dW.append(-(post.T @ pre) * scale)
        db.append(-post.sum(0) * scale if params.biases[l] is not None else None)
        if spec.relaxations.backward is BackwardPathway.LEARNED and l >= 1:
            dB[l] = dW[l].T
    return PCUpdate(dW, db, dB, [None] * (spec.n_layers + 1))


class ActivationRelaxationNetwork(LayeredModel):
    """Stateful AR wrapper with the same surface as the PC network and its backprop twin.

    ``train_batch`` returns the batch's summed loss (before the update). ``relax_input``
    (default off): the input layer relaxes too, as in the authors' code (module docstring)."""

    def __init__(self, spec: PCSpec, params: PCParams | None = None, *,
                 loss: Loss = Loss.MSE_SUM, schedule: Schedule = Schedule.JACOBI,
                 init_from_forward: bool = True, relax_input: bool = False,
                 device: DeviceLike | None = None) -> None:
        check_ar_spec(spec)
        relax_input = check_relax_input(spec, relax_input)
        super().__init__(spec, params, device)
        self.relax_input = relax_input
        self.loss, self.schedule = loss, schedule
        self.init_from_forward = init_from_forward

    def _relax(self, x0: Tensor, target: Tensor) -> ARRelaxation:
        """Relax on a batch already validated by ``check_batch``."""
        with torch.no_grad():
            return ar_relax(self.params, self.spec, x0, target, loss=self.loss,
                            schedule=self.schedule, init_from_forward=self.init_from_forward,
                            relax_input=self.relax_input)

    def updates(self, x0: Tensor, target: Tensor) -> PCUpdate:
        """The descent directions one training step would apply (nothing is changed)."""
        x0, t = check_batch(self.spec, x0, target, device=self.device)
        assert t is not None
        r = self._relax(x0, t)
        with torch.no_grad():
            return ar_update(self.params, self.spec, r.x, r.forward,
                             relax_input=self.relax_input)

    def train_batch(self, x0: Tensor, target: Tensor) -> float:
        x0, t = check_batch(self.spec, x0, target, device=self.device)
        assert t is not None
        r = self._relax(x0, t)
        with torch.no_grad():
            value = loss_value(self.loss, r.forward.values[-1], t)
            spec, params = self.spec, self.params
            if (spec.update_clamp is None and spec.relaxations.kp_decay == 0
                    and spec.relaxations.backward is not BackwardPathway.LEARNED):
                # apply_update(ar_update(...)) fused: theta += eta * dtheta in one addmm_
                eta, scale = spec.learning_rate, _scale(spec, r.x)
                for l, (pre, post) in enumerate(_ar_terms(params, spec, r.x, r.forward,
                                                          self.relax_input)):
                    params.weights[l].addmm_(post.T, pre, alpha=-eta * scale)
                    b = params.biases[l]
                    if b is not None:
                        b.add_(post.sum(0), alpha=-eta * scale)
            else:
                apply_update(params, spec, ar_update(params, spec, r.x, r.forward,
                                                     relax_input=self.relax_input))
        return float(value)
