"""Fixed-prediction PC against autograd backprop: exact at rate 1 after depth-many steps, and
the closed-form binomial convergence law at rate 0.1 (spec ch6 section 3.5)."""

from __future__ import annotations

from math import comb

import pytest
import torch

from algorithms.backprop import BackpropNetwork, gradients
from algorithms.pc import PredictiveCodingNetwork, init_params, relax, weight_update
from algorithms.spec import Activation, PCSpec


def binomial_tail(k: int, p: float, m: int) -> float:
    """P(Binomial(k, p) >= m)."""
    return 1.0 - sum(comb(k, i) * p**i * (1 - p) ** (k - i) for i in range(m))


def _setup(act: Activation, rate: float, steps: int, bias: bool = False):
    spec = PCSpec(sizes=(9, 8, 7, 6, 5), activation=act, output_activation=Activation.TANH,
                  dtype="float64", fixed_predictions=True, inference_rate=rate,
                  inference_steps=steps, init_scale=0.4, use_bias=bias)
    params = init_params(spec)
    if bias:
        for b in params.biases:
            b.normal_(0, 0.3, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(5, 9, generator=g, dtype=torch.float64)
    target = torch.rand(5, 5, generator=g, dtype=torch.float64)
    return spec, params, x0, target


@pytest.mark.parametrize("act", [Activation.TANH, Activation.RELU, Activation.SIGMOID])
@pytest.mark.parametrize("bias", [False, True])
def test_rate_one_depth_steps_gives_exact_backprop_gradient(act, bias):
    spec, params, x0, target = _setup(act, 1.0, 0, bias)
    spec = spec.replace(inference_steps=spec.n_layers - 1)  # hops from the output to layer 1
    r = relax(params, spec, x0, target)
    up = weight_update(params, spec, r.x, r.forward)
    bp = gradients(params, spec, x0, target)
    for dw, gw in zip(up.weights, bp.weights):
        torch.testing.assert_close(dw, -gw, rtol=1e-6, atol=1e-12)
    for db, gb in zip(up.biases, bp.biases):
        if gb is not None:
            torch.testing.assert_close(db, -gb, rtol=1e-6, atol=1e-12)


def test_one_step_short_is_not_exact():
    spec, params, x0, target = _setup(Activation.TANH, 1.0, 0)
    spec = spec.replace(inference_steps=spec.n_layers - 2)
    r = relax(params, spec, x0, target)
    up = weight_update(params, spec, r.x, r.forward)
    assert float(up.weights[0].abs().max()) == 0.0  # the error has not reached layer 1 yet


@pytest.mark.parametrize("rate,steps", [(0.1, 100), (0.1, 20), (0.3, 10)])
def test_binomial_convergence_law(rate, steps):
    spec, params, x0, target = _setup(Activation.TANH, rate, steps)
    r = relax(params, spec, x0, target)
    up = weight_update(params, spec, r.x, r.forward)
    bp = gradients(params, spec, x0, target)
    L = spec.n_layers
    for l in range(L):
        hops = L - (l + 1)  # error eps_{l+1} is this many hops below the output
        expected = binomial_tail(steps, rate, hops) * -bp.weights[l]
        torch.testing.assert_close(up.weights[l], expected, rtol=1e-9, atol=1e-14)
    if (rate, steps) == (0.1, 100):  # the spec's table: relative shortfall at m=3 is 1.94e-3
        assert abs((1 - binomial_tail(100, 0.1, 3)) - 1.94e-3) < 1e-5


def test_training_trajectory_equals_backprop():
    """Several SGD steps: PC (FPA, rate 1, depth steps) and the autograd twin stay equal."""
    spec = PCSpec(sizes=(9, 8, 7, 5), activation=Activation.TANH, dtype="float64",
                  fixed_predictions=True, inference_rate=1.0, inference_steps=2,
                  learning_rate=0.05, init_scale=0.4, use_bias=True)
    pc, bp = PredictiveCodingNetwork(spec), BackpropNetwork(spec)
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        x0 = torch.rand(6, 9, generator=g, dtype=torch.float64)
        target = torch.rand(6, 5, generator=g, dtype=torch.float64)
        pc.train_batch(x0, target)
        bp.train_batch(x0, target)
        for k, w in bp.params.tensors().items():
            torch.testing.assert_close(pc.params.tensors()[k], w, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", ["mse_half", "mse_sum", "cross_entropy"])
def test_backprop_twin_step_is_sgd_on_the_autograd_loss(kind: str) -> None:
    """One ``train_batch``: returns the summed loss before the update and moves every weight
    and bias by ``-eta`` times the gradient, both from an independent autograd forward pass."""
    from algorithms.graph import Loss

    spec = PCSpec(sizes=(5, 7, 4), activation=Activation.TANH, dtype="float64", use_bias=True,
                  learning_rate=0.05)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    t = torch.softmax(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    net = BackpropNetwork(spec, loss=Loss(kind))
    before = [p.clone().requires_grad_(True) for p in net.params.weights + net.params.biases]
    h = x
    for l in range(2):
        a = h @ before[l].T + before[2 + l]
        h = torch.tanh(a) if l == 0 else a
    if kind == "cross_entropy":
        per = -(t * torch.log_softmax(h, dim=1)).sum(1)
    else:
        per = (0.5 if kind == "mse_half" else 1.0) * ((h - t) ** 2).sum(1)
    grads = torch.autograd.grad(per.sum(), before)
    value = net.train_batch(x, t)
    assert value == pytest.approx(float(per.sum().detach()), rel=1e-12)
    for p, b, gr in zip(net.params.weights + net.params.biases, before, grads):
        torch.testing.assert_close(p, (b - 0.05 * gr).detach(), rtol=1e-12, atol=1e-14)
