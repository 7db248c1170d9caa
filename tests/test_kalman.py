"""The Kalman filter against filterpy (an independent, well-kept implementation), the PC filter
against the exact Kalman filter (closed form), every Hebbian rule against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.kalman import (FilterDivergedError, Init, LearnTiming, PCFilter,
                               PCFilterOptions, PriorPrecision, StateSpace, accelerating_body,
                               inference_hessian, kalman_filter, pc_energy, pc_errors,
                               pc_gradient, pc_hebbian, rts_smoother, simulate, stable_rate)

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
    a = PCFilter(model, PCFilterOptions(steps=10, rate=0.02, learn="A", init=Init.PREVIOUS),
                 A=A0.copy())
    b = PCFilter(model, PCFilterOptions(steps=10, rate=0.02, learn="A", init=Init.PREVIOUS,
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
    with pytest.raises(ValueError, match="rate"):
        PCFilterOptions(rate=float("nan"))


# ------------------------------------------------- the default step size and its stability bound
def random_stable_system(seed: int, n: int = 5, m: int = 2, k: int = 5) -> StateSpace:
    """Random stable A (Gaussian, spectral radius drawn from [0.5, 0.99]), random C, random
    positive definite Q and R (their small eigenvalues make lambda_max of C' R^-1 C + Q^-1
    large on some seeds)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    A *= rng.uniform(0.5, 0.99) / max(abs(np.linalg.eigvals(A)))
    Lq, Lr = rng.standard_normal((n, n)), rng.standard_normal((k, k))
    return StateSpace(A, rng.standard_normal((n, m)), rng.standard_normal((k, n)),
                      Lq @ Lq.T + 0.1 * np.eye(n), Lr @ Lr.T + 0.1 * np.eye(k))


def _lambda_max(model: StateSpace) -> float:
    H = inference_hessian(model.C, np.linalg.inv(model.R), np.linalg.inv(model.Q))
    return float(np.linalg.eigvalsh(H)[-1])


def _filterpy_means(model: StateSpace, y: np.ndarray, u: np.ndarray) -> np.ndarray:
    kf = filterpy_kalman.KalmanFilter(dim_x=model.n, dim_z=model.k, dim_u=model.m)
    kf.F, kf.B, kf.H, kf.Q, kf.R = model.A, model.B, model.C, model.Q, model.R
    kf.x, kf.P = np.zeros(model.n), np.eye(model.n)
    out = np.zeros((len(u), model.n))
    for t in range(len(u)):
        kf.predict(u=u[t])
        kf.update(y[t])
        out[t] = kf.x
    return out


def test_default_pc_filter_is_finite_and_within_2x_of_the_kalman_filter() -> None:
    """Ten random 5-d systems, two of them with lambda_max > 40 = 2 / 0.05 (where the old
    default, 5 steps at 0.05, diverged): the default filter (automatic rate 1/lambda_max,
    20 steps from the projection) is finite and its RMSE to the true state is within 2x that
    of the exact Kalman filter (filterpy, an independent implementation)."""
    ratios, stiff = [], 0
    for seed in range(10):
        model = random_stable_system(seed)
        stiff += _lambda_max(model) > 2 / 0.05
        rng = np.random.default_rng(1000 + seed)
        run = simulate(model, rng.standard_normal((300, model.m)), rng=rng)
        pc = PCFilter(model)
        mu = pc.run(run.y, run.u).mu
        assert np.isfinite(mu).all()
        assert pc.rate == pytest.approx(1 / _lambda_max(model), rel=1e-12)
        truth = run.x[1:]
        kf = np.sqrt(((_filterpy_means(model, run.y, run.u) - truth) ** 2).mean())
        ratios.append(float(np.sqrt(((mu - truth) ** 2).mean()) / kf))
    assert stiff >= 2
    assert max(ratios) < 2.0, np.round(ratios, 2)


def test_the_old_default_rate_is_refused_where_it_would_diverge() -> None:
    """Where 0.05 > 2/lambda_max the old default (5 steps at 0.05) blew up to inf/NaN; now
    the filter refuses the rate at construction, naming the field and the bound."""
    model = next(m for m in map(random_stable_system, range(10)) if _lambda_max(m) > 2 / 0.05)
    bound = 2 / _lambda_max(model)
    with pytest.raises(ValueError, match=r"rate: 0\.05 is above the stability bound "
                                         rf"2/lambda_max = {bound:.4g}"):
        PCFilter(model, PCFilterOptions(steps=5, rate=0.05, init=Init.PREVIOUS))
    # what the refused rate does: the inference iteration itself diverges on this model
    H = inference_hessian(model.C, np.linalg.inv(model.R), np.linalg.inv(model.Q))
    assert max(abs(np.linalg.eigvals(np.eye(model.n) - 0.05 * H))) > 1


def test_an_explicit_rate_above_the_bound_is_flagged() -> None:
    model = random_stable_system(3)
    auto, bound = stable_rate(model.C, np.linalg.inv(model.R), np.linalg.inv(model.Q))
    assert bound == pytest.approx(2 * auto)
    PCFilter(model, PCFilterOptions(rate=0.99 * bound))  # below the bound: accepted
    with pytest.raises(ValueError, match="rate: .* above the stability bound 2/lambda_max"):
        PCFilter(model, PCFilterOptions(rate=1.01 * bound))


def test_kalman_precision_recomputes_the_rate_and_flags_a_crossing() -> None:
    """With the Kalman prior precision the Hessian C' Pz C + P_hat^-1 moves every step: the
    automatic rate follows it, and an explicit rate that the moving bound undercuts raises
    FilterDivergedError naming the step (before any non-finite estimate)."""
    model = random_system(0, n=5, k=5)
    rng = np.random.default_rng(0)
    run = simulate(model, rng.standard_normal((30, model.m)), rng=rng)
    kf = kalman_filter(model, run.y, run.u)
    Pz = np.linalg.inv(model.R)
    bounds = []
    for t in range(30):
        P = kf.P[t - 1] if t else np.eye(model.n)
        bounds.append(stable_rate(model.C, Pz, np.linalg.inv(model.A @ P @ model.A.T
                                                             + model.Q))[1])
    pc = PCFilter(model, PCFilterOptions(prior_precision=PriorPrecision.KALMAN))
    for t in range(30):
        pc.step(run.u[t], run.y[t])
        assert pc.bound == pytest.approx(bounds[t], rel=1e-9)
        assert pc.rate == pytest.approx(bounds[t] / 2, rel=1e-9)
    assert np.isfinite(pc.mu).all()
    first = int(np.argmin(bounds))
    assert first > 0 and bounds[first] < bounds[0]  # the bound tightens after the start
    rate = 0.5 * (bounds[0] + bounds[first])
    crossing = next(t for t in range(30) if rate > bounds[t])
    with pytest.raises(FilterDivergedError, match=f"filter step {crossing}") as err:
        PCFilter(model, PCFilterOptions(rate=rate, prior_precision=PriorPrecision.KALMAN)
                 ).run(run.y, run.u)
    assert err.value.step == crossing and err.value.rate == rate
    assert err.value.result is not None and err.value.result.mu.shape == (crossing, model.n)
    assert np.isfinite(err.value.result.mu).all()


def test_a_diverging_estimate_raises_instead_of_returning_nan() -> None:
    """Within the rate bound the filter's own recursion can still blow up (here: unstable
    dynamics the prior trusts); the filter stops with FilterDivergedError at the step where
    the estimate overflows, keeping the finite part, and never returns NaN or inf."""
    n = 2
    model = StateSpace(30 * np.eye(n), np.ones((n, 1)), np.eye(n), 1e-4 * np.eye(n), np.eye(n))
    rng = np.random.default_rng(0)
    y, u = rng.standard_normal((400, n)), np.ones((400, 1))
    pc = PCFilter(model)
    with pytest.raises(FilterDivergedError, match=r"diverged at filter step \d+.*within the "
                                                  "bound") as err:
        pc.run(y, u)
    e = err.value
    assert 0 < e.step < 400 and e.rate <= e.bound
    assert e.result is not None and e.result.mu.shape == (e.step, n)
    assert np.isfinite(e.result.mu).all() and np.isfinite(e.result.energy).all()
    assert np.isfinite(pc.mu).all() and pc.t == e.step


# ------------------------------------------------------------------ the Brian2 Kalman circuit
@pytest.mark.parametrize("case", ["known-previous", "known-projection", "known-default",
                                  "learn-A", "learn-AB", "learn-C"])
def test_kalman_circuit_matches_the_pc_filter(case: str) -> None:
    """Value, memory and error populations with plastic A, B, C synapses reproduce the numpy PC
    filter's trajectory and learned matrices (float64, 1e-9 relative)."""
    from circuits.kalman import build_kalman_circuit

    rng = np.random.default_rng(0)
    model, run = accelerating_body(rng=rng, T=40)
    r = np.random.default_rng(1)
    A0, B0, C0 = r.standard_normal((3, 3)), r.standard_normal((3, 1)), r.standard_normal((3, 3))
    prev = Init.PREVIOUS
    opts, kw = {
        "known-previous": (PCFilterOptions(steps=5, rate=0.05, init=prev), {}),
        "known-projection": (PCFilterOptions(steps=5, rate=0.05, init=Init.PROJECTION), {}),
        "known-default": (PCFilterOptions(), {}),  # automatic rate, resolved at build time
        "learn-A": (PCFilterOptions(steps=10, rate=0.02, learn="A", init=prev), {"A": A0}),
        "learn-AB": (PCFilterOptions(steps=10, rate=0.02, learn="AB", init=prev),
                     {"A": A0, "B": B0}),
        "learn-C": (PCFilterOptions(steps=10, rate=0.01, learn="C", init=prev), {"C": C0}),
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
    with pytest.raises(CircuitError, match="rate: the automatic rate follows the learned C"):
        build_kalman_circuit(model, PCFilterOptions(learn="C"))
    bound = stable_rate(model.C, np.eye(3), np.eye(3))[1]
    with pytest.raises(CircuitError, match="rate: .* above the stability bound"):
        build_kalman_circuit(model, PCFilterOptions(rate=1.01 * bound))
