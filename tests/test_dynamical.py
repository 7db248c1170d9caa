"""Dynamical PC in generalised coordinates: every rule against autograd of the free energy
(written here independently, in torch, from the spec's equations), and the sine experiment
against the spec's criterion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.activations import Activation
from algorithms.dynamical import (DynamicalPC, LatticeSpec, errors, free_energy,
                                  generalised_wave, inference_direction, init_params,
                                  weight_directions)

ACT = {Activation.LINEAR: lambda a: a, Activation.TANH: torch.tanh}


def torch_free_energy(spec: LatticeSpec, Phi: dict, Theta: dict, mu: dict) -> torch.Tensor:
    """F = 1/2 sum pi |mu - f(Phi mu_above_order) - g(Theta mu_above_level)|^2, observed
    sensory orders and every latent node."""
    I, N = spec.levels, spec.orders
    total = torch.zeros((), dtype=torch.float64)
    for i in range(I + 1):
        for n in range(N):
            if i == 0 and n not in spec.observed:
                continue
            hat = torch.zeros(spec.sizes[i], dtype=torch.float64)
            if i >= 1 and n + 1 < N:
                hat = hat + ACT[spec.dynamical](Phi[i, n + 1] @ mu[i, n + 1])
            if i + 1 <= I:
                hat = hat + ACT[spec.hierarchical](Theta[i + 1, n] @ mu[i + 1, n])
            e = mu[i, n] - hat
            total = total + 0.5 * spec.pi(i) * (e @ e)
    return total


@pytest.mark.parametrize("act", [Activation.LINEAR, Activation.TANH])
def test_every_rule_is_minus_the_autograd_gradient(act: Activation) -> None:
    spec = LatticeSpec(sizes=(2, 3, 2), orders=3, dynamical=act, hierarchical=act,
                       observed=(0, 1), precisions=(2.0, 0.5, 1.5), init_std=0.7)
    rng = np.random.default_rng(0)
    p = init_params(spec, rng)
    mu = [[rng.standard_normal(spec.sizes[i]) for _ in range(spec.orders)]
          for i in range(spec.levels + 1)]
    t_mu = {(i, n): torch.tensor(mu[i][n], requires_grad=True)
            for i in range(spec.levels + 1) for n in range(spec.orders)}
    t_phi = {(i, n): torch.tensor(m, requires_grad=True)
             for i, row in enumerate(p.Phi) for n, m in enumerate(row) if m is not None}
    t_th = {(i, n): torch.tensor(m, requires_grad=True)
            for i, row in enumerate(p.Theta) for n, m in enumerate(row) if m is not None}
    F = torch_free_energy(spec, t_phi, t_th, t_mu)
    F.backward()
    assert free_energy(spec, p, mu) == pytest.approx(float(F.detach()), rel=1e-12)
    d = inference_direction(spec, p, mu, d_term=False)
    for (i, n), t in t_mu.items():
        if i >= 1:
            np.testing.assert_allclose(d[i][n], -t.grad.numpy(), rtol=1e-10, atol=1e-12)
    w = weight_directions(spec, p, mu)
    for (i, n), t in t_phi.items():
        np.testing.assert_allclose(w.Phi[i][n], -t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for (i, n), t in t_th.items():  # Theta[1][2] predicts an unobserved order: no gradient
        g = t.grad.numpy() if t.grad is not None else np.zeros(tuple(t.shape))
        np.testing.assert_allclose(w.Theta[i][n], -g, rtol=1e-10, atol=1e-12)
    # the D-term adds exactly the shift operator: D mu[i][n] = mu[i][n+1], 0 at the top order
    with_d = inference_direction(spec, p, mu, d_term=True)
    for i in range(1, spec.levels + 1):
        for n in range(spec.orders):
            shift = mu[i][n + 1] if n + 1 < spec.orders else 0.0
            np.testing.assert_allclose(with_d[i][n] - d[i][n], shift, atol=1e-12)
    # unobserved sensory orders carry no error
    assert not errors(spec, p, mu)[0][2].any()


def test_sine_is_predicted_after_online_learning() -> None:
    """Spec D1 (Fig 3.7): 3 orders, a 2-d latent, orders 0 and 1 observed, random start,
    3000 ticks. Criterion: NMSE of the predicted input (made before the input is seen) over
    the last half < 0.1; the sensory prediction error falls at least 3x from the first 5%
    (measured: NMSE 0.058, 4.4x)."""
    spec = LatticeSpec(sizes=(1, 2), orders=3)
    model = DynamicalPC(spec)
    obs = generalised_wave("sine", 3000)
    pred, pe = np.zeros(3000), np.zeros(3000)
    for k in range(3000):
        r = model.tick(obs[k])
        pred[k] = r["predicted"][0, 0]
        pe[k] = np.abs(r["predicted"][:2, 0] - obs[k, :2]).mean()
    late = slice(1500, None)
    nmse = ((pred[late] - obs[late, 0]) ** 2).mean() / obs[late, 0].var()
    assert nmse < 0.1
    assert pe[late].mean() * 3 < pe[:150].mean()


def test_bad_lattice_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="sizes"):
        LatticeSpec(sizes=(1,))
    with pytest.raises(ValueError, match="observed"):
        LatticeSpec(observed=(3,))
    with pytest.raises(ValueError, match="precisions"):
        LatticeSpec(precisions=(1.0,))
    with pytest.raises(ValueError, match="kind"):
        generalised_wave("triangle", 10)
