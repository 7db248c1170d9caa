"""Error connections on the prediction (the authors' code) and weak output clamping.

Oracles: an independent re-implementation of the authors' update (BerenMillidge/
RelaxedPredictiveCoding ``main.py``: ``PCNet.infer_pc``, ``FCLayer.backward`` and
``update_weights``, ``PCNet.update_error_weights``) written in their layout, with their factors
of 2; the closed-form decay of the psi offset under fixed predictions; autograd backprop for
the small-output-precision limit.
"""

from __future__ import annotations

import pytest
import torch

from algorithms.pc import (PredictiveCodingNetwork, energy, feedforward, init_params,
                           initial_values, relax, weight_update)
from algorithms.spec import (Activation, BackwardPathway, DerivativeUse, ErrorConnections,
                             ErrorToValue, PCSpec, PsiInit, PsiPlacement, Relaxations,
                             SpecError)

SIZES = (6, 8, 7, 4)


def _authors_step(spec: PCSpec, params, x0: torch.Tensor, label: torch.Tensor):
    """One ``learn_pc`` of the authors' code, in their layout: ``W_a = W^T`` (in x out),
    ``B_a = B^T`` (out x in), ``error_weights = psi^T``; inference rate ``gamma / 2`` and weight
    rate ``eta / 2`` because their updates carry the factor 2 of ``||eps||^2``."""
    r = spec.relaxations
    L = spec.n_layers
    lr_mu, lr_w = spec.inference_rate / 2, spec.learning_rate / 2
    Wa = [w.T.clone() for w in params.weights]
    Ba = [None if b is None else b.T.clone() for b in params.backward]
    EW = [None] + [params.psi[l].T.clone() if params.psi[l] is not None
                   else torch.eye(SIZES[l], dtype=torch.float64) for l in range(1, L)]
    EW.append(torch.eye(SIZES[-1], dtype=torch.float64))
    f = [None] + [spec.activation_of(l).f for l in range(1, L + 1)]
    df = [None] + [spec.activation_of(l).df for l in range(1, L + 1)]
    nonlin_back = r.derivative is DerivativeUse.KEPT

    mus = [x0.clone()]
    for i in range(1, L):
        mus.append(f[i](mus[i - 1] @ Wa[i - 1]))
    mus.append(label.clone())
    inp, act, outs, eps = [None] * L, [None] * L, [None] * (L + 1), [None] * (L + 1)

    def forward(i: int) -> None:  # layer i-1 predicts layer i; the layer keeps inp, act
        inp[i - 1] = mus[i - 1].clone()
        act[i - 1] = inp[i - 1] @ Wa[i - 1]
        outs[i] = f[i](act[i - 1])

    for i in range(1, L + 1):
        forward(i)
        eps[i] = mus[i] - outs[i] @ EW[i]
    for _ in range(spec.inference_steps):
        for j in range(1, L):
            e = eps[j + 1] * df[j + 1](act[j]) if nonlin_back else eps[j + 1]
            back = e @ (Wa[j].T if Ba[j] is None else Ba[j])
            mus[j] = mus[j] - lr_mu * 2 * (eps[j] - back)
        for i in range(1, L + 1):
            if not spec.fixed_predictions:
                forward(i)
            eps[i] = mus[i] - outs[i] @ EW[i]
    for i in range(L):  # FCLayer.update_weights
        post = eps[i + 1] * df[i + 1](act[i])
        if r.backward is BackwardPathway.LEARNED and i >= 1:
            Ba[i] = Ba[i] + lr_w * 2 * (post.T @ inp[i])
        Wa[i] = Wa[i] + lr_w * 2 * (inp[i].T @ post)
    if r.error_connections is ErrorConnections.LEARNED_PSI:  # PCNet.update_error_weights
        for i in range(1, L):
            EW[i] = EW[i] - lr_w * (outs[i].T @ eps[i])
    return Wa, Ba, EW


@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize("act", [Activation.RELU, Activation.TANH])
@pytest.mark.parametrize("variant", ["learned-error", "fully-relaxed", "random-psi"])
def test_prediction_placement_equals_the_authors_update(fixed, act, variant):
    relax_ = {
        "learned-error": Relaxations(error_connections=ErrorConnections.LEARNED_PSI),
        "fully-relaxed": Relaxations(backward=BackwardPathway.LEARNED,
                                     derivative=DerivativeUse.DROPPED_IN_INFERENCE,
                                     error_connections=ErrorConnections.LEARNED_PSI),
        "random-psi": Relaxations(error_connections=ErrorConnections.RANDOM_PSI),
    }[variant]
    assert relax_.psi_placement is PsiPlacement.PREDICTION  # the default
    spec = PCSpec(sizes=SIZES, activation=act, dtype="float64", relaxations=relax_,
                  fixed_predictions=fixed, inference_steps=7, inference_rate=0.1,
                  learning_rate=0.05, init_scale=0.4, psi_init=PsiInit.NORMAL)
    g = torch.Generator().manual_seed(5)
    x0 = torch.rand(5, SIZES[0], generator=g, dtype=torch.float64)
    label = torch.rand(5, SIZES[-1], generator=g, dtype=torch.float64)
    net = PredictiveCodingNetwork(spec)
    Wa, Ba, EW = _authors_step(spec, net.params.clone(), x0, label)
    net.train_batch(x0, label)
    for l in range(spec.n_layers):
        torch.testing.assert_close(net.params.weights[l], Wa[l].T, rtol=0, atol=1e-12)
        if Ba[l] is not None:
            torch.testing.assert_close(net.params.backward[l], Ba[l].T, rtol=0, atol=1e-12)
    for l in range(1, spec.n_layers):
        torch.testing.assert_close(net.params.psi[l], EW[l].T, rtol=0, atol=1e-12)
    moved = (net.params.psi[1] - init_params(spec).psi[1]).abs().max()
    assert (moved > 1e-6) == (variant != "random-psi")


def test_the_authors_psi_rule_climbs_the_energy():
    """Written down, not a gradient: the authors' psi rule is +1/2 dF/dpsi (ascent)."""
    spec = PCSpec(sizes=SIZES, activation=Activation.TANH, dtype="float64",
                  relaxations=Relaxations(error_connections=ErrorConnections.LEARNED_PSI),
                  psi_init=PsiInit.NORMAL, init_scale=0.4)
    params = init_params(spec)
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(3, SIZES[0], generator=g, dtype=torch.float64)
    fwd = feedforward(params, spec, x0)
    x = initial_values(spec, fwd, torch.rand(3, SIZES[-1], generator=g, dtype=torch.float64))
    x = [x[0], *[v + 0.2 * torch.randn(v.shape, generator=g, dtype=v.dtype) for v in x[1:-1]],
         x[-1]]
    psi = [None if p is None else p.clone().requires_grad_(True) for p in params.psi]
    params.psi = psi
    grads = torch.autograd.grad(energy(params, spec, x, fwd).sum(), [psi[1], psi[2]])
    up = weight_update(params, spec, [v.detach() for v in x], fwd)
    for l, gr in zip((1, 2), grads):
        torch.testing.assert_close(up.psi[l], 0.5 * gr, rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", [20, 60])
def test_psi_on_the_prediction_is_inert_under_fixed_predictions(steps):
    """Closed form: with frozen predictions the psi offset eps(0) = mu_hat - psi mu_hat decays
    as (1 - gamma)^T, so W's update differs from one-to-one PC by at most that factor."""
    base = PCSpec(sizes=SIZES, activation=Activation.TANH, dtype="float64",
                  fixed_predictions=True, inference_steps=steps, inference_rate=0.1,
                  init_scale=0.4)
    psi_spec = base.replace(error_connections=ErrorConnections.RANDOM_PSI)
    params = init_params(psi_spec)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(6, SIZES[0], generator=g, dtype=torch.float64)
    y = torch.rand(6, SIZES[-1], generator=g, dtype=torch.float64)
    r_psi = relax(params, psi_spec, x0, y)
    up_psi = weight_update(params, psi_spec, r_psi.x, r_psi.forward)
    plain = params.clone()
    plain.psi = [None] * len(plain.psi)
    r = relax(plain, base, x0, y)
    up = weight_update(plain, base, r.x, r.forward)
    decay = (1 - base.inference_rate) ** steps
    for l in range(base.n_layers):
        diff = float((up_psi.weights[l] - up.weights[l]).norm())
        scale = float(up.weights[l].norm())
        assert diff <= 10 * decay * scale  # vanishes with T ...
    assert float((up_psi.weights[1] - up.weights[1]).norm()) > 0  # ... but psi was wired in


def _bp_gradient(spec: PCSpec, params, x0, y):
    ws = [w.clone().requires_grad_(True) for w in params.weights]
    h = x0
    for l, w in enumerate(ws):
        h = spec.activation_of(l + 1).f(h @ w.T)
    loss = 0.5 * ((y - h) ** 2).sum()
    return [-g for g in torch.autograd.grad(loss, ws)]


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    va, vb = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return float(va @ vb / (va.norm() * vb.norm()))


def test_small_output_precision_approaches_backprop_with_recomputed_predictions():
    spec = PCSpec(sizes=(6, 12, 10, 8, 4), activation=Activation.TANH, dtype="float64",
                  init_scale=0.6, inference_steps=3000, inference_rate=0.1)
    params = init_params(spec)
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(8, 6, generator=g, dtype=torch.float64)
    y = torch.randn(8, 4, generator=g, dtype=torch.float64) * 2
    bp = _bp_gradient(spec, params, x0, y)
    results = {}
    for pi in (1.0, 1e-4):
        s = spec.replace(output_precision=pi)
        r = relax(params, s, x0, y)
        up = weight_update(params, s, r.x, r.forward).weights
        results[pi] = (_cosine(up, bp), float(torch.cat([u.flatten() for u in up]).norm()
                                            / torch.cat([b.flatten() for b in bp]).norm()))
    assert results[1e-4][0] > 0.99999 and abs(results[1e-4][1] - 1) < 1e-3
    assert results[1.0][0] < results[1e-4][0] - 1e-3  # unit precision is visibly off


def test_new_options_are_validated_by_name():
    with pytest.raises(SpecError, match="^psi_placement:"):
        Relaxations(psi_placement="value")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="^error_to_value:.*PsiPlacement.VALUE"):
        Relaxations(error_connections=ErrorConnections.LEARNED_PSI,
                    error_to_value=ErrorToValue.PSI_TRANSPOSE)
    for bad in (0.0, -1.0, float("nan"), "1"):
        with pytest.raises(SpecError, match="^output_precision:"):
            PCSpec(output_precision=bad)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="^psi_init:"):
        PCSpec(psi_init="identity_noise")  # type: ignore[arg-type]


def test_identity_noise_start():
    spec = PCSpec(sizes=(4, 30, 3), relaxations=Relaxations(
        error_connections=ErrorConnections.LEARNED_PSI), psi_init=PsiInit.IDENTITY_NOISE,
        init_scale=0.05)
    psi = init_params(spec).psi[1]
    off = (psi - torch.eye(30)) * 30 ** 0.5  # N(0, s^2/n) noise, rescaled to N(0, s^2)
    assert abs(float(off.std()) - 0.05) < 0.01 and abs(float(off.mean())) < 0.01
