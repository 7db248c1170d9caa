"""The Kalman filter against filterpy (an independent, well-kept implementation), the PC filter
against the exact Kalman filter (closed form), every Hebbian rule against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.kalman import (Init, LearnTiming, PCFilter, PCFilterOptions, PriorPrecision,
                               StateSpace, accelerating_body, kalman_filter, pc_energy,
                               pc_errors, pc_gradient, pc_hebbian, rts_smoother, simulate)

filterpy_kalman = pytest.importorskip("filterpy.kalman")


def random_system(seed: int, n: int = 4, m: int = 2, k: int = 3) -> StateSpace:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    A *= 0.95 / max(abs(np.linalg.eigvals(A)))
    Lq, Lr = rng.standard_normal((n, n)), rng.standard_normal((k, k))
    return StateSpace(A, rng.standard_normal((n, m)), rng.standard_normal((k, n)),
                      Lq @ Lq.T + 0.1 * np.eye(n), Lr @ Lr.T + 0.1 * np.eye(k))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kalman_filter_matches_filterpy(seed: int) -> None:
    model = random_system(seed)
    rng = np.random.default_rng(100 + seed)
    run = simulate(model, rng.standard_normal((60, model.m)), rng=rng)
    mine = kalman_filter(model, run.y, run.u, mu0=np.ones(model.n), P0=2 * np.eye(model.n))
    kf = filterpy_kalman.KalmanFilter(dim_x=model.n, dim_z=model.k, dim_u=model.m)
    kf.F, kf.B, kf.H, kf.Q, kf.R = model.A, model.B, model.C, model.Q, model.R
    kf.x, kf.P = np.ones(model.n), 2 * np.eye(model.n)
    for t in range(len(run.u)):
        kf.predict(u=run.u[t])
        kf.update(run.y[t])
        np.testing.assert_allclose(mine.mu[t], kf.x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(mine.P[t], kf.P, rtol=1e-9, atol=1e-9)


def test_rts_smoother_matches_filterpy() -> None:
    model = random_system(3)
    rng = np.random.default_rng(7)
    u = np.zeros((50, model.m))  # filterpy's smoother has no control input
    run = simulate(model, u, rng=rng)
    filt = kalman_filter(model, run.y, u)
    mu, P = rts_smoother(model, filt, u)
    kf = filterpy_kalman.KalmanFilter(dim_x=model.n, dim_z=model.k)
    kf.F, kf.Q = model.A, model.Q
    ref_mu, ref_P, _, _ = kf.rts_smoother(filt.mu, filt.P)
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(P, ref_P, rtol=1e-9, atol=1e-9)
    # smoothing never increases the variance
    assert (np.trace(P, axis1=1, axis2=2) <= np.trace(filt.P, axis1=1, axis2=2) + 1e-12).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_pc_filter_in_kalman_precision_mode_is_the_kalman_filter(seed: int) -> None:
    """Teacher-forced (same previous estimate as the KF) and converged, the PC filter's mean
    equals the KF mean to 1e-6 and its energy's inverse Hessian equals the KF covariance."""
    model = random_system(seed)
    rng = np.random.default_rng(seed)
    run = simulate(model, rng.standard_normal((30, model.m)), rng=rng)
    kf = kalman_filter(model, run.y, run.u)
    # rate below 2 / lambda_max of the worst Hessian; enough steps for 1e-10 convergence
    pc = PCFilter(model, PCFilterOptions(steps=20000, rate=0.02,
                                         prior_precision=PriorPrecision.KALMAN))
    prev = np.zeros(model.n)
    for t in range(len(run.u)):
        pc.step(run.u[t], run.y[t], mu_prev=prev)
        np.testing.assert_allclose(pc.mu, kf.mu[t], rtol=1e-6, atol=1e-6)
        hessian = model.C.T @ pc.Pz @ model.C + np.linalg.inv(
            model.A @ (kf.P[t - 1] if t else np.eye(model.n)) @ model.A.T + model.Q)
        np.testing.assert_allclose(np.linalg.inv(hessian), kf.P[t], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(pc.P, kf.P[t], rtol=1e-8, atol=1e-10)
        prev = kf.mu[t]


def test_pc_filter_in_process_mode_is_a_fixed_gain_filter() -> None:
    """With ``Px = Q^-1`` the converged estimate is the closed-form MAP of that energy."""
    model = random_system(5)
    rng = np.random.default_rng(5)
    run = simulate(model, rng.standard_normal((5, model.m)), rng=rng)
    pc = PCFilter(model, PCFilterOptions(steps=20000, rate=0.02))
    Pz, Px = np.linalg.inv(model.R), np.linalg.inv(model.Q)
    prev = np.zeros(model.n)
    for t in range(5):
        pc.step(run.u[t], run.y[t])
        H = model.C.T @ Pz @ model.C + Px
        want = np.linalg.solve(H, model.C.T @ Pz @ run.y[t]
                               + Px @ (model.A @ prev + model.B @ run.u[t]))
        np.testing.assert_allclose(pc.mu, want, rtol=1e-7, atol=1e-9)
        prev = want


def test_every_pc_filter_rule_is_minus_the_autograd_gradient() -> None:
    rng = np.random.default_rng(0)
    n, m, k = 3, 2, 4
    mu, prev, u, y = (rng.standard_normal(s) for s in (n, n, m, k))
    A, B, C = rng.standard_normal((n, n)), rng.standard_normal((n, m)), rng.standard_normal((k, n))
    Lz, Lx = rng.standard_normal((k, k)), rng.standard_normal((n, n))
    Pz, Px = Lz @ Lz.T + np.eye(k), Lx @ Lx.T + np.eye(n)
    t = {name: torch.tensor(v, requires_grad=True)
         for name, v in dict(mu=mu, A=A, B=B, C=C).items()}
    ez = torch.tensor(y) - t["C"] @ t["mu"]
    ex = t["mu"] - t["A"] @ torch.tensor(prev) - t["B"] @ torch.tensor(u)
    F = 0.5 * ez @ torch.tensor(Pz) @ ez + 0.5 * ex @ torch.tensor(Px) @ ex
    F.backward()
    assert float(F.detach()) == pytest.approx(pc_energy(mu, prev, u, y, A, B, C, Pz, Px), rel=1e-12)
    e_z, e_x = pc_errors(mu, prev, u, y, A, B, C)
    np.testing.assert_allclose(pc_gradient(e_z, e_x, C, Pz, Px), -t["mu"].grad.numpy(),
                               rtol=1e-12, atol=1e-12)
    dA, dB, dC = pc_hebbian(e_z, e_x, mu, prev, u, Pz, Px)
    for name, d in (("A", dA), ("B", dB), ("C", dC)):
        np.testing.assert_allclose(d, -t[name].grad.numpy(), rtol=1e-12, atol=1e-12)


def _last_rmse(est: np.ndarray, truth: np.ndarray, last: int = 200) -> float:
    return float(np.sqrt(((est[-last:] - truth[-last:]) ** 2).mean()))


def test_learning_A_beats_no_learning_by_5x() -> None:
    """Thesis Fig 3.14 (row 1), seeded: from the same random A, online Hebbian learning of A
    tracks the accelerating body at least 5x better over the last 200 steps than no learning."""
    rng = np.random.default_rng(0)
    model, run = accelerating_body(rng=rng, T=1000)
    A0 = np.random.default_rng(1).standard_normal((3, 3))
    opts = dict(steps=50, rate=0.02, init=Init.PREVIOUS)
    learned = PCFilter(model, PCFilterOptions(learn="A", **opts), A=A0).run(run.y, run.u)
    with np.errstate(over="ignore", invalid="ignore"):  # without learning it blows up
        fixed = PCFilter(model, PCFilterOptions(**opts), A=A0).run(run.y, run.u)
    r_learn, r_fixed = _last_rmse(learned.mu, run.x[1:]), _last_rmse(fixed.mu, run.x[1:])
    assert np.isfinite(r_learn)
    assert r_learn * 5 <= r_fixed
    assert learned.extra["A"].shape == (1000, 3, 3)


def test_learning_timing_per_step_and_every_iteration_differ_but_both_learn() -> None:
    rng = np.random.default_rng(2)
    model, run = accelerating_body(rng=rng, T=200)
    A0 = np.random.default_rng(3).standard_normal((3, 3))
    a = PCFilter(model, PCFilterOptions(steps=10, rate=0.02, learn="A"), A=A0.copy())
    b = PCFilter(model, PCFilterOptions(steps=10, rate=0.02, learn="A",
                                        timing=LearnTiming.PER_STEP,
                                        learning_rates={"A": 1e-4, "B": 0, "C": 0}),
                 A=A0.copy())
    a.run(run.y, run.u)
    b.run(run.y, run.u)
    assert not np.allclose(a.A, A0) and not np.allclose(b.A, A0) and not np.allclose(a.A, b.A)


def test_bad_input_gives_clear_errors() -> None:
    I3 = np.eye(3)
    with pytest.raises(ValueError, match="A: the dynamics matrix must be square"):
        StateSpace(np.ones((3, 2)), np.ones((3, 1)), I3, I3, I3)
    with pytest.raises(ValueError, match=r"B: must have shape \(3, \*\)"):
        StateSpace(I3, np.ones((2, 1)), I3, I3, I3)
    with pytest.raises(ValueError, match=r"C: must have shape \(\*, 3\)"):
        StateSpace(I3, np.ones((3, 1)), np.ones((3, 2)), I3, I3)
    with pytest.raises(ValueError, match="Q: a covariance must be positive definite"):
        StateSpace(I3, np.ones((3, 1)), I3, -I3, I3)
    with pytest.raises(ValueError, match="R: a covariance must be symmetric"):
        StateSpace(I3, np.ones((3, 1)), I3, I3, np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="NaN"):
        StateSpace(I3 * np.nan, np.ones((3, 1)), I3, I3, I3)
    model = StateSpace(I3, np.ones((3, 1)), I3, I3, I3)
    with pytest.raises(ValueError, match=r"u: controls must have shape \(T, 1\)"):
        kalman_filter(model, np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"y: must have shape \(4, 3\)"):
        kalman_filter(model, np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="learn"):
        PCFilterOptions(learn="AD")
    with pytest.raises(ValueError, match="rate"):
        PCFilterOptions(rate=0.0)


# ------------------------------------------------------------------ the Brian2 Kalman circuit
@pytest.mark.parametrize("case", ["known-previous", "known-projection", "learn-A", "learn-AB",
                                  "learn-C"])
def test_kalman_circuit_matches_the_pc_filter(case: str) -> None:
    """Value, memory and error populations with plastic A, B, C synapses reproduce the numpy PC
    filter's trajectory and learned matrices (float64, 1e-9 relative)."""
    from circuits.kalman import build_kalman_circuit

    rng = np.random.default_rng(0)
    model, run = accelerating_body(rng=rng, T=40)
    r = np.random.default_rng(1)
    A0, B0, C0 = r.standard_normal((3, 3)), r.standard_normal((3, 1)), r.standard_normal((3, 3))
    opts, kw = {
        "known-previous": (PCFilterOptions(steps=5, rate=0.05), {}),
        "known-projection": (PCFilterOptions(steps=5, rate=0.05, init=Init.PROJECTION), {}),
        "learn-A": (PCFilterOptions(steps=10, rate=0.02, learn="A"), {"A": A0}),
        "learn-AB": (PCFilterOptions(steps=10, rate=0.02, learn="AB"), {"A": A0, "B": B0}),
        "learn-C": (PCFilterOptions(steps=10, rate=0.01, learn="C"), {"C": C0}),
    }[case]
    ref = PCFilter(model, opts, **kw)
    want = ref.run(run.y, run.u)
    circuit = build_kalman_circuit(model, opts, **kw)
    got = circuit.run(run.y, run.u)
    scale = float(np.abs(want.mu).max())
    np.testing.assert_allclose(got.mu, want.mu, rtol=0, atol=1e-9 * scale)
    for name in "ABC":
        np.testing.assert_allclose(circuit.matrix(name), getattr(ref, name), rtol=0, atol=1e-12)
    if opts.learn:
        assert not np.allclose(getattr(ref, opts.learn[0]), kw[opts.learn[0]])


def test_kalman_circuit_rejects_what_is_not_local() -> None:
    from circuits.drive import CircuitError
    from circuits.kalman import build_kalman_circuit

    model, _ = accelerating_body(rng=np.random.default_rng(0), T=10)
    with pytest.raises(CircuitError, match="prior_precision"):
        build_kalman_circuit(model, PCFilterOptions(prior_precision=PriorPrecision.KALMAN))
    with pytest.raises(CircuitError, match="diagonal"):
        Q = np.eye(3) + 0.1 * (np.ones((3, 3)) - np.eye(3))
        build_kalman_circuit(StateSpace(model.A, model.B, model.C, Q, model.R))
    with pytest.raises(CircuitError, match="timing"):
        build_kalman_circuit(model, PCFilterOptions(learn="A", timing=LearnTiming.PER_STEP))
