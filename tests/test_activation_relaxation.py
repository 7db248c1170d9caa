"""Activation relaxation against autograd, the graph engine, and its relaxations' formulas."""

from __future__ import annotations

import pytest
import torch

from algorithms.ar import ActivationRelaxationNetwork, ar_relax, ar_update
from algorithms.graph import Algorithm, Loss, Schedule, autograd_gradients, relax_graph
from algorithms.graph_models import mlp_graph
from algorithms.pc import init_params
from algorithms.spec import (Activation, BackwardPathway, DerivativeUse, ErrorConnections,
                             ForwardPass, PassValue, PCSpec, Relaxations)

F64 = torch.float64


def _setup(act=Activation.TANH, rate=0.1, steps=100, relax=Relaxations(), bias=False):
    spec = PCSpec(sizes=(8, 7, 6, 5, 4), activation=act, dtype="float64", inference_rate=rate,
                  inference_steps=steps, init_scale=0.4, relaxations=relax, use_bias=bias)
    params = init_params(spec)
    if bias:
        for b in params.biases:
            b.normal_(0, 0.3, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(1)
    return spec, params, torch.rand(5, 8, generator=g, dtype=F64), torch.rand(5, 4, generator=g,
                                                                                dtype=F64)


@pytest.mark.parametrize("act", [Activation.TANH, Activation.RELU, Activation.SIGMOID])
@pytest.mark.parametrize("loss", [Loss.MSE_SUM, Loss.CROSS_ENTROPY])
@pytest.mark.parametrize("schedule,steps", [(Schedule.JACOBI, 3), (Schedule.REVERSE_GAUSS_SEIDEL, 1)])
def test_exact_ar_equals_backprop(act, loss, schedule, steps):
    """Rate 1: depth-many Jacobi steps, or one reverse Gauss-Seidel sweep, give -dL/dW."""
    spec, params, x0, target = _setup(act, rate=1.0, steps=steps, bias=True)
    if loss is Loss.CROSS_ENTROPY:
        target = torch.softmax(target * 3, dim=-1)
    r = ar_relax(params, spec, x0, target, loss=loss, schedule=schedule)
    up = ar_update(params, spec, r.x, r.forward)
    graph = mlp_graph(spec, params)
    gp, _ = autograd_gradients(graph, {"x": x0}, target, loss)
    for l in range(spec.n_layers):
        torch.testing.assert_close(up.weights[l], -gp[f"W{l}"], rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(up.biases[l], -gp[f"b{l}"], rtol=1e-10, atol=1e-13)


def test_ar_matches_the_graph_engine_at_every_iteration():
    spec, params, x0, target = _setup(rate=0.2, steps=12)
    r = ar_relax(params, spec, x0, target, init_from_forward=False, record=True)
    g = relax_graph(mlp_graph(spec), {"x": x0}, target, algorithm=Algorithm.AR, rate=0.2,
                    steps=12, record=True)
    for xs, state in zip(r.history, g.history):
        for l in range(1, spec.n_layers + 1):
            torch.testing.assert_close(xs[l], state[f"h{l}"], rtol=1e-12, atol=1e-14)


def test_ar_converges_to_backprop_at_the_thesis_rate():
    spec, params, x0, target = _setup(rate=0.1, steps=400)
    r = ar_relax(params, spec, x0, target)
    up = ar_update(params, spec, r.x, r.forward)
    gp, _ = autograd_gradients(mlp_graph(spec), {"x": x0}, target, Loss.MSE_SUM)
    for l in range(spec.n_layers):
        torch.testing.assert_close(up.weights[l], -gp[f"W{l}"], rtol=1e-6, atol=1e-12)


def _manual(spec, params, x0, target, steps):
    """The relaxed AR rules written out layer by layer (column formulas of spec 4.5-4.6)."""
    r = spec.relaxations
    fp = r.forward_pass
    L = spec.n_layers
    xb, a = [x0], [None]
    for l in range(L):
        a.append(xb[-1] @ params.weights[l].T)
        xb.append(spec.activation_of(l + 1).f(a[-1]))
    x = [None] + [xb[l].clone() for l in range(1, L)] + [2 * (xb[L] - target)]
    for _ in range(steps):
        new = list(x)
        for l in range(1, L):
            act = spec.activation_of(l + 1)
            if r.derivative is not DerivativeUse.KEPT:
                h = torch.ones_like(x[l + 1])
            elif fp.gain_in_relaxation is PassValue.CURRENT:
                h = act.df(x[l] @ params.weights[l].T)
            else:
                h = act.df(a[l + 1])
            B = params.weights[l].T if params.backward[l] is None else params.backward[l]
            new[l] = x[l] + spec.inference_rate * (-x[l] + (h * x[l + 1]) @ B.T)
        x = new
    dW = []
    for l in range(L):
        act = spec.activation_of(l + 1)
        below = xb[0] if l == 0 else x[l]
        if r.derivative is DerivativeUse.DROPPED_EVERYWHERE:
            h = torch.ones_like(x[l + 1])
        elif fp.gain_in_update is PassValue.CURRENT:
            h = act.df(below @ params.weights[l].T)
        else:
            h = act.df(a[l + 1])
        pre = xb[l] if (l == 0 or fp.presynaptic_in_update is PassValue.FROZEN) else x[l]
        dW.append(-(h * x[l + 1]).T @ pre)
    return x, dW


RELAXED = {
    "R1 learned backward": Relaxations(backward=BackwardPathway.LEARNED),
    "R2 feedback alignment": Relaxations(backward=BackwardPathway.RANDOM),
    "R3 no f'": Relaxations(derivative=DerivativeUse.DROPPED_IN_INFERENCE),
    "R3 no f' anywhere": Relaxations(derivative=DerivativeUse.DROPPED_EVERYWHERE),
    "R4 combined": Relaxations(backward=BackwardPathway.LEARNED,
                               derivative=DerivativeUse.DROPPED_IN_INFERENCE),
    "R5": Relaxations(forward_pass=ForwardPass(gain_in_relaxation=PassValue.CURRENT)),
    "R6": Relaxations(forward_pass=ForwardPass(gain_in_update=PassValue.CURRENT)),
    "R7": Relaxations(forward_pass=ForwardPass(gain_in_relaxation=PassValue.CURRENT,
                                               gain_in_update=PassValue.CURRENT)),
    "R8": Relaxations(forward_pass=ForwardPass(presynaptic_in_update=PassValue.CURRENT)),
}


@pytest.mark.parametrize("name", list(RELAXED))
def test_relaxations_match_their_formulas(name):
    spec, params, x0, target = _setup(relax=RELAXED[name], steps=15)
    x, dW = _manual(spec, params, x0, target, 15)
    r = ar_relax(params, spec, x0, target)
    up = ar_update(params, spec, r.x, r.forward)
    for l in range(1, spec.n_layers):
        torch.testing.assert_close(r.x[l], x[l], rtol=1e-12, atol=1e-14)
    for l in range(spec.n_layers):
        torch.testing.assert_close(up.weights[l], dW[l], rtol=1e-12, atol=1e-14)
        if spec.relaxations.backward is BackwardPathway.LEARNED and l >= 1:
            torch.testing.assert_close(up.backward[l], dW[l].T, rtol=1e-12, atol=1e-14)


def test_learned_backward_offset_stays_constant():
    spec, _, _, _ = _setup(relax=RELAXED["R1 learned backward"], steps=20)
    spec = spec.replace(learning_rate=0.01)
    net = ActivationRelaxationNetwork(spec)
    start = [net.params.backward[l] - net.params.weights[l].T for l in range(1, spec.n_layers)]
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        net.train_batch(torch.rand(4, 8, generator=g, dtype=F64),
                        torch.rand(4, 4, generator=g, dtype=F64))
    for l, s in zip(range(1, spec.n_layers), start):
        torch.testing.assert_close(net.params.backward[l] - net.params.weights[l].T, s,
                                   rtol=0, atol=1e-13)


def test_ar_rejects_pc_only_options():
    with pytest.raises(ValueError, match="error_connections"):
        ActivationRelaxationNetwork(PCSpec(relaxations=Relaxations(
            error_connections=ErrorConnections.LEARNED_PSI)))
    with pytest.raises(ValueError, match="fixed_predictions"):
        ActivationRelaxationNetwork(PCSpec(fixed_predictions=True))
    from algorithms.pc import PredictiveCodingNetwork

    with pytest.raises(ValueError, match="forward_pass"):
        PredictiveCodingNetwork(PCSpec(relaxations=RELAXED["R5"]))


def test_ar_trains_like_its_backprop_twin():
    """A few SGD steps: exact AR (rate 1, one reverse sweep) and the autograd twin agree."""
    from algorithms.backprop import BackpropNetwork

    spec = PCSpec(sizes=(8, 7, 5), activation=Activation.TANH, dtype="float64",
                  inference_rate=1.0, inference_steps=1, learning_rate=0.02, init_scale=0.4)
    ar = ActivationRelaxationNetwork(spec, loss=Loss.MSE_HALF, schedule=Schedule.REVERSE_GAUSS_SEIDEL)
    bp = BackpropNetwork(spec)
    g = torch.Generator().manual_seed(7)
    for _ in range(4):
        x0, t = torch.rand(6, 8, generator=g, dtype=F64), torch.rand(6, 5, generator=g, dtype=F64)
        assert ar.train_batch(x0, t) == pytest.approx(bp.train_batch(x0, t), rel=1e-12)
    for k, w in bp.params.tensors().items():
        torch.testing.assert_close(ar.params.tensors()[k], w, rtol=1e-10, atol=1e-13)


def test_layer_fidelity_of_exact_and_feedback_alignment_ar():
    from algorithms.fidelity import layer_fidelity

    spec, params, x0, target = _setup(rate=1.0, steps=3)
    exact = layer_fidelity(ActivationRelaxationNetwork(spec, params), x0, target)
    assert all(f.angle_degrees < 1e-5 and f.relative_error < 1e-10 for f in exact)
    fa = layer_fidelity(ActivationRelaxationNetwork(
        spec.replace(backward=BackwardPathway.RANDOM)), x0, target)
    assert fa[-1].angle_degrees < 1e-5  # the output layer's update needs no feedback
    assert all(f.angle_degrees > 5 for f in fa[:-1])  # random feedback: far from backprop


# --- relax_input: the input layer relaxes as in the authors' code ---------------------------

def _authors_ar(weights, x0, target, steps, rate, f, df, *, current_x_weights=False,
                fderiv_x_update=False, fderiv_weight_update=False):
    """A line-by-line port of Dynamical-Activation-Relaxation ``main.py`` (``FCLayer.forward``,
    ``backward``, ``update_weights``; ``Net.learn_batch``) without biases: ``weights[j]`` is
    ``in x out`` and every layer's ``self.x``, the input layer's included, relaxes in place,
    top layer first. Returns the relaxed ``x`` of each layer and its ``wgrad``."""
    L = len(weights)
    fns = [(f, df)] * (L - 1) + [(lambda v: v, lambda v: torch.ones_like(v))]
    layer_x, old_x, activations = [], [], []
    xs = x0
    for j in range(L):  # forward
        layer_x.append(xs.clone())
        old_x.append(xs.clone())
        activations.append(xs @ weights[j])
        xs = fns[j][0](activations[j])
    backs = [None] * (L + 1)
    backs[L] = 2 * (xs - target)
    for _ in range(steps):
        for j in reversed(range(L)):
            xnext, d = backs[j + 1], fns[j][1]
            gain = d(layer_x[j] @ weights[j]) if fderiv_x_update else d(activations[j])
            xgrad = layer_x[j] - ((xnext * gain) @ weights[j].T)
            layer_x[j] -= rate * xgrad
            backs[j] = layer_x[j]
    wgrads = []
    for j in range(L):
        xnext, d = backs[j + 1], fns[j][1]
        gain = d(layer_x[j] @ weights[j]) if fderiv_weight_update else d(activations[j])
        pre = layer_x[j] if current_x_weights else old_x[j]
        wgrads.append(pre.T @ (xnext * gain))
    return layer_x, wgrads


AUTHORS_FLAGS = {
    "AR": {},
    "R5": {"fderiv_x_update": True},
    "R6": {"fderiv_weight_update": True},
    "R7": {"fderiv_x_update": True, "fderiv_weight_update": True},
    "R8": {"current_x_weights": True},
}


@pytest.mark.parametrize("act", [Activation.TANH, Activation.RELU])
@pytest.mark.parametrize("name", list(AUTHORS_FLAGS))
def test_relax_input_equals_the_authors_code(name, act):
    """With ``relax_input`` (reverse Gauss-Seidel, the authors' sweep), every layer's relaxed
    activity and every weight update equal the port of their code; without it, only ``dW_0``
    of the options that read layer 0's current activity (R6-R8) differs."""
    relax = Relaxations() if name == "AR" else RELAXED[name]
    spec, params, x0, target = _setup(act, rate=0.1, relax=relax, steps=25)
    xs, wgrads = _authors_ar([w.T.clone() for w in params.weights], x0, target, 25, 0.1,
                             act.f, act.df, **AUTHORS_FLAGS[name])
    on = ActivationRelaxationNetwork(spec, params, schedule=Schedule.REVERSE_GAUSS_SEIDEL,
                                     relax_input=True)
    r = ar_relax(params, spec, x0, target, schedule=Schedule.REVERSE_GAUSS_SEIDEL,
                 relax_input=True)
    for l in range(spec.n_layers):
        torch.testing.assert_close(r.x[l], xs[l], rtol=1e-12, atol=1e-14)
    up = on.updates(x0, target)
    for l in range(spec.n_layers):
        torch.testing.assert_close(up.weights[l], -wgrads[l].T, rtol=1e-12, atol=1e-14)
    off = ActivationRelaxationNetwork(spec, params, schedule=Schedule.REVERSE_GAUSS_SEIDEL)
    up_off = off.updates(x0, target)
    for l in range(1, spec.n_layers):
        torch.testing.assert_close(up_off.weights[l], up.weights[l], rtol=0, atol=0)
    if name in ("R6", "R7", "R8"):
        assert (up_off.weights[0] - up.weights[0]).abs().max() > 1e-6
    else:
        torch.testing.assert_close(up_off.weights[0], up.weights[0], rtol=0, atol=0)


def test_relaxed_input_layer_converges_to_the_input_adjoint():
    """Jacobi, thesis rate: ``x_0`` settles at ``dL/dx_0``; the exact updates are unchanged."""
    spec, params, x0, target = _setup(rate=0.1, steps=400)
    r = ar_relax(params, spec, x0, target, relax_input=True)
    xin = x0.clone().requires_grad_(True)
    h = xin
    for l in range(spec.n_layers):
        h = spec.activation_of(l + 1).f(h @ params.weights[l].T)
    ((h - target) ** 2).sum().backward()
    torch.testing.assert_close(r.x[0], xin.grad, rtol=1e-6, atol=1e-12)
    plain = ar_relax(params, spec, x0, target)
    assert torch.equal(plain.x[0], torch.zeros_like(x0))
    a = ar_update(params, spec, r.x, r.forward, relax_input=True)
    b = ar_update(params, spec, plain.x, plain.forward)
    for wa, wb in zip(a.weights, b.weights):
        assert torch.equal(wa, wb)


def test_relax_input_is_validated():
    with pytest.raises(TypeError, match="relax_input"):
        ActivationRelaxationNetwork(PCSpec(), relax_input="yes")
    with pytest.raises(ValueError, match="relax_input"):
        ActivationRelaxationNetwork(PCSpec(relaxations=RELAXED["R2 feedback alignment"]),
                                    relax_input=True)
    assert ActivationRelaxationNetwork(PCSpec()).relax_input is False


def test_the_ar_circuit_refuses_relax_input():
    pytest.importorskip("brian2")
    from circuits.ar import build_ar_circuit
    from circuits.drive import CircuitError

    with pytest.raises(CircuitError, match="relax_input"):
        build_ar_circuit(PCSpec(sizes=(4, 3, 2)), relax_input=True)
