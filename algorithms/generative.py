"""Hierarchical generative predictive coding (thesis 3.3, spec ch3 section 2, with its fixes).

The top latent predicts down to the pixels: layer 0 is clamped to the observation, layers
``1..L`` are free, ``sizes[0]`` is the observation width and ``sizes[L]`` the latent::

    a_{l}   = theta_{l+1} mu_{l+1}           (B x n_l;  theta_{l+1}: n_l x n_{l+1})
    eps_l   = mu_l - f_l(a_l)                l = 0..L-1   (mu_0 = o)
    eps_L   = mu_L - prior_mean              (top prior, precision ``prior_precision``; 0 = off)
    F       = 1/2 sum_l pi_l |eps_l|^2       (per sample)
    dmu_l   = -pi_l eps_l + (f'_{l-1}(a_{l-1}) * pi_{l-1} eps_{l-1}) theta_l     l = 1..L
    dtheta_l = (f'(a_{l-1}) * pi_{l-1} eps_{l-1})' mu_l  / B           (batch mean, A-12)

Batched torch; every rule is checked against autograd in ``tests/test_generative.py``.
``encode`` infers the top latent of an observation, ``decode`` passes predictions down from a
latent without errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .activations import Activation
from .device import DeviceLike, generator_on, randn_on

__all__ = ["GenerativePC", "GenerativeSpec", "energy", "errors", "inference_direction",
           "weight_directions"]


@dataclass(frozen=True)
class GenerativeSpec:
    """Layer widths from the observation (index 0) to the latent; the nonlinearity of each
    prediction (``activations[l]`` applies to the prediction *of* layer ``l``); precisions;
    rates; seed; dtype."""

    sizes: tuple[int, ...] = (784, 100, 20)
    activations: tuple[Activation, ...] = (Activation.SIGMOID, Activation.SIGMOID)
    prior_precision: float = 1.0
    inference_rate: float = 0.1
    inference_steps: int = 100
    learning_rate: float = 0.01
    init_std: float = 0.05
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(not isinstance(n, int) or n < 1 for n in self.sizes):
            raise ValueError(f"sizes: need an observation and a latent layer, got {self.sizes}")
        if len(self.activations) != len(self.sizes) - 1:
            raise ValueError(f"activations: one per predicted layer ({len(self.sizes) - 1}), "
                             f"got {len(self.activations)}")
        if self.prior_precision < 0:
            raise ValueError(f"prior_precision: must be >= 0, got {self.prior_precision}")
        if not 0 < self.inference_rate <= 1:
            raise ValueError(f"inference_rate: must lie in (0, 1], got {self.inference_rate}")

    @property
    def L(self) -> int:
        return len(self.sizes) - 1

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32


def _pre(theta: list[Tensor], mu: list[Tensor]) -> list[Tensor]:
    """``a_l = mu_{l+1} theta_{l+1}^T`` for l = 0..L-1 (``theta[l]`` maps layer l+1 to l)."""
    return [mu[l + 1] @ theta[l].T for l in range(len(theta))]


def errors(spec: GenerativeSpec, theta: list[Tensor], mu: list[Tensor]) -> list[Tensor]:
    """``eps_0..eps_L`` (the top one against a zero prior mean)."""
    a = _pre(theta, mu)
    eps = [mu[l] - spec.activations[l].f(a[l]) for l in range(spec.L)]
    return [*eps, mu[spec.L]]


def energy(spec: GenerativeSpec, theta: list[Tensor], mu: list[Tensor]) -> Tensor:
    """Per-sample ``F`` (shape ``B``)."""
    eps = errors(spec, theta, mu)
    F = sum(0.5 * (e * e).sum(1) for e in eps[:-1])
    return F + 0.5 * spec.prior_precision * (eps[-1] * eps[-1]).sum(1)


def inference_direction(spec: GenerativeSpec, theta: list[Tensor], mu: list[Tensor]
                        ) -> list[Tensor]:
    """``-dF/dmu_l`` for the free layers (index 0 is zeros)."""
    a = _pre(theta, mu)
    eps = errors(spec, theta, mu)
    out = [torch.zeros_like(mu[0])]
    for l in range(1, spec.L + 1):
        pi = spec.prior_precision if l == spec.L else 1.0
        e_below = spec.activations[l - 1].df(a[l - 1]) * eps[l - 1]
        out.append(-pi * eps[l] + e_below @ theta[l - 1])
    return out


def weight_directions(spec: GenerativeSpec, theta: list[Tensor], mu: list[Tensor]
                      ) -> list[Tensor]:
    """``-dF/dtheta`` averaged over the batch: postsynaptic gain-weighted error (layer below)
    x presynaptic value (layer above)."""
    a = _pre(theta, mu)
    eps = errors(spec, theta, mu)
    B = mu[0].shape[0]
    return [(spec.activations[l].df(a[l]) * eps[l]).T @ mu[l + 1] / B for l in range(spec.L)]


class GenerativePC(nn.Module):
    """Stateful wrapper: ``theta`` (``theta[l]``: ``sizes[l] x sizes[l+1]``), ``train_batch``,
    ``encode``, ``decode``. An ``nn.Module`` whose synapses are the parameters ``theta0``,
    ``theta1``... (``requires_grad=False``), drawn on ``device`` with a generator there."""

    def __init__(self, spec: GenerativeSpec, *, device: DeviceLike | None = None) -> None:
        super().__init__()
        self.spec = spec
        dev = torch.device("cpu" if device is None else device)
        g = generator_on(dev, spec.seed)
        for l in range(spec.L):
            draw = randn_on((spec.sizes[l], spec.sizes[l + 1]), g, dev, torch.float64)
            self.register_parameter(f"theta{l}", nn.Parameter(
                (draw * spec.init_std).to(spec.torch_dtype), requires_grad=False))

    @property
    def theta(self) -> list[Tensor]:
        """The generative weights, top-down: ``theta[l]`` predicts layer ``l`` from ``l+1``."""
        # detached aliases (same storage): plain tensors skip nn.Parameter's dispatch
        return [self._parameters[f"theta{l}"].detach()  # type: ignore[union-attr]
                for l in range(self.spec.L)]

    @theta.setter
    def theta(self, values: list[Tensor]) -> None:
        if len(values) != self.spec.L:
            raise ValueError(f"theta: expected {self.spec.L} matrices, got {len(values)}")
        with torch.no_grad():
            for p, v in zip(self.theta, values):
                if v.shape != p.shape:
                    raise ValueError(f"theta: shape {tuple(v.shape)} != {tuple(p.shape)}")
                p.copy_(v)

    @property
    def device(self) -> torch.device:
        return self.theta[0].device

    def _check(self, o: Tensor) -> Tensor:
        if o.ndim != 2 or o.shape[1] != self.spec.sizes[0]:
            raise ValueError(f"observations must have shape (batch, {self.spec.sizes[0]}), "
                             f"got {tuple(o.shape)}")
        return o.to(device=self.device, dtype=self.spec.torch_dtype)

    def infer(self, o: Tensor, steps: int | None = None) -> list[Tensor]:
        """Clamp ``o``, start the free layers at zero, run inference; returns every layer."""
        o = self._check(o)
        s = self.spec
        mu = [o] + [o.new_zeros(len(o), n) for n in s.sizes[1:]]
        with torch.no_grad():
            for _ in range(s.inference_steps if steps is None else steps):
                d = inference_direction(s, self.theta, mu)
                mu = [mu[0]] + [mu[l] + s.inference_rate * d[l] for l in range(1, s.L + 1)]
        return mu

    def train_batch(self, o: Tensor) -> float:
        """Infer, then one Hebbian step; returns the batch's mean energy after inference."""
        mu = self.infer(o)
        with torch.no_grad():
            F = float(energy(self.spec, self.theta, mu).mean())
            for th, d in zip(self.theta, weight_directions(self.spec, self.theta, mu)):
                th.add_(d, alpha=self.spec.learning_rate)
        return F

    def encode(self, o: Tensor, steps: int | None = None) -> Tensor:
        """The top latent ``mu_L*`` of each observation."""
        return self.infer(o, steps)[-1]

    def decode(self, z: Tensor) -> Tensor:
        """Predictions passed down from the latent, no errors: the generated observation."""
        x = z.to(device=self.device, dtype=self.spec.torch_dtype)
        with torch.no_grad():
            for l in range(self.spec.L - 1, -1, -1):
                x = self.spec.activations[l].f(x @ self.theta[l].T)
        return x
