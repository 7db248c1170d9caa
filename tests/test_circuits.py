"""The Brian2 circuits against the torch backend (the oracle: itself checked against autograd
in test_pc_rules / test_activation_relaxation).

From the same weights and inputs, the circuit's relaxed value and error rates, its
accumulated Hebbian updates, its weights after a training batch and its prediction must equal
the torch backend's, for PC and AR under every relaxation (float64, 1e-9 relative: far inside
the 1e-6 the design asks for; the differences are summation order only).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import ar as tar
from algorithms import pc as tpc
from algorithms.activations import Activation
from algorithms.data import load_dataset
from algorithms.graph import Loss
from algorithms.spec import (BackwardPathway, DerivativeUse, ErrorConnections, ErrorToValue,
                             ForwardPass, HiddenInit, PassValue, PCSpec, PsiPlacement)
from algorithms.training import train_epoch
from algorithms.variants import Variant, build_model

b2 = pytest.importorskip("brian2")

from circuits.ar import build_ar_circuit  # noqa: E402
from circuits.drive import CircuitError, Kernel, Target  # noqa: E402
from circuits.model import build_circuit_model  # noqa: E402
from circuits.pc import build_pc_circuit  # noqa: E402

RTOL = 1e-9

F, C = PassValue.FROZEN, PassValue.CURRENT
PC_CASES = {
    "standard": {},
    "fixed-predictions": {"fixed_predictions": True},
    "learned-backward": {"backward": BackwardPathway.LEARNED},
    "learned-backward-kp": {"backward": BackwardPathway.LEARNED, "kp_decay": 0.5},
    "feedback-alignment": {"backward": BackwardPathway.RANDOM},
    "no-derivative": {"derivative": DerivativeUse.DROPPED_IN_INFERENCE},
    "no-derivative-anywhere": {"derivative": DerivativeUse.DROPPED_EVERYWHERE},
    # psi on the prediction (PsiPlacement.PREDICTION, the default): eps = v - psi f(a)
    "learned-psi": {"error_connections": ErrorConnections.LEARNED_PSI},
    "random-psi": {"error_connections": ErrorConnections.RANDOM_PSI},
    "fixed-predictions-psi": {"fixed_predictions": True,
                              "error_connections": ErrorConnections.LEARNED_PSI},
    # psi on the value (PsiPlacement.VALUE): eps = psi v - f(a)
    "learned-psi-value": {"error_connections": ErrorConnections.LEARNED_PSI,
                          "psi_placement": PsiPlacement.VALUE},
    "psi-transpose": {"error_connections": ErrorConnections.LEARNED_PSI,
                      "error_to_value": ErrorToValue.PSI_TRANSPOSE,
                      "psi_placement": PsiPlacement.VALUE},
    "fully-relaxed": {"backward": BackwardPathway.LEARNED,
                      "derivative": DerivativeUse.DROPPED_IN_INFERENCE,
                      "error_connections": ErrorConnections.LEARNED_PSI},
    "bias-sigmoid-clamp": {"use_bias": True, "activation": Activation.SIGMOID,
                           "output_activation": Activation.TANH, "update_clamp": 0.05},
}
AR_CASES = {
    "ar": {},
    "learned-backward": {"backward": BackwardPathway.LEARNED},
    "feedback-alignment": {"backward": BackwardPathway.RANDOM},
    "no-derivative": {"derivative": DerivativeUse.DROPPED_IN_INFERENCE},
    "no-derivative-anywhere": {"derivative": DerivativeUse.DROPPED_EVERYWHERE},
    "r5": {"forward_pass": ForwardPass(C, F, F)},
    "r6": {"forward_pass": ForwardPass(F, C, F)},
    "r7": {"forward_pass": ForwardPass(C, C, F)},
    "r8": {"forward_pass": ForwardPass(F, F, C)},
    "bias": {"use_bias": True},
}


def small_spec(**kw: object) -> PCSpec:
    base = dict(sizes=(6, 5, 4, 3), activation=Activation.TANH, dtype="float64",
                inference_steps=15, init_scale=0.5, batch_size=3, learning_rate=0.05)
    spec_fields = {"activation", "output_activation", "use_bias", "update_clamp",
                   "fixed_predictions"}
    base.update({k: v for k, v in kw.items() if k in spec_fields})
    return PCSpec(**base).replace(**{k: v for k, v in kw.items() if k not in spec_fields})


def batch(seed: int = 0, n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 6, generator=g, dtype=torch.float64),
            torch.randn(n, 3, generator=g, dtype=torch.float64))


def params_with_bias(spec: PCSpec) -> tpc.PCParams:
    p = tpc.init_params(spec)
    g = torch.Generator().manual_seed(7)
    for b in p.biases:
        if b is not None:
            b.copy_(0.3 * torch.randn(b.shape, generator=g, dtype=torch.float64))
    return p


def close(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> None:
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * max(1.0, float(np.abs(b).max())))


def compare_params(got: tpc.PCParams | tpc.PCUpdate, want: tpc.PCParams | tpc.PCUpdate) -> int:
    n = 0
    for fld in ("weights", "biases", "backward", "psi"):
        for a, b in zip(getattr(got, fld), getattr(want, fld)):
            if b is not None:
                assert a is not None, fld
                close(a, b)
                n += 1
    return n


@pytest.mark.parametrize("kernel", [Kernel.BRIAN2, Kernel.NUMBA])
@pytest.mark.parametrize("case", list(PC_CASES))
def test_pc_circuit_equals_torch(case: str, kernel: Kernel) -> None:
    spec = small_spec(**PC_CASES[case])
    params = params_with_bias(spec)
    x, y = batch()
    circuit = build_pc_circuit(spec, params, target=Target.NUMPY, kernel=kernel)
    net = tpc.PredictiveCodingNetwork(spec, params.clone())

    # relaxed rates, sample by sample
    relaxed = circuit.relax(x, y)
    r = net.relax(x, y)
    _, mu = tpc.predictions(net.params, spec, r.x, r.forward)
    eps = tpc.errors(net.params, spec, r.x, mu)
    for l in range(1, spec.n_layers):
        close(relaxed[f"v{l}"], r.x[l])
    for l in range(1, spec.n_layers + 1):
        close(relaxed[f"eps{l}"], eps[l])
        assert np.abs(relaxed[f"eps{l}"]).max() > 1e-3  # the comparison is not vacuous

    # accumulated Hebbian products of one batch = the torch update directions
    xb, yb = x[:3], y[:3]
    circuit.run(xb, yb, learn=True, apply=False)
    assert compare_params(circuit.accumulated(), net.updates(xb, yb)) >= spec.n_layers

    # applied over two batches (3 + 2 samples): same weights, same prediction
    fresh = build_pc_circuit(spec, params, target=Target.NUMPY, kernel=kernel)
    fresh.run(x, y)
    net.train_batch(x[:3], y[:3])
    net.train_batch(x[3:], y[3:])
    moved = max(float((a - b).abs().max())
                for a, b in zip(net.params.tensors().values(), params.tensors().values()))
    assert moved > 1e-4
    compare_params(fresh.get_params(), net.params)
    close(fresh.predict(x), net.predict(x))


@pytest.mark.parametrize("kernel", [Kernel.BRIAN2, Kernel.NUMBA])
@pytest.mark.parametrize("case", list(AR_CASES))
def test_ar_circuit_equals_torch(case: str, kernel: Kernel) -> None:
    spec = small_spec(**AR_CASES[case])
    params = params_with_bias(spec)
    x, y = batch(1)
    circuit = build_ar_circuit(spec, params, target=Target.NUMPY, kernel=kernel)
    net = tar.ActivationRelaxationNetwork(spec, params.clone())
    relaxed = circuit.relax(x, y)
    r = net._relax(*tpc.check_batch(spec, x, y))
    for l in range(1, spec.n_layers + 1):
        close(relaxed[f"x{l}"], r.x[l])
    circuit.run(x[:3], y[:3], learn=True, apply=False)
    assert compare_params(circuit.accumulated(), net.updates(x[:3], y[:3])) >= spec.n_layers
    fresh = build_ar_circuit(spec, params, target=Target.NUMPY, kernel=kernel)
    fresh.run(x, y)
    net.train_batch(x[:3], y[:3])
    net.train_batch(x[3:], y[3:])
    compare_params(fresh.get_params(), net.params)
    close(fresh.predict(x), net.predict(x))


def test_ar_circuit_mse_half_loss() -> None:
    spec = small_spec()
    x, y = batch(2)
    circuit = build_ar_circuit(spec, target=Target.NUMPY, loss=Loss.MSE_HALF)
    net = tar.ActivationRelaxationNetwork(spec, loss=Loss.MSE_HALF)
    relaxed = circuit.relax(x, y)
    r = net._relax(*tpc.check_batch(spec, x, y))
    close(relaxed["x3"], r.x[3])
    close(relaxed["x1"], r.x[1])


@pytest.mark.parametrize("placement", list(PsiPlacement), ids=lambda p: p.value)
def test_numba_and_brian2_paths_give_the_same_trajectories(placement: PsiPlacement) -> None:
    """Every step of every value and error population, not only the relaxed state."""
    spec = small_spec(backward=BackwardPathway.LEARNED,
                      error_connections=ErrorConnections.LEARNED_PSI, psi_placement=placement)
    x, y = batch(3, n=4)
    traces = []
    for kernel in (Kernel.BRIAN2, Kernel.NUMBA):
        c = build_pc_circuit(spec, target=Target.NUMPY, kernel=kernel)
        mons = c.step_monitors({"V1": ("v",), "V2": ("v",), "E1": ("eps",), "E3": ("eps",)})
        c.run(x, y, monitors=mons)
        traces.append({k: np.asarray(getattr(m, "v" if k[0] == "V" else "eps"))
                       for k, m in mons.items()})
    for k in traces[0]:
        assert traces[0][k].shape[1] == 4 * c.phases.period + 1
        close(traces[1][k], traces[0][k])


def test_cython_target_matches_torch() -> None:
    spec = small_spec(backward=BackwardPathway.LEARNED)
    x, y = batch(4)
    c = build_pc_circuit(spec, target=Target.CYTHON, name="pccy")
    c.run(x, y)
    net = tpc.PredictiveCodingNetwork(spec)
    net.train_batch(x[:3], y[:3])
    net.train_batch(x[3:], y[3:])
    compare_params(c.get_params(), net.params)


def test_cpp_standalone_matches_torch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from circuits.standalone import run_standalone

    # learned psi on the prediction: the extra schedule stages run on the device too
    spec = small_spec(backward=BackwardPathway.LEARNED,
                      error_connections=ErrorConnections.LEARNED_PSI)
    x, y = batch(5)
    res = run_standalone(spec, None, x, y, directory=tmp_path / "pc", record={"V1": ("v",)})
    net = tpc.PredictiveCodingNetwork(spec)
    r = net.relax(x, y)  # before learning: the first sample's relaxation is weight-identical
    close(res.relaxed["V1.v"][0], r.x[1][0])
    net.train_batch(x[:3], y[:3])
    net.train_batch(x[3:], y[3:])
    compare_params(res.params, net.params)
    assert b2.get_device().__class__.__name__ == "RuntimeDevice"  # no leftover global state


def test_one_digits_epoch_gives_the_torch_weights() -> None:
    """The design's acceptance check: a full epoch (1438 samples, batches of 64, 100
    relaxation steps each) leaves the same weights as the torch backend (to 1e-5)."""
    data = load_dataset("digits")
    base = PCSpec(sizes=(64, 24, 10), activation=Activation.TANH, dtype="float64")
    torch_model = build_model(Variant.PC, base)
    circuit_model = build_circuit_model(Variant.PC, base, target=Target.NUMPY,
                                        kernel=Kernel.NUMBA)
    e_torch = train_epoch(torch_model, data, 1, progress=False)
    e_circuit = train_epoch(circuit_model, data, 1, progress=False)
    assert e_circuit == pytest.approx(e_torch, rel=1e-9)
    got = circuit_model.circuit.get_params().tensors()
    for k, w in torch_model.params.tensors().items():
        np.testing.assert_allclose(got[k].numpy(), w.numpy(), rtol=0, atol=1e-5)
        assert float((w - tpc.init_params(base).tensors()[k]).abs().max()) > 1e-3


# ------------------------------------------------------------------------- bad input
def test_circuit_rejects_what_it_cannot_build() -> None:
    with pytest.raises(CircuitError, match="hidden_init"):
        build_pc_circuit(small_spec().replace(hidden_init=HiddenInit.RANDOM),
                         target=Target.NUMPY)
    with pytest.raises(CircuitError, match="numba"):
        build_pc_circuit(small_spec(), target=Target.CPP_STANDALONE, kernel=Kernel.NUMBA)
    with pytest.raises(CircuitError, match="loss"):
        build_ar_circuit(small_spec(), target=Target.NUMPY, loss=Loss.CROSS_ENTROPY)
    with pytest.raises(CircuitError, match="target"):
        build_pc_circuit(small_spec(), target="cython")  # type: ignore[arg-type]
    with pytest.raises(CircuitError, match="backprop"):
        build_circuit_model(Variant.BACKPROP, small_spec())


def test_circuit_rejects_bad_batches() -> None:
    c = build_pc_circuit(small_spec(), target=Target.NUMPY)
    x, y = batch()
    with pytest.raises(CircuitError, match=r"input must have shape \(samples, 6\)"):
        c.run(x[:, :5], y)
    with pytest.raises(CircuitError, match="3 samples but target has 5"):
        c.run(x[:3], y)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(CircuitError, match="NaN"):
        c.run(bad, y)
    with pytest.raises(CircuitError, match=r"params.weights\[0\]"):
        p = tpc.init_params(small_spec())
        p.weights[0] = p.weights[0][:, :2]
        c.set_params(p)


def test_weights_round_trip_as_numpy() -> None:
    spec = small_spec(backward=BackwardPathway.LEARNED,
                      error_connections=ErrorConnections.LEARNED_PSI, use_bias=True)
    c = build_pc_circuit(spec, target=Target.NUMPY)
    w = c.weights()
    assert set(w) == {"W0", "W1", "W2", "b0", "b1", "b2", "B1", "B2", "psi1", "psi2"}
    assert w["W0"].shape == (5, 6) and w["B1"].shape == (5, 4) and w["psi2"].shape == (4, 4)
    new = {k: v + np.arange(v.size).reshape(v.shape) for k, v in w.items()}
    c.set_weights(new)
    for k, v in c.weights().items():
        np.testing.assert_array_equal(v, new[k])
    with pytest.raises(ValueError, match="shape"):
        c.set_weights({**new, "W1": np.zeros((2, 2))})


# ------------------------------------------------------------------------------ demos
def test_main_job_circuit_backend_matches_its_torch_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``demos.relaxations --backend circuit``: same curves as the torch backend in float64."""
    from demos._runs import read_curves
    from demos.relaxations import main

    common = ["--epochs", "1", "--hidden", "12", "--inference-steps", "8", "--variants", "pc",
              "learned-backward", "--dtype", "float64", "--no-progress", "--no-plot"]
    assert main([*common, "--out", str(tmp_path / "torch")]) == 0
    assert main([*common, "--backend", "circuit", "--circuit-target", "numpy",
                 "--out", str(tmp_path / "circuit")]) == 0
    torch_rows = read_curves(tmp_path / "torch" / "curves.csv")
    circuit_rows = read_curves(tmp_path / "circuit" / "curves.csv")
    assert [r["backend"] for r in circuit_rows] == ["circuit", "circuit"]
    for a, b in zip(torch_rows, circuit_rows):
        assert a["test_accuracy"] == b["test_accuracy"]
        assert float(a["energy"]) == pytest.approx(float(b["energy"]), rel=1e-9)


def test_circuit_demo_writes_curves_and_the_circuit_at_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from demos.circuit import main

    out = tmp_path / "demo"
    assert main(["--epochs", "1", "--hidden", "10", "8", "--inference-steps", "6",
                 "--target", "numpy", "--no-progress", "--out", str(out)]) == 0
    comparison = json.loads((out / "comparison.json").read_text())["comparison"]
    assert comparison["circuit_status"] == comparison["torch_status"] == "finished"
    assert comparison["max_abs_test_accuracy_gap_points"] == 0.0
    assert (out / "curves.png").stat().st_size > 10_000
    assert (out / "circuit_at_work.png").stat().st_size > 30_000
