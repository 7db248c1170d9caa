"""Hand-written PC rules against torch.autograd of the energy (float64)."""

from __future__ import annotations

import pytest
import torch

from algorithms.pc import (PCParams, energy, feedforward, inference_step, init_params,
                           initial_values, weight_update)
from algorithms.spec import (Activation, BackwardPathway, DerivativeUse, ErrorConnections,
                             ErrorToValue, PCSpec, PsiInit, PsiPlacement, Relaxations)

SIZES = (5, 7, 6, 4)
TOL = 1e-12


def _perturbed_state(spec: PCSpec, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    params = init_params(spec)
    for t in params.tensors().values():  # larger weights: nonlinear regime, nonzero biases
        t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.5)
    x0 = torch.randn(3, SIZES[0], generator=g, dtype=torch.float64)
    target = torch.randn(3, SIZES[-1], generator=g, dtype=torch.float64)
    fwd = feedforward(params, spec, x0)
    x = initial_values(spec, fwd, target)
    x = [x[0], *[v + 0.3 * torch.randn(v.shape, generator=g, dtype=v.dtype) for v in x[1:-1]],
         x[-1]]
    return params, fwd, x, x0


def _autograd(params: PCParams, spec: PCSpec, x: list[torch.Tensor], x0: torch.Tensor):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.tensors().items()}
    L = spec.n_layers
    p = PCParams([leaves[f"W{i}"] for i in range(L)], [leaves.get(f"b{i}") for i in range(L)],
                 [None] * L, [leaves.get(f"psi{i}") for i in range(L + 1)])
    xs = [v.clone().requires_grad_(True) for v in x]
    total = energy(p, spec, xs, feedforward(p, spec, x0)).sum()
    grads = torch.autograd.grad(total, [*xs[1:-1], *leaves.values()])
    return list(grads[:L - 1]), dict(zip(leaves, grads[L - 1:]))


@pytest.mark.parametrize("act", [Activation.TANH, Activation.RELU, Activation.SIGMOID,
                                 Activation.LINEAR])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("psi", [False, True])
@pytest.mark.parametrize("precision", [1.0, 0.3])
def test_standard_rules_are_minus_the_energy_gradient(act, bias, psi, precision):
    """Value updates are -dF/dx; weight updates -dF/dtheta / pi (pi: output precision)."""
    relax = (Relaxations(error_connections=ErrorConnections.LEARNED_PSI,
                         psi_placement=PsiPlacement.VALUE,
                         error_to_value=ErrorToValue.PSI_TRANSPOSE) if psi else Relaxations())
    spec = PCSpec(sizes=SIZES, activation=act, output_activation=Activation.TANH,
                  use_bias=bias, dtype="float64", relaxations=relax, psi_init=PsiInit.NORMAL,
                  inference_rate=0.1, output_precision=precision)
    params, fwd, x, x0 = _perturbed_state(spec)
    gx, gtheta = _autograd(params, spec, x, x0)
    new = inference_step(params, spec, x, fwd)
    for l in range(1, spec.n_layers):
        dx = (new[l] - x[l]) / spec.inference_rate
        torch.testing.assert_close(dx, -gx[l - 1], rtol=0, atol=TOL)
    assert torch.equal(new[0], x[0]) and torch.equal(new[-1], x[-1])  # clamped
    up = weight_update(params, spec, x, fwd)
    ups = PCParams(up.weights, up.biases, up.backward, up.psi).tensors()
    assert set(ups) == set(gtheta)
    for k, g in gtheta.items():
        torch.testing.assert_close(ups[k], -g / precision, rtol=0, atol=TOL, msg=k)


def _explicit_terms(params, spec, x, fwd):
    """The relaxed rules written out directly, one layer at a time."""
    L = spec.n_layers
    a = [None, fwd.pre[1]]
    for l in range(1, L):
        a.append(x[l] @ params.weights[l].T)
    mu = [None] + [spec.activation_of(l).f(a[l]) for l in range(1, L + 1)]
    eps = [None]
    for l in range(1, L + 1):
        psi = params.psi[l]
        if psi is None:
            eps.append(x[l] - mu[l])
        elif spec.relaxations.psi_placement is PsiPlacement.VALUE:
            eps.append(x[l] @ psi.T - mu[l])
        else:
            eps.append(x[l] - mu[l] @ psi.T)
    e = [None] + [spec.activation_of(l).df(a[l]) * eps[l] for l in range(1, L + 1)]
    return a, eps, e, mu


@pytest.mark.parametrize("backward", list(BackwardPathway))
@pytest.mark.parametrize("derivative", list(DerivativeUse))
@pytest.mark.parametrize("errors", list(ErrorConnections))
@pytest.mark.parametrize("placement", list(PsiPlacement))
def test_relaxed_rules_match_their_formulas(backward, derivative, errors, placement):
    relax = Relaxations(backward=backward, derivative=derivative, error_connections=errors,
                        psi_placement=placement)
    spec = PCSpec(sizes=SIZES, activation=Activation.TANH, dtype="float64", relaxations=relax,
                  psi_init=PsiInit.NORMAL)
    params, fwd, x, _ = _perturbed_state(spec, seed=1)
    a, eps, e, mu = _explicit_terms(params, spec, x, fwd)
    new = inference_step(params, spec, x, fwd)
    up = weight_update(params, spec, x, fwd)
    for l in range(1, spec.n_layers):
        msg = eps[l + 1] if derivative is not DerivativeUse.KEPT else e[l + 1]
        back = params.weights[l].T if backward is BackwardPathway.TRANSPOSE else params.backward[l]
        expected = x[l] + spec.inference_rate * (-eps[l] + msg @ back.T)
        torch.testing.assert_close(new[l], expected, rtol=0, atol=TOL)
    for l in range(spec.n_layers):
        post = eps[l + 1] if derivative is DerivativeUse.DROPPED_EVERYWHERE else e[l + 1]
        torch.testing.assert_close(up.weights[l], post.T @ x[l], rtol=0, atol=TOL)
        if backward is BackwardPathway.LEARNED and l >= 1:
            torch.testing.assert_close(up.backward[l], x[l].T @ post, rtol=0, atol=TOL)
        else:
            assert up.backward[l] is None
    for l in range(1, spec.n_layers):
        if errors is ErrorConnections.LEARNED_PSI and placement is PsiPlacement.VALUE:
            torch.testing.assert_close(up.psi[l], -eps[l].T @ x[l], rtol=0, atol=TOL)
        elif errors is ErrorConnections.LEARNED_PSI:
            torch.testing.assert_close(up.psi[l], -0.5 * eps[l].T @ mu[l], rtol=0, atol=TOL)
        else:
            assert up.psi[l] is None


def test_feedforward_init_gives_zero_hidden_errors_at_step_zero():
    spec = PCSpec(sizes=(6, 8, 5, 3), activation=Activation.TANH, dtype="float64")
    params = init_params(spec)
    x0 = torch.rand(4, 6, dtype=torch.float64)
    target = torch.rand(4, 3, dtype=torch.float64)
    fwd = feedforward(params, spec, x0)
    x = initial_values(spec, fwd, target)
    a, eps, _, _ = _explicit_terms(params, spec, x, fwd)
    for l in range(1, spec.n_layers):
        assert torch.count_nonzero(eps[l]) == 0
    assert torch.count_nonzero(eps[-1]) > 0  # only the label error drives relaxation


def test_energy_does_not_increase_over_inference():
    spec = PCSpec(sizes=(10, 12, 8, 4), activation=Activation.TANH, dtype="float64",
                  inference_rate=0.05, inference_steps=200, init_scale=0.5)
    from algorithms.pc import relax

    params = init_params(spec)
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(8, 10, generator=g, dtype=torch.float64)
    target = torch.rand(8, 4, generator=g, dtype=torch.float64) * 3
    r = relax(params, spec, x0, target, record_energy=True)
    diffs = torch.diff(torch.tensor(r.energies))
    assert r.energies[-1] < 0.9 * r.energies[0]  # it does relax
    assert float(diffs.max()) <= 1e-12


@pytest.mark.parametrize("act", list(Activation))
def test_derivative_from_the_activation_value_equals_the_derivative(act: Activation) -> None:
    """``df_from_f(f(a))`` (what inference uses, from the stored prediction) is bitwise
    ``df(a)``, and both equal autograd's derivative."""
    a = torch.linspace(-4, 4, 401, dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(act.f(a).sum(), a)
    with torch.no_grad():
        assert torch.equal(act.df_from_f(act.f(a)), act.df(a))
        torch.testing.assert_close(act.df(a), grad, rtol=1e-12, atol=1e-15)
