"""Supervised predictive coding (thesis 3.5) with its biological relaxations, rate-based.

Pure step functions first (:func:`feedforward`, :func:`energy`, :func:`inference_step`,
:func:`relax`, :func:`weight_update`, :func:`apply_update`), then a thin stateful wrapper
(:class:`PredictiveCodingNetwork`).

Populations and what is local to each (batched: rows are samples):

* value neurons ``x_l`` (``B x n_l``); ``x_0`` is clamped to the image, ``x_L`` to the
  (smoothed) label during training, hidden layers relax;
* error neurons ``eps_l = x_l - f_l(a_l)`` with ``a_l = x_{l-1} W_{l-1}^T (+ b)``,
  for ``l = 1..L``. With dense error connections ``psi_l`` (hidden layers only) it is
  ``x_l - psi_l f_l(a_l)`` (``PsiPlacement.PREDICTION``, the authors' code) or
  ``psi_l x_l - f_l(a_l)`` (``PsiPlacement.VALUE``, eq. 3.39). The output error carries the
  output precision: ``eps_L = pi (x_L - f_L(a_L))``. Each error neuron sees its own summed
  input ``a_l``, so its gain ``f'(a_l)`` is local;
* synapse ``W_l[j, i]`` from value neuron ``x_{l,i}`` onto error neuron ``eps_{l+1,j}``:
  Hebbian ``dW = e_{l+1} x_l^T`` with ``e = f'(a) * eps`` (post) and ``x`` (pre);
* synapse ``B_l[i, j]`` from error neuron ``eps_{l+1,j}`` back onto ``x_{l,i}``
  (``B_l = W_l^T`` under weight transport);
* synapse ``psi_l[j, k]`` from ``x_{l,k}`` (``VALUE``: ``dpsi = -eps_l x_l^T``) or from the
  prediction ``mu_hat_{l,k}`` (``PREDICTION``: the authors' ``dpsi = -1/2 eps_l mu_hat_l^T``)
  onto ``eps_{l,j}``.

Energy ``F = 1/2 sum_{l<L} ||eps_l||^2 + pi/2 ||x_L - mu_hat_L||^2`` per sample; inference is
``x_l <- x_l + gamma * (-eps_l + B_l e_{l+1})``, the negative gradient of ``F`` in
standard PC. Every rule is checked against ``torch.autograd`` in ``tests/test_pc_rules.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .device import DeviceLike, generator_on, randn_on
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
    PsiPlacement,
)

__all__ = [
    "Forward",
    "LayeredModel",
    "PCParams",
    "PCUpdate",
    "PredictiveCodingNetwork",
    "Relaxation",
    "apply_update",
    "check_batch",
    "energy",
    "errors",
    "feedforward",
    "inference_step",
    "init_params",
    "initial_values",
    "load_named_tensors",
    "precision_weighted",
    "predictions",
    "relax",
    "weight_update",
]


# ------------------------------------------------------------------------------ containers
@dataclass
class PCParams:
    """Synaptic weights. Lists are indexed by layer; unused slots hold ``None``.

    Attributes:
        weights: ``W_l`` (``n_{l+1} x n_l``), ``l = 0..L-1``: forward prediction synapses.
        biases: ``b_l`` (``n_{l+1}``) or ``None`` when the spec has no biases.
        backward: ``B_l`` (``n_l x n_{l+1}``) for hidden ``l = 1..L-1``; ``None`` at
            ``l = 0`` and everywhere under weight transport.
        psi: ``psi_l`` (``n_l x n_l``) for hidden ``l = 1..L-1``; ``None`` elsewhere and
            under one-to-one error connections. Index ``l`` runs over ``0..L``.
    """

    weights: list[Tensor]
    biases: list[Tensor | None]
    backward: list[Tensor | None]
    psi: list[Tensor | None]

    def clone(self) -> PCParams:
        def c(ts: list[Tensor | None]) -> list[Tensor | None]:
            return [None if t is None else t.clone() for t in ts]

        return PCParams([w.clone() for w in self.weights], c(self.biases), c(self.backward),
                        c(self.psi))

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor under a stable name (``W0``, ``b0``, ``B1``, ``psi1``...)."""
        out: dict[str, Tensor] = {}
        for prefix, ts in (("W", self.weights), ("b", self.biases), ("B", self.backward),
                           ("psi", self.psi)):
            for i, t in enumerate(ts):
                if t is not None:
                    out[f"{prefix}{i}"] = t
        return out

    def all_finite(self) -> bool:
        return all(bool(torch.isfinite(t).all()) for t in self.tensors().values())


@dataclass
class Forward:
    """The feedforward pass: ``values[l]`` (``B x n_l``) and ``pre[l] = a_l`` for ``l >= 1``
    (``pre[0]`` is ``None``). Under the fixed-prediction assumption these are frozen."""

    values: list[Tensor]
    pre: list[Tensor | None]
    _gains: dict[int, Tensor] = field(default_factory=dict, repr=False, compare=False)

    def gain(self, spec: PCSpec, layer: int) -> Tensor:
        """``f'(a_layer)`` at the frozen forward input, computed once and cached (the
        fixed-prediction assumption reads it at every inference step)."""
        g = self._gains.get(layer)
        if g is None:
            g = self._gains[layer] = spec.activation_of(layer).df_from_f(self.values[layer])
        return g


@dataclass
class Relaxation:
    """Result of :func:`relax`: the relaxed values ``x`` (``L+1`` tensors), the forward
    pass they started from, and the per-step total energy when it was recorded
    (``inference_steps + 1`` floats: before the first step and after each)."""

    x: list[Tensor]
    forward: Forward
    energies: list[float] | None = None


@dataclass
class PCUpdate:
    """Batch-reduced descent directions (not yet scaled by the learning rate); same
    layout as :class:`PCParams`."""

    weights: list[Tensor]
    biases: list[Tensor | None]
    backward: list[Tensor | None]
    psi: list[Tensor | None]


# -------------------------------------------------------------------------------- builders
def init_params(spec: PCSpec, generator: torch.Generator | None = None, *,
                device: DeviceLike | None = None) -> PCParams:
    """Draw initial weights from ``spec`` on ``device`` (default: the generator's device,
    else the CPU).

    Forward weights are drawn first, so every relaxation (and the backprop twin) built
    from the same seed starts from identical ``W``. Backward weights (learned or random)
    are ``N(0, std^2)``, ``psi`` as ``spec.psi_init`` says; biases start at zero. Without a
    ``generator`` one seeded with ``spec.seed`` is made on ``device`` (device-local draws).
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    dev = torch.device(device)
    g = generator if generator is not None else generator_on(dev, spec.seed)
    dtype, std, sizes, L = spec.torch_dtype, spec.init_std, spec.sizes, spec.n_layers

    def normal(*shape: int) -> Tensor:
        return randn_on(shape, g, dev, dtype) * std

    def eye(n: int) -> Tensor:
        return torch.eye(n, dtype=dtype, device=dev)

    weights = [normal(sizes[l + 1], sizes[l]) for l in range(L)]
    biases: list[Tensor | None] = [
        torch.zeros(sizes[l + 1], dtype=dtype, device=dev) if spec.use_bias else None
        for l in range(L)
    ]
    backward: list[Tensor | None] = [None] * L
    if spec.relaxations.has_backward_weights:
        for l in range(1, L):
            backward[l] = normal(sizes[l], sizes[l + 1])
    psi: list[Tensor | None] = [None] * (L + 1)
    if spec.relaxations.has_psi:
        for l in range(1, L):
            n = sizes[l]
            if spec.psi_init is PsiInit.IDENTITY:
                psi[l] = eye(n)
            elif spec.psi_init is PsiInit.NORMAL:
                psi[l] = normal(n, n)
            elif spec.psi_init is PsiInit.IDENTITY_NOISE:
                # N(0, s^2/n): the perturbation's operator norm is about 2s for any width
                psi[l] = eye(n) + normal(n, n) / n ** 0.5
            else:
                psi[l] = normal(n, n).abs()
    return PCParams(weights, biases, backward, psi)


# -------------------------------------------------------------------------- pure functions
def feedforward(params: PCParams, spec: PCSpec, x0: Tensor) -> Forward:
    """The feedforward sweep ``a_{l+1} = x_l W_l^T + b_l``, ``x_{l+1} = f_{l+1}(a_{l+1})``.

    ``x0``: ``B x n_0``. At test time the prediction is ``values[-1]``, exactly an MLP.
    """
    values, pre = [x0], [None]
    for l, w in enumerate(params.weights):
        a = values[-1] @ w.T
        b = params.biases[l]
        if b is not None:
            a = a + b
        pre.append(a)
        values.append(spec.activation_of(l + 1).f(a))
    return Forward(values, pre)


def predictions(
    params: PCParams, spec: PCSpec, x: list[Tensor], forward: Forward
) -> tuple[list[Tensor | None], list[Tensor | None]]:
    """Summed inputs ``a_l`` and predictions ``mu_hat_l = f_l(a_l)`` arriving at each
    error population (index 1..L; index 0 is ``None``).

    Under the fixed-prediction assumption both are the frozen forward values. Otherwise
    they are recomputed from the current values; layer 1's input ``x_0`` is clamped, so its
    prediction is always the forward one and costs nothing.
    """
    if spec.fixed_predictions:
        return forward.pre, [None, *forward.values[1:]]
    pre: list[Tensor | None] = [None, forward.pre[1]]
    mu_hat: list[Tensor | None] = [None, forward.values[1]]
    for l in range(1, spec.n_layers):
        a = x[l] @ params.weights[l].T
        b = params.biases[l]
        if b is not None:
            a = a + b
        pre.append(a)
        mu_hat.append(spec.activation_of(l + 1).f(a))
    return pre, mu_hat


def errors(
    params: PCParams, spec: PCSpec, x: list[Tensor], mu_hat: list[Tensor | None]
) -> list[Tensor | None]:
    """Raw prediction errors, index 1..L (``None`` at 0): ``x_l - mu_hat_l``, or with dense
    ``psi_l`` ``x_l - psi_l mu_hat_l`` (``PREDICTION``) / ``psi_l x_l - mu_hat_l`` (``VALUE``).
    The output precision is not applied here (see :func:`precision_weighted`)."""
    on_value = spec.relaxations.psi_placement is PsiPlacement.VALUE
    eps: list[Tensor | None] = [None]
    for l in range(1, len(x)):
        psi = params.psi[l]
        if psi is None:
            eps.append(x[l] - mu_hat[l])
        elif on_value:
            eps.append(x[l] @ psi.T - mu_hat[l])
        else:
            eps.append(x[l] - mu_hat[l] @ psi.T)
    return eps


def precision_weighted(spec: PCSpec, eps: list[Tensor | None]) -> list[Tensor | None]:
    """What the error neurons carry: the raw errors, with the output error times
    ``spec.output_precision``."""
    if spec.output_precision == 1.0:
        return eps
    return [*eps[:-1], eps[-1] * spec.output_precision]


def energy(params: PCParams, spec: PCSpec, x: list[Tensor], forward: Forward) -> Tensor:
    """Per-sample energy ``F = 1/2 sum_{l<L} ||eps_l||^2 + pi/2 ||eps_L||^2`` (shape ``B``;
    ``eps`` raw, ``pi = spec.output_precision``).

    Differentiable in ``x`` and the params (used by the autograd tests). Under the
    fixed-prediction assumption the predictions are the frozen ones from ``forward``.
    """
    _, mu_hat = predictions(params, spec, x, forward)
    eps = errors(params, spec, x, mu_hat)
    hidden = sum(((e * e).sum(dim=1) for e in eps[1:-1]), x[0].new_zeros(()))
    return 0.5 * hidden + 0.5 * spec.output_precision * (eps[-1] * eps[-1]).sum(dim=1)


class _Plan:
    """The per-batch constants one relaxation reads at every step (the params do not change
    while values relax). Under fixed predictions: the frozen predictions (``psi``-applied
    under ``PREDICTION``), the frozen gains, and the output error, which is then constant
    (``x_L`` is clamped, ``mu_hat_L`` frozen), together with the message it sends down.
    Built by :func:`_plan`; read by :func:`_error_terms` and :func:`_advance`."""

    __slots__ = ("spec", "params", "forward", "L", "fixed", "drop_in_inference",
                 "on_value", "psi_t", "sub", "gains", "back", "out_terms", "top_message")

    spec: PCSpec
    params: PCParams
    forward: Forward
    L: int
    fixed: bool
    drop_in_inference: bool
    on_value: bool
    psi_t: bool
    sub: list[Tensor | None]
    gains: list[Tensor | None]
    back: list[Tensor | None]
    out_terms: tuple[Tensor, Tensor, Tensor] | None
    top_message: Tensor | None


def _plan(params: PCParams, spec: PCSpec, forward: Forward, target: Tensor) -> _Plan:
    relax_ = spec.relaxations
    p = _Plan()
    p.spec, p.params, p.forward, p.L = spec, params, forward, spec.n_layers
    p.fixed = spec.fixed_predictions
    p.drop_in_inference = relax_.derivative is not DerivativeUse.KEPT
    p.on_value = relax_.psi_placement is PsiPlacement.VALUE
    p.psi_t = relax_.error_to_value is ErrorToValue.PSI_TRANSPOSE
    L = p.L
    # what the error neuron subtracts from its (psi-weighted) value: the prediction, with
    # psi applied under PREDICTION; frozen for every layer under fixed predictions, and for
    # layer 1 always (its input x_0 is clamped)
    p.sub = [None] * (L + 1)
    for l in range(1, L + 1 if p.fixed else 2):
        mu, psi = forward.values[l], params.psi[l]
        p.sub[l] = mu @ psi.T if (psi is not None and not p.on_value) else mu
    # frozen gains f'(a_l); None where they are recomputed or not used
    p.gains = [None] * (L + 1)
    if p.fixed:
        for l in range(1, L + 1):
            if spec.activation_of(l) is not Activation.LINEAR:
                p.gains[l] = forward.gain(spec, l)
    # B_l as the matrix the message e_{l+1} is multiplied by: W_l (transport) or B_l^T
    p.back = [None] + [params.weights[l] if params.backward[l] is None
                       else params.backward[l].T for l in range(1, L)]
    p.out_terms, p.top_message = None, None
    if p.fixed:
        p.out_terms = _output_terms(p, target, forward.values[L], p.gains[L])
        if L >= 2:
            post = p.out_terms[2] if not p.drop_in_inference else p.out_terms[1]
            p.top_message = (post @ p.back[L - 1]).mul_(spec.inference_rate)
    return p


def _output_terms(p: _Plan, target: Tensor, mu_hat: Tensor, gain: Tensor | None
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """``(mu_hat_L, eps_L, e_L)``: the output prediction, its precision-weighted error and
    the gain-weighted error (``eps_L`` itself when the output is linear)."""
    eps = target - mu_hat
    if p.spec.output_precision != 1.0:
        eps = eps * p.spec.output_precision
    return mu_hat, eps, eps if gain is None else gain * eps


def _error_terms(p: _Plan, x: list[Tensor], *, drop: bool, inference: bool = False
                 ) -> tuple[list[Tensor | None], list[Tensor | None], list[Tensor | None]]:
    """``(mu_hat, eps, e)`` at values ``x``, index ``1..L`` (``None`` at 0): predictions,
    precision-weighted errors and gain-weighted errors ``e_l = f'(a_l) eps_l`` (``eps_l``
    when ``drop``). One place for the error arithmetic of inference and learning; with
    ``inference``, ``e_1`` (read only by learning) is left ``None``."""
    spec, params, L = p.spec, p.params, p.L
    mu_hat: list[Tensor | None] = [None] * (L + 1)
    eps: list[Tensor | None] = [None] * (L + 1)
    post: list[Tensor | None] = [None] * (L + 1)
    for l in range(1, L + 1):
        if p.fixed or l == 1:
            m = p.forward.values[l]
            gain = p.gains[l] if p.fixed else (
                None if spec.activation_of(1) is Activation.LINEAR else p.forward.gain(spec, 1))
        else:
            w, b = params.weights[l - 1], params.biases[l - 1]
            a = x[l - 1] @ w.T if b is None else torch.addmm(b, x[l - 1], w.T)
            act = spec.activation_of(l)
            m = act.f(a)
            gain = None if act is Activation.LINEAR else act.df_from_f(m)
        mu_hat[l] = m
        if l == L:
            if p.fixed:
                assert p.out_terms is not None
                _, eps[l], post[l] = p.out_terms
                if drop:
                    post[l] = eps[l]
                continue
            _, eps[l], post[l] = _output_terms(p, x[L], m, None if drop else gain)
            continue
        psi = params.psi[l]
        if psi is None:
            e = x[l] - (p.sub[l] if p.sub[l] is not None else m)
        elif p.on_value:
            e = x[l] @ psi.T - m
        else:
            e = x[l] - (p.sub[l] if p.sub[l] is not None else m @ psi.T)
        eps[l] = e
        if not (inference and l == 1):
            post[l] = e if (drop or gain is None) else gain * e
    return mu_hat, eps, post


def _advance(p: _Plan, x: list[Tensor]) -> None:
    """One Euler step of the hidden value neurons, in place on ``x[1..L-1]`` (Jacobi: every
    error is read before any value moves): ``x_l += rate * (B_l e_{l+1} - eps_l)``, with
    ``-psi_l^T eps_l`` for the own term under ``ErrorToValue.PSI_TRANSPOSE``."""
    rate, L = p.spec.inference_rate, p.L
    if L < 2:
        return
    _, eps, post = _error_terms(p, x, drop=p.drop_in_inference, inference=True)
    for l in range(1, L):
        xl = x[l]
        if l == L - 1 and p.top_message is not None:
            xl.add_(p.top_message)
        else:
            xl.addmm_(post[l + 1], p.back[l], alpha=rate)
        if p.psi_t:
            xl.addmm_(eps[l], p.params.psi[l], alpha=-rate)
        else:
            xl.sub_(eps[l], alpha=rate)


def inference_step(
    params: PCParams, spec: PCSpec, x: list[Tensor], forward: Forward
) -> list[Tensor]:
    """One Euler step of the value-neuron dynamics; returns new values (clamped layers
    ``0`` and ``L`` are passed through unchanged).

    ``dx_l = -eps_l + B_l e_{l+1}`` for hidden ``l``, where ``B_l`` is ``W_l^T`` (transport),
    a fixed random or a learned matrix; ``e_{l+1} = f'(a_{l+1}) eps_{l+1}`` unless the
    derivative is dropped in inference; ``-eps_l`` becomes ``-psi_l^T eps_l`` under
    ``ErrorToValue.PSI_TRANSPOSE``. The output error is precision-weighted. (:func:`relax`
    runs the same step in place, with the batch's constants computed once.)
    """
    new = [x[0], *(v.clone() for v in x[1:-1]), x[-1]]
    _advance(_plan(params, spec, forward, x[-1]), new)
    return new


def initial_values(
    spec: PCSpec, forward: Forward, target: Tensor, generator: torch.Generator | None = None
) -> list[Tensor]:
    """Values before relaxation: input and target clamped, hidden layers from the
    feedforward pass (their errors are then exactly zero) or ``N(0, init_std^2)`` drawn from
    ``generator`` (default: a fresh one seeded from ``spec.seed``). Hidden values are new
    tensors (relaxation updates them in place)."""
    x = [forward.values[0]]
    device = x[0].device
    if spec.hidden_init is HiddenInit.RANDOM and generator is None:
        generator = generator_on(device, spec.seed + 1)  # never the global RNG
    for l in range(1, spec.n_layers):
        if spec.hidden_init is HiddenInit.FEEDFORWARD:
            x.append(forward.values[l].clone())
        else:
            v = forward.values[l]
            x.append(randn_on(v.shape, generator, device, v.dtype) * spec.init_std)
    x.append(target)
    return x


def relax(
    params: PCParams,
    spec: PCSpec,
    x0: Tensor,
    target: Tensor,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    record_energy: bool = False,
) -> Relaxation:
    """Clamp ``x0`` (``B x n_0``) and ``target`` (``B x n_L``), then run ``steps``
    (default ``spec.inference_steps``) inference steps."""
    forward = feedforward(params, spec, x0)
    x = initial_values(spec, forward, target, generator)
    n = spec.inference_steps if steps is None else steps
    plan = _plan(params, spec, forward, target)
    trace = [float(energy(params, spec, x, forward).sum())] if record_energy else None
    for _ in range(n):
        _advance(plan, x)
        if trace is not None:
            trace.append(float(energy(params, spec, x, forward).sum()))
    return Relaxation(x, forward, trace)


def weight_update(
    params: PCParams, spec: PCSpec, x: list[Tensor], forward: Forward
) -> PCUpdate:
    """Hebbian descent directions at the relaxed values, reduced over the batch.

    ``dW_l = e_{l+1}^T x_l`` (post gain-weighted error x pre value; ``x_l`` is the frozen
    forward value under the fixed-prediction assumption), ``db_l = sum e_{l+1}``,
    ``dB_l = dW_l^T`` (learned backward weights); learned psi: ``dpsi_l = -eps_l^T x_l``
    (``VALUE``) or the authors' ``-1/2 eps_l^T mu_hat_l`` (``PREDICTION``). In standard PC
    these are exactly ``-dF/dtheta``; every update is divided by the output precision.
    """
    return _update_and_energy(_plan(params, spec, forward, x[-1]), x)[0]


def _learn(p: _Plan, x: list[Tensor]) -> Tensor:
    """``apply_update(weight_update(...))`` without an update clamp, fused: each forward
    weight takes its Hebbian product in one ``addmm_`` (no update tensor) unless a learned
    ``B`` shares it. Returns the summed energy as :func:`_update_and_energy` does."""
    spec, params = p.spec, p.params
    relax_ = spec.relaxations
    if relax_.error_connections is ErrorConnections.LEARNED_PSI:
        update, total = _update_and_energy(p, x)
        apply_update(params, spec, update)
        return total
    drop = relax_.derivative is DerivativeUse.DROPPED_EVERYWHERE
    _, eps, post = _error_terms(p, x, drop=drop)
    scale = 1.0 / x[0].shape[0] if spec.batch_reduction is BatchReduction.MEAN else 1.0
    scale /= spec.output_precision
    eta, decay = spec.learning_rate, relax_.kp_decay
    keep = 1.0 - eta * decay if decay > 0 else 1.0
    presyn = p.forward.values if spec.fixed_predictions else x
    for l in range(spec.n_layers):
        e = post[l + 1]
        assert e is not None
        w, b, back = params.weights[l], params.biases[l], params.backward[l]
        learned_back = relax_.backward is BackwardPathway.LEARNED and l >= 1
        if learned_back:
            assert back is not None
            dW = (e.T @ presyn[l]).mul_(scale)
            for theta, d in ((w, dW), (back, dW.T)):
                if keep != 1.0:
                    theta.mul_(keep)
                theta.add_(d, alpha=eta)
        else:
            w.addmm_(e.T, presyn[l], beta=keep, alpha=eta * scale)
        if b is not None:
            b.add_(e.sum(0), alpha=eta * scale)
    squares = [torch.linalg.vector_norm(e) ** 2 for e in eps[1:]]
    squares[-1] = squares[-1] / spec.output_precision
    return 0.5 * torch.stack(squares).sum()


def _update_and_energy(p: _Plan, x: list[Tensor]) -> tuple[PCUpdate, Tensor]:
    """:func:`weight_update` and the batch's summed energy (a 0-d tensor; raw errors,
    output term times the precision), from one evaluation of the errors."""
    spec, params, forward = p.spec, p.params, p.forward
    relax_ = spec.relaxations
    drop = relax_.derivative is DerivativeUse.DROPPED_EVERYWHERE
    mu_hat, eps, post = _error_terms(p, x, drop=drop)
    scale = 1.0 / x[0].shape[0] if spec.batch_reduction is BatchReduction.MEAN else 1.0
    scale /= spec.output_precision
    presyn = forward.values if spec.fixed_predictions else x
    dW: list[Tensor] = []
    db: list[Tensor | None] = []
    dB: list[Tensor | None] = [None] * spec.n_layers
    for l in range(spec.n_layers):
        e = post[l + 1]
        assert e is not None
        dW.append(torch.mm(e.T, presyn[l]).mul_(scale) if scale != 1.0 else e.T @ presyn[l])
        db.append(e.sum(0) * scale if params.biases[l] is not None else None)
        if relax_.backward is BackwardPathway.LEARNED and l >= 1:
            dB[l] = dW[l].T
    dpsi: list[Tensor | None] = [None] * (spec.n_layers + 1)
    if relax_.error_connections is ErrorConnections.LEARNED_PSI:
        on_value = relax_.psi_placement is PsiPlacement.VALUE
        for l in range(1, spec.n_layers):
            e_l = eps[l]
            assert e_l is not None
            if on_value:
                dpsi[l] = -(e_l.T @ x[l]) * scale
            else:
                dpsi[l] = -(e_l.T @ mu_hat[l]) * (0.5 * scale)
    squares = [torch.linalg.vector_norm(e) ** 2 for e in eps[1:]]
    squares[-1] = squares[-1] / spec.output_precision
    total = 0.5 * torch.stack(squares).sum()
    return PCUpdate(dW, db, dB, dpsi), total


def apply_update(params: PCParams, spec: PCSpec, update: PCUpdate) -> None:
    """In place: ``theta += eta * clamp(dtheta)`` for every plastic synapse, and the
    Kolen-Pollack decay ``- eta * lambda * theta`` on ``W`` and learned ``B``."""
    eta, c = spec.learning_rate, spec.update_clamp
    decay = spec.relaxations.kp_decay

    def step(theta: Tensor, d: Tensor, decays: bool) -> None:
        if c is not None:
            d = d.clamp(-c, c)
        if decays and decay > 0:
            theta.mul_(1.0 - eta * decay)
        theta.add_(d, alpha=eta)

    for l, d in enumerate(update.weights):
        step(params.weights[l], d, True)
    for group, ups, decays in ((params.biases, update.biases, False),
                               (params.backward, update.backward, True),
                               (params.psi, update.psi, False)):
        for l, d in enumerate(ups):
            if d is not None:
                theta = group[l]
                assert theta is not None
                step(theta, d, decays)


def load_named_tensors(params: PCParams, given: dict[str, Tensor]) -> None:
    """Copy ``given`` (as from :meth:`PCParams.tensors`) into ``params`` in place; the names
    and shapes must match exactly."""
    own = params.tensors()
    if set(own) != set(given):
        raise ValueError(f"state has tensors {sorted(given)}, network has {sorted(own)}")
    for k, v in given.items():
        if v.shape != own[k].shape:
            raise ValueError(f"{k}: shape {tuple(v.shape)} != {tuple(own[k].shape)}")
        own[k].copy_(v)


def check_batch(spec: PCSpec, x0: Tensor, target: Tensor | None = None, *,
                device: torch.device | None = None) -> tuple[Tensor, Tensor | None]:
    """Validate and convert a batch to the spec's dtype (and to ``device`` when given: a
    CPU batch handed to a CUDA model is copied there); raises ``ValueError`` naming what is
    wrong. Finiteness costs one reduction and one host sync per batch: a sum is finite when
    every entry is; the exact test runs only when it is not."""
    x0 = _as_matrix(x0, spec.sizes[0], "input", spec.torch_dtype, device)
    if target is not None:
        target = _as_matrix(target, spec.sizes[-1], "target", spec.torch_dtype, device)
        if target.shape[0] != x0.shape[0]:
            raise ValueError(
                f"input has {x0.shape[0]} samples but target has {target.shape[0]}"
            )
    if x0.device.type != "meta":
        total = x0.sum() if target is None else x0.sum() + target.sum()
        if not math.isfinite(float(total)):
            for t, what in ((x0, "input"), (target, "target")):
                if t is not None and not bool(torch.isfinite(t).all()):
                    raise ValueError(f"{what} contains NaN or inf")
    return x0, target


def _as_matrix(t: Any, width: int, what: str, dtype: torch.dtype,
               device: torch.device | None) -> Tensor:
    if not isinstance(t, Tensor):
        t = torch.as_tensor(t)
    if t.ndim != 2 or t.shape[1] != width:
        raise ValueError(f"{what} must have shape (batch, {width}), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch")
    return t.to(device=device, dtype=dtype)


# --------------------------------------------------------------------------- the wrappers
_GROUPS = (("W", "weights"), ("b", "biases"), ("B", "backward"), ("psi", "psi"))


class LayeredModel(nn.Module):
    """What every layered model shares: ``spec``, ``params``, the feedforward prediction and
    (de)serialisation. PC, AR and the backprop twin build on it.

    An ``nn.Module``: every synapse matrix is a parameter named as in
    :meth:`PCParams.tensors` (``W0``, ``b0``, ``B1``, ``psi1``...), with
    ``requires_grad=False`` (the learning rules are local, not autograd), so ``state_dict``,
    ``.to(device)`` and ``parameters()`` behave as for any torch module;
    ``params`` is a :class:`PCParams` view of the same storage, kept in step by ``_apply``
    and ``load_state_dict``.
    """

    spec: PCSpec
    params: PCParams

    def __init__(self, spec: PCSpec, params: PCParams | None, device: DeviceLike | None
                 ) -> None:
        super().__init__()
        self.spec = spec
        if params is None:
            params = init_params(spec, device=device)
        for name, t in params.tensors().items():
            if device is not None:
                t = t.to(device)
            self.register_parameter(name, nn.Parameter(t, requires_grad=False))
        self._sync_params()

    #: ``params`` holds detached aliases of the parameters (same storage, so in-place rules
    #: update the module): ops on plain tensors skip ``nn.Parameter``'s subclass dispatch,
    #: about 8 us per call (measured on a 64x100 @ 100x300 ``addmm_``). The backprop twin,
    #: trained by autograd, keeps the parameters themselves.
    _detached_view: bool = True

    def _sync_params(self) -> None:
        """Rebuild :attr:`params` from the registered parameters."""
        L = self.spec.n_layers
        got = self._parameters
        detach = self._detached_view

        def group(prefix: str, n: int) -> list[Tensor | None]:
            out = [got.get(f"{prefix}{i}") for i in range(n)]
            return [t.detach() if (t is not None and detach) else t for t in out]

        weights = group("W", L)
        assert all(w is not None for w in weights)
        self.params = PCParams(weights, group("b", L), group("B", L),  # type: ignore[arg-type]
                               group("psi", L + 1))

    def _apply(self, fn: Any, recurse: bool = True) -> LayeredModel:
        super()._apply(fn, recurse)
        self._sync_params()
        return self

    @property
    def device(self) -> torch.device:
        """Where the synapses (and so every batch and state) live."""
        return self.params.weights[0].device

    def forward(self, x0: Tensor) -> Tensor:
        """The feedforward prediction ``B x n_L`` (no checks; see :meth:`predict`)."""
        return feedforward(self.params, self.spec, x0).values[-1]

    def predict(self, x0: Tensor) -> Tensor:
        """Output-layer prediction of the feedforward pass (``B x n_L``), after checking the
        batch and moving it to the model's device."""
        x0, _ = check_batch(self.spec, x0, device=self.device)
        with torch.no_grad():
            return feedforward(self.params, self.spec, x0).values[-1]

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """Standard ``nn.Module`` loading; also reads the earlier layout
        ``{"params": {name: tensor}, "generator": state}`` of older checkpoints."""
        if "params" in state_dict and isinstance(state_dict["params"], Mapping):
            flat: dict[str, Any] = dict(state_dict["params"])
            if "generator" in state_dict:
                flat["_extra_state"] = {"generator": state_dict["generator"]}
            state_dict = flat
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._sync_params()
        return result


class PredictiveCodingNetwork(LayeredModel):
    """Stateful wrapper: params plus the generator for random hidden initialisation.

    ``train_batch`` = relax, then one weight update; ``predict`` = the feedforward pass.
    ``device``: where parameters are drawn (with a generator on that device) or moved to;
    default the given params' device, else the CPU.
    """

    def __init__(self, spec: PCSpec, params: PCParams | None = None, *,
                 device: DeviceLike | None = None) -> None:
        if not spec.relaxations.forward_pass.all_frozen:
            raise ValueError("forward_pass: an activation-relaxation option; predictive coding "
                             "expresses it with fixed_predictions")
        super().__init__(spec, params, device)
        self.generator = generator_on(self.device, spec.seed + 1)

    def _apply(self, fn: Any, recurse: bool = True) -> PredictiveCodingNetwork:
        super()._apply(fn, recurse)
        g = getattr(self, "generator", None)
        if g is not None and g.device != self.device:
            # a generator cannot move; continue deterministically from its next draw
            seed = int(torch.randint(2 ** 62, (1,), generator=g, device=g.device))
            self.generator = generator_on(self.device, seed)
        return self

    def relax(self, x0: Tensor, target: Tensor, *, record_energy: bool = False) -> Relaxation:
        x0, target = check_batch(self.spec, x0, target, device=self.device)
        assert target is not None
        with torch.no_grad():
            return relax(self.params, self.spec, x0, target, generator=self.generator,
                         record_energy=record_energy)

    def train_batch(self, x0: Tensor, target: Tensor) -> float:
        """Relax on one batch, update the weights; returns the batch's summed energy at
        the end of relaxation (before the update)."""
        r = self.relax(x0, target)
        with torch.no_grad():
            plan = _plan(self.params, self.spec, r.forward, r.x[-1])
            if self.spec.update_clamp is None:
                total = _learn(plan, r.x)
            else:
                update, total = _update_and_energy(plan, r.x)
                apply_update(self.params, self.spec, update)
        return float(total)

    def updates(self, x0: Tensor, target: Tensor) -> PCUpdate:
        """The descent directions one training step would apply (nothing is changed)."""
        r = self.relax(x0, target)
        with torch.no_grad():
            return weight_update(self.params, self.spec, r.x, r.forward)

    def get_extra_state(self) -> dict[str, Tensor]:
        """The hidden-initialisation generator's state (``_extra_state`` in ``state_dict``)."""
        return {"generator": self.generator.get_state() if self.generator is not None
                else torch.empty(0, dtype=torch.uint8)}

    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        if self.generator is not None:
            self.generator.set_state(state["generator"])
