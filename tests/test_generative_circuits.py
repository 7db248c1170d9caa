"""The generative and dynamical Brian2 circuits against their numpy/torch models, sample by
sample and tick by tick (the models themselves are checked against autograd in
``test_generative.py`` and ``test_dynamical.py``). Float64 throughout: the circuit's Euler
step is the models' Jacobi step, so agreement is to rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.activations import Activation
from algorithms.dynamical import DynamicalPC, DynamicsDirection, LatticeSpec, generalised_wave
from algorithms.generative import GenerativePC, GenerativeSpec
from circuits.drive import CircuitError, Kernel, Target
from circuits.pc import build_pc_circuit
from circuits.spiking import SpikeCoding

GEN = GenerativeSpec(sizes=(6, 4, 2), activations=(Activation.SIGMOID, Activation.TANH),
                     prior_precision=0.5, inference_steps=20, learning_rate=0.5,
                     init_std=0.5, dtype="float64")


def test_generative_circuit_follows_the_torch_model() -> None:
    """Relaxed states of every sample, then learning in minibatches of 3 (the last batch
    holds 2: its update is that batch's mean, as ``train_batch``)."""
    model = GenerativePC(GEN)
    circuit = build_pc_circuit(GEN, target=Target.NUMPY, name="gen_t1")
    o = np.random.default_rng(0).random((5, 6))
    got = circuit.relax(o)
    want = model.infer(torch.tensor(o))
    for l in (1, 2):
        np.testing.assert_allclose(got[f"mu{l}"], want[l].numpy(), atol=1e-12)
    assert np.abs(want[2].numpy()).max() > 0.05  # inference moved the latent
    np.testing.assert_allclose(circuit.encode(o), want[2].numpy(), atol=1e-12)
    circuit.train(o, batch_size=3)
    model.train_batch(torch.tensor(o[:3]))
    model.train_batch(torch.tensor(o[3:]))
    start = GenerativePC(GEN).theta
    for got_t, want_t, t0 in zip(circuit.get_params(), model.theta, start):
        assert (want_t - t0).abs().max() > 1e-3  # learning moved the weights
        np.testing.assert_allclose(got_t.numpy(), want_t.numpy(), atol=1e-12)


@pytest.mark.parametrize("options", [
    dict(), dict(split_errors=True, dynamical_precisions=(1.0, 2.0, 0.5)),
    dict(direction=DynamicsDirection.LOWER_PREDICTS_HIGHER, split_errors=True)],
    ids=["thesis", "split", "lower+split"])
def test_dynamical_circuit_follows_the_numpy_model(options: dict) -> None:
    """The full construct (2 levels x 3 orders, tanh dynamics), 12 online ticks on the sine:
    the prediction made before each tick, the relaxed values of every node, and the learned
    weights."""
    spec = LatticeSpec(sizes=(1, 2, 2), orders=3, dynamical=Activation.TANH,
                       precisions=(1.0, 0.7, 1.3), inference_steps=15, init_std=0.5,
                       learning_rate=0.05, **options)
    model = DynamicalPC(spec)
    circuit = build_pc_circuit(spec, target=Target.NUMPY, name="dyn_t1")
    obs = generalised_wave("sine", 12)
    got = circuit.run(obs)
    ticks = [model.tick(obs[k]) for k in range(12)]
    np.testing.assert_allclose(got["predicted"], np.array([t["predicted"] for t in ticks]),
                               atol=1e-12)
    np.testing.assert_allclose(got["values"], np.array([t["values"] for t in ticks]),
                               atol=1e-12)
    np.testing.assert_allclose(got["errors"], np.array([t["errors"] for t in ticks]),
                               atol=1e-12)
    p, start = circuit.get_params(), DynamicalPC(spec).params
    for fam in ("Phi", "Theta"):
        for row, want_row, row0 in zip(getattr(p, fam), getattr(model.params, fam),
                                       getattr(start, fam)):
            for a, b, a0 in zip(row, want_row, row0):
                if b is not None:
                    np.testing.assert_allclose(a, b, atol=1e-12)
    assert any(np.abs(b - a0).max() > 1e-3 for b, a0 in zip(model.params.Theta[1],
                                                             start.Theta[1]))
    mu = circuit.get_values()
    for i in (1, 2):
        for n in range(3):
            np.testing.assert_allclose(mu[i][n], model.mu[i][n], atol=1e-12)


def test_generative_circuits_reject_what_they_do_not_implement() -> None:
    with pytest.raises(CircuitError, match="tie_orders"):
        build_pc_circuit(LatticeSpec(tie_orders=True), target=Target.NUMPY, name="dyn_bad")
    with pytest.raises(CircuitError, match="rate circuits"):
        build_pc_circuit(GEN, coding=SpikeCoding(), name="gen_bad")
    with pytest.raises(CircuitError, match="rate circuits"):
        build_pc_circuit(GEN, kernel=Kernel.NUMBA, name="gen_bad")
    c = build_pc_circuit(GEN, target=Target.NUMPY, name="gen_t2")
    with pytest.raises(CircuitError, match="shape"):
        c.relax(np.zeros((3, 5)))
    with pytest.raises(CircuitError, match="NaN"):
        c.relax(np.full((2, 6), np.nan))
    d = build_pc_circuit(LatticeSpec(), target=Target.NUMPY, name="dyn_t2")
    with pytest.raises(CircuitError, match="obs"):
        d.run(np.zeros((4, 2)))
