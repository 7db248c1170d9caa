"""Spiking circuits against closed forms (LIF and Poisson rate codes) and against their rate
twins (the rate circuits, themselves checked against autograd in test_circuits.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from algorithms.activations import Activation
from algorithms.pc import PCParams, init_params
from algorithms.spec import (BackwardPathway, ErrorConnections, ErrorToValue, PCSpec, PsiInit,
                             PsiPlacement, Relaxations)
from algorithms.variants import ARVariant, Variant, variant_spec
from circuits.ar import build_ar_circuit
from circuits.drive import CircuitError, Kernel, Target
from circuits.pc import build_pc_circuit
from circuits.spiking import (Encoding, SpikeCoding, _angle, _rel, build_spiking_ar_circuit,
                              build_spiking_pc_circuit, decode_counts, measure_correspondence)

NP = Target.NUMPY


def named(update: object) -> dict[str, torch.Tensor]:
    """An update's tensors by name (PCUpdate has PCParams's layout)."""
    return PCParams.tensors(update)  # type: ignore[arg-type]


def small_spec(**kw: object) -> PCSpec:
    base = dict(sizes=(8, 6, 4), activation=Activation.TANH, dtype="float64", init_scale=0.3)
    base.update(kw)
    return PCSpec(**base)  # type: ignore[arg-type]


def batch(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 8))
    y = np.full((n, 4), 0.1)
    y[np.arange(n), np.arange(n) % 4] = 1.0
    return x, y


def input_counts(coding: SpikeCoding, x: np.ndarray, name: str) -> np.ndarray:
    """Spike counts (ON - OFF) of the clamped input pairs in each sample's hold window."""
    spec = small_spec(sizes=(x.shape[1], 2, 2))
    c = build_spiking_pc_circuit(spec, coding=coding, target=NP, name=name)
    mons = c.relaxed_monitors({"V0": ("count",)})
    c.run(x, None, learn=False, monitors=mons)
    return np.asarray(mons["V0"].count).T[1:]


# ------------------------------------------------------------------------ rate codes
def test_lif_pairs_fire_at_the_coded_rate_within_one_spike() -> None:
    """Closed form: a constant q makes its LIF cell fire ``max_rate * |q| / range`` times a
    second, so a window holds that many spikes up to one (rounding of the phase)."""
    coding = SpikeCoding(max_rate=400.0, hold=50e-3)
    x = np.linspace(-0.95, 0.95, 24)[None, :].repeat(3, axis=0)
    counts = input_counts(coding, x, "lifcode")
    expected = x * coding.max_rate * coding.hold / coding.value_range
    assert np.abs(counts - expected).max() <= 1.0 + 1e-9
    # and decoding inverts the code within one spike's worth
    dec = decode_counts(counts, coding.value_range, coding, coding.steps(coding.hold))
    assert np.abs(dec - x).max() <= coding.value_range / (coding.max_rate * coding.hold) + 1e-9


def test_poisson_populations_have_poisson_counts() -> None:
    """Closed form: ``cells`` Poisson cells at rate ``r q`` give counts with mean and
    variance ``cells r q T`` in a window ``T`` (superposition)."""
    coding = SpikeCoding(encoding=Encoding.POISSON, max_rate=200.0, cells=5, hold=20e-3,
                         seed=3)
    q = 0.6
    x = np.full((40, 64), q)
    counts = input_counts(coding, x, "poicode").ravel()
    lam = coding.cells * coding.max_rate * q * coding.hold  # 12 spikes per window
    n = counts.size
    assert abs(counts.mean() - lam) < 5 * math.sqrt(lam / n)
    # variance of a Poisson sample: its standard error is about sqrt(2 lam^2 / n)
    assert abs(counts.var() - lam) < 5 * math.sqrt((2 * lam ** 2 + lam) / n)


def test_coding_is_validated() -> None:
    with pytest.raises(CircuitError, match="max_rate"):
        SpikeCoding(max_rate=-1.0)
    with pytest.raises(CircuitError, match="two steps per spike"):
        SpikeCoding(max_rate=5000.0, dt=0.2e-3)
    with pytest.raises(CircuitError, match="cells"):
        SpikeCoding(cells=4)  # LIF populations are not simulated
    with pytest.raises(CircuitError, match="encoding"):
        SpikeCoding(encoding="lif")  # type: ignore[arg-type]
    with pytest.raises(CircuitError, match="shorter than one step"):
        SpikeCoding(tau_syn=0.05e-3)
    with pytest.raises(CircuitError, match="coding"):
        build_spiking_pc_circuit(small_spec(), coding="lif", target=NP)  # type: ignore[arg-type]
    with pytest.raises(CircuitError, match="kernel"):
        build_pc_circuit(small_spec(), coding=SpikeCoding(), kernel=Kernel.NUMBA)


def test_rate_spec_samples_the_relaxation_ode() -> None:
    coding = SpikeCoding(tau_value=10e-3, relax=30e-3, dt=0.2e-3)
    rs = coding.rate_spec(small_spec())
    assert rs.inference_rate == pytest.approx(0.02)
    assert rs.inference_steps == 150


# ------------------------------------------------------------- against the rate twin
SMALL = dict(output_error_range=1.0, error_range=0.25)
"""Coding ranges for the small test network, whose errors are larger than the defaults
(sized for trained digits networks) would code without saturating."""

VALUES_BOUND, ERRORS_BOUND, UPDATES_BOUND, ANGLE_BOUND = 0.3, 0.4, 0.4, 25.0
"""Stated bounds at a 20 ms hold window and 1 kHz LIF pairs (otherwise default coding, the
8-6-4 tanh network below, 8 samples): relative errors of the decoded values, the decoded
errors and the batch update against the rate twin, and the angle between the two updates
(degrees). Measured when written: 0.23, 0.29, 0.30 and 17 degrees."""


def test_spiking_pc_matches_its_rate_twin_at_the_stated_window() -> None:
    spec = small_spec()
    x, y = batch(8)
    m = measure_correspondence(spec, init_params(spec), x, y, SpikeCoding(**SMALL), target=NP)
    assert m.values < VALUES_BOUND
    assert m.errors < ERRORS_BOUND
    assert m.updates < UPDATES_BOUND
    assert m.angle_to_rate < ANGLE_BOUND
    # the spiking update descends the loss about as well as the rate update does
    assert m.angle_to_backprop < m.rate_angle_to_backprop + ANGLE_BOUND


def test_the_error_falls_as_the_window_and_the_rate_grow() -> None:
    """Measured when written: 4 ms -> 80 ms window: values 0.31 -> 0.22, errors 0.45 ->
    0.31; 250 Hz -> 1 kHz (20 ms): values 0.37 -> 0.23, updates 0.67 -> 0.30."""
    spec = small_spec()
    x, y = batch(8)
    p = init_params(spec)
    short = measure_correspondence(spec, p, x, y, SpikeCoding(**SMALL, hold=4e-3), target=NP)
    long = measure_correspondence(spec, p, x, y, SpikeCoding(**SMALL, hold=80e-3), target=NP)
    slow = measure_correspondence(spec, p, x, y, SpikeCoding(**SMALL, max_rate=250.0),
                                  target=NP)
    fast = measure_correspondence(spec, p, x, y, SpikeCoding(**SMALL), target=NP)
    assert long.values < 0.8 * short.values
    assert long.errors < 0.8 * short.errors
    assert fast.values < 0.8 * slow.values and fast.updates < 0.8 * slow.updates


RELAXED = [Variant.PC, Variant.LEARNED_BACKWARD, Variant.FEEDBACK_ALIGNMENT,
           Variant.NO_DERIVATIVE, Variant.LEARNED_ERROR, Variant.FULLY_RELAXED]
"""The psi variants put psi on the prediction (``PsiPlacement.PREDICTION``, the default)."""
RELAXED_CASES = [(v, None) for v in RELAXED] + [(Variant.LEARNED_ERROR, PsiPlacement.VALUE)]


@pytest.mark.parametrize(("variant", "placement"), RELAXED_CASES,
                         ids=lambda v: v.value if v is not None else "default")
def test_every_relaxation_spikes_like_its_rate_twin(variant: Variant,
                                                   placement: PsiPlacement | None) -> None:
    """Same weights and inputs: the spiking batch update of every plastic pathway points
    where the rate circuit's does (psi on the prediction, and once on the value)."""
    coding = SpikeCoding(**SMALL)
    # psi starts at the identity (as in demos.circuit): the reference code's small |N| start
    # makes every hidden error as large as the prediction, beyond any error range
    spec = variant_spec(variant, small_spec(psi_init=PsiInit.IDENTITY))
    if placement is not None:
        spec = spec.replace(psi_placement=placement)
    spec = coding.rate_spec(spec)
    params = init_params(spec)
    x, y = batch(8)
    s = build_spiking_pc_circuit(spec, params, coding=coding, target=NP, name="rx_s")
    s.relax(x, y, accumulate=True)
    r = build_pc_circuit(spec, params, target=NP, name="rx_r")
    r.run(x, y, learn=True, apply=False)
    got, want = named(s.accumulated()), named(r.accumulated())
    assert set(got) == set(want)
    for k in want:
        if not want[k].any():  # a fixed pathway (feedback alignment's B) stays untouched
            assert not got[k].any(), k
            continue
        # psi's update (-eps v, or -1/2 eps mu) rests on the noisiest signal, the hidden
        # errors (27 degrees)
        assert _angle(got[k].numpy().ravel(), want[k].numpy().ravel()) < 30.0, k


def test_fixed_predictions_spike_the_latched_values() -> None:
    coding = SpikeCoding(**SMALL)
    spec = coding.rate_spec(small_spec(fixed_predictions=True))
    params = init_params(spec)
    x, y = batch(8)
    s = build_spiking_pc_circuit(spec, params, coding=coding, target=NP, name="fp_s")
    s.relax(x, y, accumulate=True)
    r = build_pc_circuit(spec, params, target=NP, name="fp_r")
    r.run(x, y, learn=True, apply=False)
    for a, b in zip(s.accumulated().weights, r.accumulated().weights):
        assert _angle(a.numpy().ravel(), b.numpy().ravel()) < 20.0


@pytest.mark.parametrize("variant", [ARVariant.AR, ARVariant.LEARNED_BACKWARD,
                                     ARVariant.NO_DERIVATIVE, ARVariant.UNFROZEN_RELAXATION_GAIN,
                                     ARVariant.RELAXED_PRESYNAPTIC],
                         ids=lambda v: v.value)
def test_spiking_activation_relaxation_matches_its_rate_twin(variant: ARVariant) -> None:
    coding = SpikeCoding(**SMALL)
    # psi starts at the identity (as in demos.circuit): the reference code's small |N| start
    # makes every hidden error as large as the prediction, beyond any error range
    spec = coding.rate_spec(variant_spec(variant, small_spec(psi_init=PsiInit.IDENTITY)))
    params = init_params(spec)
    x, y = batch(8)
    s = build_spiking_ar_circuit(spec, params, coding=coding, target=NP, name="ar_s")
    got = s.relax(x, y, accumulate=True)
    r = build_ar_circuit(spec, params, target=NP, name="ar_r")
    want = r.relax(x, y)
    r.run(x, y, learn=True, apply=False)
    assert _rel(got["x1_state"], want["x1"]) < 0.2
    assert _rel(got["x2"], want["x2"]) < 0.2  # the clamped output gradient, from spikes
    for k, v in named(r.accumulated()).items():
        assert _angle(named(s.accumulated())[k].numpy().ravel(), v.numpy().ravel()) < 20.0, k
    pred = s.predict(x)
    assert _rel(pred, r.predict(x)) < 0.1


# ----------------------------------------------------------------------- Dale's law
@pytest.mark.parametrize("connections", [ErrorConnections.ONE_TO_ONE,
                                         ErrorConnections.LEARNED_PSI],
                         ids=lambda c: c.value)
def test_dale_pathways_keep_their_signs_and_learn_like_the_signed_circuit(
        connections: ErrorConnections) -> None:
    """With learned psi (on the prediction) the prediction pairs' pathway is split too."""
    coding = SpikeCoding(**SMALL, dale=True)
    spec = coding.rate_spec(small_spec(relaxations=Relaxations(
        backward=BackwardPathway.LEARNED, error_connections=connections),
        psi_init=PsiInit.IDENTITY, learning_rate=0.05, batch_size=4))
    params = init_params(spec)
    x, y = batch(8)
    d = build_spiking_pc_circuit(spec, params, coding=coding, target=NP, name="dale")
    for k, v in d.get_params().tensors().items():  # split and recombined exactly
        assert torch.equal(v, params.tensors()[k])
    d.relax(x, y, accumulate=True)
    signed = build_pc_circuit(spec, params, target=NP, name="dale_r")
    signed.run(x, y, learn=True, apply=False)
    for k, v in named(signed.accumulated()).items():
        assert _angle(named(d.accumulated())[k].numpy().ravel(), v.numpy().ravel()) < 25.0, k
    d.run(x, y)  # learn: every excitatory and inhibitory efficacy stays >= 0
    for key, syn in d.pathways.items():
        if "w" in syn.variables:
            assert np.asarray(syn.w[:]).min() >= 0.0, key
            inh = d._inhibitory(key)
            assert inh is not None and np.asarray(inh.w[:]).min() >= 0.0
    assert not all(torch.equal(a, b) for a, b in zip(d.get_params().tensors().values(),
                                                   params.tensors().values()))


def test_dale_refuses_weight_transport() -> None:
    with pytest.raises(CircuitError, match="dale"):
        build_spiking_pc_circuit(small_spec(), coding=SpikeCoding(dale=True), target=NP)
    with pytest.raises(CircuitError, match="dale"):
        build_spiking_pc_circuit(small_spec(relaxations=Relaxations(
            backward=BackwardPathway.LEARNED, error_connections=ErrorConnections.LEARNED_PSI,
            error_to_value=ErrorToValue.PSI_TRANSPOSE, psi_placement=PsiPlacement.VALUE)),
            coding=SpikeCoding(dale=True), target=NP)


# --------------------------------------------------------------------------- learning
def test_the_spiking_circuit_learns_a_small_task() -> None:
    """A few passes over 16 digits-like patterns: the spiking circuit's predictions get
    closer to the targets, as its rate twin's do."""
    coding = SpikeCoding(**SMALL, relax=20e-3, hold=10e-3)
    spec = coding.rate_spec(small_spec(learning_rate=0.05, batch_size=4))
    params = init_params(spec)
    x, y = batch(16, seed=1)
    s = build_spiking_pc_circuit(spec, params, coding=coding, target=NP, name="learn_s")
    before = float(((s.predict(x) - y) ** 2).sum())
    for _ in range(4):
        s.run(x, y)
    after = float(((s.predict(x) - y) ** 2).sum())
    r = build_pc_circuit(spec, params, target=NP, name="learn_r")
    for _ in range(4):
        r.run(x, y)
    rate_after = float(((r.predict(x) - y) ** 2).sum())
    assert after < 0.8 * before
    assert after < rate_after * 1.5


@pytest.mark.slow
def test_spiking_standalone_equals_cython() -> None:
    import tempfile

    from circuits.standalone import run_standalone

    coding = SpikeCoding(**SMALL)
    spec = coding.rate_spec(small_spec(batch_size=2))
    params = init_params(spec)
    x, y = batch(4)
    c = build_spiking_pc_circuit(spec, params, coding=coding, target=Target.CYTHON, name="sa_c")
    c.run(x, y)
    with tempfile.TemporaryDirectory() as d:
        res = run_standalone(spec, params, x, y, directory=d, coding=coding)
    for k, v in c.get_params().tensors().items():
        assert torch.allclose(res.params.tensors()[k], v, rtol=1e-6, atol=1e-9), k
