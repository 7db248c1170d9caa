"""Predictive coding as Kalman filtering (thesis 3.4, appendix A), with Hebbian learning of
the dynamics.

Model (``n`` states, ``m`` controls, ``k`` observations), one step ``t -> t+1``::

    x_{t+1} = A x_t + B u_t + w,   w ~ N(0, Q)
    y_{t+1} = C x_{t+1} + z,       z ~ N(0, R)

The exact :func:`kalman_filter` (projection, gain, ``(I - K C)`` covariance update, spec fix
of Eq. 3.24) and :func:`rts_smoother` are the references. The predictive-coding filter
minimises, at every step, the energy of the current estimate ``mu`` given the previous
estimate ``mu_prev`` (held fixed)::

    eps_z = y - C mu                  sensory error      (local to sensory error neurons)
    eps_x = mu - A mu_prev - B u      dynamics error     (local to dynamics error neurons)
    F(mu) = 1/2 eps_z' Pz eps_z + 1/2 eps_x' Px eps_x
    dmu   = C' Pz eps_z - Px eps_x    (inference: value neurons)
    dA = Px eps_x mu_prev',  dB = Px eps_x u',  dC = Pz eps_z mu'   (Hebbian, Eqs. 3.33-3.35)

With ``Px`` the inverse of the Kalman filter's projected covariance (``PriorPrecision.KALMAN``)
its fixed point is the Kalman mean; with ``Px = Q^-1`` (``PROCESS``, the thesis's filter) it is
a fixed-gain filter. Pure functions first, then the stateful :class:`PCFilter`. Arrays are
numpy float64; every rule is checked against ``torch.autograd`` in ``tests/test_kalman.py``.

Step size. ``F`` is quadratic in ``mu`` with Hessian ``H = C' Pz C + Px``, so the inference
iteration ``mu += rate * dmu`` converges iff ``rate < 2 / lambda_max(H)`` and diverges
otherwise. By default (``PCFilterOptions.rate = None``) the filter takes
``rate = 1 / lambda_max(H)`` of its own current ``C`` and precisions, recomputed at every filter
step where ``H`` can change (``KALMAN`` precision, or while ``C`` learns); an explicit rate above
``2 / lambda_max(H)`` is refused (``ValueError`` at construction, :class:`FilterDivergedError` if a
changed ``H`` crosses it later), and a non-finite estimate raises :class:`FilterDivergedError`
instead of returning NaN or inf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

__all__ = ["FilterDivergedError", "FilterResult", "Init", "LearnTiming", "NonlinearModel", "PCFilter", "PCFilterOptions",
           "PriorPrecision", "StateSpace", "Trajectory", "accelerating_body", "inference_hessian",
           "kalman_filter", "kalman_step", "pc_energy", "pc_errors", "pc_gradient", "pc_hebbian",
           "rts_smoother", "stable_rate",
           "pc_filter_nonlinear", "pendulum", "simulate"]


class PriorPrecision(Enum):
    """Precision of the dynamics error: ``Q^-1`` (thesis) or the Kalman ``Sigma_hat^-1``."""

    PROCESS = "process"
    KALMAN = "kalman"


class Init(Enum):
    """Where the estimate starts each step: the previous estimate or the projection."""

    PREVIOUS = "previous"
    PROJECTION = "projection"


class LearnTiming(Enum):
    """When A, B, C learn: at every inference iteration, from the same errors that move the
    estimate in that iteration (the reference code's timing; what a circuit with always-on
    plasticity does), or once per filter step at the final estimate."""

    EVERY_ITERATION = "every_iteration"
    PER_STEP = "per_step"


def _matrix(a: object, name: str, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    m = np.array(a, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"{name}: must be a 2-d matrix, got shape {m.shape}")
    if rows is not None and m.shape[0] != rows or cols is not None and m.shape[1] != cols:
        want = f"({rows if rows is not None else '*'}, {cols if cols is not None else '*'})"
        raise ValueError(f"{name}: must have shape {want}, got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return m


def _covariance(a: object, name: str, n: int) -> np.ndarray:
    m = _matrix(a, name, n, n)
    if not np.allclose(m, m.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name}: a covariance must be symmetric")
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name}: a covariance must be positive definite") from None
    return m


@dataclass(frozen=True)
class StateSpace:
    """A linear-Gaussian state-space model; shapes and noise covariances are validated.

    Attributes: ``A`` (n x n), ``B`` (n x m), ``C`` (k x n), ``Q`` (n x n) process noise,
    ``R`` (k x k) observation noise.
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    Q: np.ndarray
    R: np.ndarray

    def __post_init__(self) -> None:
        A = _matrix(self.A, "A")
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"A: the dynamics matrix must be square, got shape {A.shape}")
        n = A.shape[0]
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "B", _matrix(self.B, "B", n, None))
        C = _matrix(self.C, "C", None, n)
        object.__setattr__(self, "C", C)
        object.__setattr__(self, "Q", _covariance(self.Q, "Q", n))
        object.__setattr__(self, "R", _covariance(self.R, "R", C.shape[0]))

    @property
    def n(self) -> int:
        return int(self.A.shape[0])

    @property
    def m(self) -> int:
        return int(self.B.shape[1])

    @property
    def k(self) -> int:
        return int(self.C.shape[0])


@dataclass
class Trajectory:
    """A simulated run: states ``x`` (T+1 x n, ``x[0]`` the start), controls ``u``
    (T x m, ``u[t]`` drives ``x[t] -> x[t+1]``) and observations ``y`` (T x k, ``y[t]`` of
    ``x[t+1]``)."""

    x: np.ndarray
    u: np.ndarray
    y: np.ndarray


def _controls(model: StateSpace, u: np.ndarray) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if u.ndim == 1 and model.m == 1:
        u = u[:, None]
    if u.ndim != 2 or u.shape[1] != model.m:
        raise ValueError(f"u: controls must have shape (T, {model.m}), got {u.shape}")
    return u


def simulate(model: StateSpace, u: np.ndarray, x0: np.ndarray | None = None, *,
             rng: np.random.Generator) -> Trajectory:
    """Draw a trajectory of ``len(u)`` steps with process and observation noise from ``rng``."""
    u = _controls(model, u)
    T, n = len(u), model.n
    x = np.zeros((T + 1, n))
    x[0] = np.zeros(n) if x0 is None else np.asarray(x0, dtype=np.float64)
    Lq, Lr = np.linalg.cholesky(model.Q), np.linalg.cholesky(model.R)
    y = np.zeros((T, model.k))
    for t in range(T):
        x[t + 1] = model.A @ x[t] + model.B @ u[t] + Lq @ rng.standard_normal(n)
        y[t] = model.C @ x[t + 1] + Lr @ rng.standard_normal(model.k)
    return Trajectory(x, u, y)


def accelerating_body(*, dt: float = 1e-3, T: int = 2000, process_std: float = 0.1,
                      observation_std: float = 1.0, decay: float = 0.01,
                      assumed_variance: float = 1.0,
                      rng: np.random.Generator) -> tuple[StateSpace, Trajectory]:
    """The thesis's tracking task (spec 4.5): position, velocity, acceleration driven by an
    exponentially decaying control into the acceleration, observed through a random
    ``C ~ N(0, 1)``, simulated with the given noise stds.

    Returns the model the *filters* use (true ``A, B, C``; ``Q = R = assumed_variance * I``,
    the thesis's "constant diagonal", so both filters are mis-specified the same way) and the
    simulated run."""
    A = np.array([[1.0, dt, 0.5 * dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    B = np.array([[0.0], [0.0], [1.0]])
    C = rng.standard_normal((3, 3))
    truth = StateSpace(A, B, C, process_std**2 * np.eye(3), observation_std**2 * np.eye(3))
    u = np.exp(-decay * np.arange(T))[:, None]
    run = simulate(truth, u, rng=rng)
    assumed = StateSpace(A, B, C, assumed_variance * np.eye(3), assumed_variance * np.eye(3))
    return assumed, run


# ---------------------------------------------------------------------------- Kalman filter
def kalman_step(model: StateSpace, mu: np.ndarray, P: np.ndarray, u: np.ndarray,
                y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One projection + correction; returns ``(mu, P, mu_hat, P_hat)`` (posterior, prior)."""
    mu_hat = model.A @ mu + model.B @ u
    P_hat = model.A @ P @ model.A.T + model.Q
    S = model.C @ P_hat @ model.C.T + model.R
    K = np.linalg.solve(S, model.C @ P_hat).T  # P_hat C' S^-1 (S, P_hat symmetric)
    mu_new = mu_hat + K @ (y - model.C @ mu_hat)
    P_new = (np.eye(model.n) - K @ model.C) @ P_hat
    return mu_new, P_new, mu_hat, P_hat


@dataclass
class FilterResult:
    """Estimates ``mu`` (T x n, ``mu[t]`` of ``x[t+1]``) and covariances ``P`` (T x n x n)
    where the filter has them; for the PC filter also the per-step energy at the end of
    inference and the learned matrices' history when learning."""

    mu: np.ndarray
    P: np.ndarray | None = None
    energy: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def kalman_filter(model: StateSpace, y: np.ndarray, u: np.ndarray,
                  mu0: np.ndarray | None = None, P0: np.ndarray | None = None) -> FilterResult:
    """The exact filter over a whole run (``mu0`` = 0 and ``P0`` = I by default)."""
    u = _controls(model, u)
    y = _matrix(y, "y", len(u), model.k)
    mu = np.zeros(model.n) if mu0 is None else np.asarray(mu0, dtype=np.float64)
    P = np.eye(model.n) if P0 is None else _covariance(P0, "P0", model.n)
    mus, Ps = np.zeros((len(u), model.n)), np.zeros((len(u), model.n, model.n))
    for t in range(len(u)):
        mu, P, _, _ = kalman_step(model, mu, P, u[t], y[t])
        mus[t], Ps[t] = mu, P
    return FilterResult(mus, Ps)


def rts_smoother(model: StateSpace, filtered: FilterResult, u: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rauch-Tung-Striebel smoothing of a :func:`kalman_filter` result: ``(mu, P)``."""
    u = _controls(model, u)
    assert filtered.P is not None
    mu, P = filtered.mu.copy(), filtered.P.copy()
    for t in range(len(mu) - 2, -1, -1):
        P_hat = model.A @ filtered.P[t] @ model.A.T + model.Q
        G = np.linalg.solve(P_hat, model.A @ filtered.P[t]).T  # P_t A' P_hat^-1
        mu[t] = filtered.mu[t] + G @ (mu[t + 1] - (model.A @ filtered.mu[t] + model.B @ u[t + 1]))
        P[t] = filtered.P[t] + G @ (P[t + 1] - P_hat) @ G.T
    return mu, P


# ------------------------------------------------------------------- the predictive-coding filter
def pc_errors(mu: np.ndarray, mu_prev: np.ndarray, u: np.ndarray, y: np.ndarray,
              A: np.ndarray, B: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(eps_z, eps_x)``: sensory ``y - C mu`` and dynamics ``mu - A mu_prev - B u``."""
    return y - C @ mu, mu - A @ mu_prev - B @ u


def pc_energy(mu: np.ndarray, mu_prev: np.ndarray, u: np.ndarray, y: np.ndarray,
              A: np.ndarray, B: np.ndarray, C: np.ndarray, Pz: np.ndarray, Px: np.ndarray
              ) -> float:
    """``F = 1/2 eps_z' Pz eps_z + 1/2 eps_x' Px eps_x``."""
    ez, ex = pc_errors(mu, mu_prev, u, y, A, B, C)
    return float(0.5 * ez @ Pz @ ez + 0.5 * ex @ Px @ ex)


def pc_gradient(ez: np.ndarray, ex: np.ndarray, C: np.ndarray, Pz: np.ndarray,
                Px: np.ndarray) -> np.ndarray:
    """``-dF/dmu = C' Pz eps_z - Px eps_x``: what the value neurons integrate."""
    return C.T @ (Pz @ ez) - Px @ ex


def pc_hebbian(ez: np.ndarray, ex: np.ndarray, mu: np.ndarray, mu_prev: np.ndarray,
               u: np.ndarray, Pz: np.ndarray, Px: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dA, dB, dC) = (Px ex mu_prev', Px ex u', Pz ez mu')``: each ``-dF/dtheta``, a
    product of a postsynaptic (precision-weighted) error and a presynaptic activity."""
    px = Px @ ex
    return np.outer(px, mu_prev), np.outer(px, u), np.outer(Pz @ ez, mu)


def inference_hessian(C: np.ndarray, Pz: np.ndarray, Px: np.ndarray) -> np.ndarray:
    """``H = C' Pz C + Px``: the Hessian of the energy in ``mu``, which inference descends."""
    return C.T @ Pz @ C + Px


def stable_rate(C: np.ndarray, Pz: np.ndarray, Px: np.ndarray) -> tuple[float, float]:
    """``(1 / lambda_max(H), 2 / lambda_max(H))`` for ``H`` = :func:`inference_hessian`: the
    automatic rate (the stiffest direction settles in one iteration) and the stability bound
    (inference diverges at any rate above it)."""
    H = inference_hessian(C, Pz, Px)
    lam = float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    return 1.0 / lam, 2.0 / lam


class FilterDivergedError(ValueError):
    """The PC filter's estimate left the finite numbers, or its explicit ``rate`` crossed the
    stability bound ``2 / lambda_max(C' Pz C + Px)``, at filter step ``step`` (0-based).

    Attributes: ``step``, ``rate`` (used at that step), ``bound`` (``2 / lambda_max`` then) and,
    when raised from :meth:`PCFilter.run`, ``result``: the :class:`FilterResult` of the steps
    before ``step`` (all finite)."""

    def __init__(self, message: str, *, step: int, rate: float, bound: float) -> None:
        super().__init__(message)
        self.step, self.rate, self.bound = step, rate, bound
        self.result: FilterResult | None = None


@dataclass(frozen=True)
class PCFilterOptions:
    """Inference ``steps`` at ``rate``; prior precision mode; initialisation; which matrices
    learn (``learn``: subset of ``"ABC"``) with ``learning_rates`` and ``timing``.

    ``rate=None`` (the default) is automatic: ``1 / lambda_max`` of the filter's own inference
    Hessian ``C' Pz C + Px`` (:func:`stable_rate`), recomputed where that Hessian changes; an
    explicit rate must stay below the bound ``2 / lambda_max`` (checked by :class:`PCFilter`).
    The defaults (automatic rate, 20 steps from the projection ``A mu + B u``) keep the filter
    finite on any model; the thesis's Fig 3.11 setting is ``steps=5, rate=0.05,
    init=Init.PROJECTION``, passed explicitly by ``demos/kalman.py``."""

    steps: int = 20
    rate: float | None = None
    prior_precision: PriorPrecision = PriorPrecision.PROCESS
    init: Init = Init.PROJECTION
    learn: str = ""
    learning_rates: dict[str, float] = field(default_factory=lambda: {"A": 1e-5, "B": 1e-4,
                                                                      "C": 2e-5})
    timing: LearnTiming = LearnTiming.EVERY_ITERATION

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps: must be a non-negative int, got {self.steps!r}")
        if self.rate is not None and not (isinstance(self.rate, (int, float))
                                          and np.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate: must be positive and finite (or None: automatic), got "
                             f"{self.rate!r}")
        if set(self.learn) - set("ABC"):
            raise ValueError(f"learn: letters of 'ABC', got {self.learn!r}")
        for name, enum in (("prior_precision", PriorPrecision), ("init", Init),
                           ("timing", LearnTiming)):
            if not isinstance(getattr(self, name), enum):
                raise ValueError(f"{name}: must be a {enum.__name__}, got "
                                 f"{getattr(self, name)!r}")


class PCFilter:
    """Stateful PC filter: the estimate, its own copies of ``A, B, C`` (which may learn), and,
    in ``KALMAN`` precision mode, the Kalman covariance recursion that sets ``Px``.

    ``model`` supplies the noise covariances (``Pz = R^-1``, ``Px = Q^-1`` in ``PROCESS``
    mode) and, unless given, the matrices the filter starts from. ``rate`` and ``bound`` are the
    inference rate in use and its stability bound ``2 / lambda_max(C' Pz C + Px)``, as of the
    last filter step (at construction: of the first). Raises ``ValueError`` when an explicit
    ``options.rate`` is above that bound for the first step.
    """

    def __init__(self, model: StateSpace, options: PCFilterOptions | None = None, *,
                 A: np.ndarray | None = None, B: np.ndarray | None = None,
                 C: np.ndarray | None = None, mu0: np.ndarray | None = None) -> None:
        self.model = model
        self.options = options or PCFilterOptions()
        n = model.n
        self.A = model.A.copy() if A is None else _matrix(A, "A", n, n).copy()
        self.B = model.B.copy() if B is None else _matrix(B, "B", n, model.m).copy()
        self.C = model.C.copy() if C is None else _matrix(C, "C", model.k, n).copy()
        self.mu = np.zeros(n) if mu0 is None else np.asarray(mu0, dtype=np.float64).copy()
        self.P = np.eye(n)
        self.Pz = np.linalg.inv(model.R)
        self.Px = np.linalg.inv(model.Q)
        self.t = 0  # filter steps taken
        # the Hessian C' Pz C + Px changes with the Kalman precision or a learning C
        self._hessian_moves = (self.options.prior_precision is PriorPrecision.KALMAN
                               or "C" in self.options.learn)
        self.rate, self.bound = self._rate(self._prior_precision())
        o = self.options
        if o.rate is not None and o.rate > self.bound:
            raise ValueError(
                f"rate: {o.rate!r} is above the stability bound 2/lambda_max = {self.bound:.4g} "
                f"of the inference Hessian C' Pz C + Px (lambda_max = {2 / self.bound:.4g}); "
                f"inference would diverge. Use rate=None (automatic, 1/lambda_max = "
                f"{self.bound / 2:.4g}) or a rate below the bound")

    def _prior_precision(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(Px, P_hat)`` for the next step (``P_hat`` only in ``KALMAN`` mode)."""
        if self.options.prior_precision is PriorPrecision.KALMAN:
            P_hat = self.A @ self.P @ self.A.T + self.model.Q
            return np.linalg.inv(P_hat), P_hat
        return self.Px, None

    def _rate(self, prior: tuple[np.ndarray, np.ndarray | None]) -> tuple[float, float]:
        """``(rate, bound)``: the rate to use (automatic or explicit) and ``2/lambda_max``."""
        auto, bound = stable_rate(self.C, self.Pz, prior[0])
        return (auto if self.options.rate is None else self.options.rate), bound

    def step(self, u: np.ndarray, y: np.ndarray, mu_prev: np.ndarray | None = None) -> float:
        """Filter one observation ``y`` (control ``u`` drove the state to it); returns the
        energy after inference. ``mu_prev`` overrides the previous estimate (teacher forcing)."""
        o = self.options
        u = np.atleast_1d(np.asarray(u, dtype=np.float64))
        prev = self.mu if mu_prev is None else np.asarray(mu_prev, dtype=np.float64)
        prior = self._prior_precision()
        Px, P_hat = prior
        if self._hessian_moves and self.t > 0:
            self.rate, self.bound = self._rate(prior)
        rate = self.rate
        if rate > self.bound:
            raise FilterDivergedError(
                f"rate: {rate!r} is above the stability bound 2/lambda_max = {self.bound:.4g} "
                f"of the inference Hessian C' Pz C + Px at filter step {self.t} (it changed "
                f"with {'the Kalman precision' if P_hat is not None else 'the learned C'}); "
                f"inference would diverge. Use rate=None (automatic) or a smaller rate",
                step=self.t, rate=rate, bound=self.bound)
        mu = prev.copy() if o.init is Init.PREVIOUS else self.A @ prev + self.B @ u
        rates = o.learning_rates
        saved = (self.A.copy(), self.B.copy(), self.C.copy()) if o.learn else None
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(o.steps):
                ez, ex = pc_errors(mu, prev, u, y, self.A, self.B, self.C)
                grad = pc_gradient(ez, ex, self.C, self.Pz, Px)
                if o.learn and o.timing is LearnTiming.EVERY_ITERATION:
                    # the same errors drive the value neurons and the synapses in this iteration
                    self._learn(mu, prev, u, y, Px, rates)
                mu = mu + rate * grad
            if o.learn and o.timing is LearnTiming.PER_STEP:
                self._learn(mu, prev, u, y, Px, rates)
            energy = pc_energy(mu, prev, u, y, self.A, self.B, self.C, self.Pz, Px)
        finite = (np.isfinite(mu).all() and np.isfinite(energy)
                  and all(np.isfinite(getattr(self, k)).all() for k in o.learn))
        if not finite:
            if saved is not None:  # leave the filter as it was before this step
                self.A, self.B, self.C = saved
            raise FilterDivergedError(
                f"PC filter diverged at filter step {self.t}: the estimate"
                f"{' or the learned ' + o.learn if o.learn else ''} is no longer finite "
                f"(rate {rate:.4g}, stability bound 2/lambda_max = {self.bound:.4g}). "
                + ("The rate is within the bound, so the filter's own recursion blew up: "
                   "unstable or mis-learned dynamics, or a fixed-gain (PROCESS) filter that is "
                   "unstable for this model" if rate <= self.bound else ""),
                step=self.t, rate=rate, bound=self.bound)
        if P_hat is not None:
            S = self.C @ P_hat @ self.C.T + self.model.R
            K = np.linalg.solve(S, self.C @ P_hat).T
            self.P = (np.eye(self.model.n) - K @ self.C) @ P_hat
        self.mu = mu
        self.t += 1
        return energy

    def _learn(self, mu: np.ndarray, prev: np.ndarray, u: np.ndarray, y: np.ndarray,
               Px: np.ndarray, rates: dict[str, float]) -> None:
        ez, ex = pc_errors(mu, prev, u, y, self.A, self.B, self.C)
        dA, dB, dC = pc_hebbian(ez, ex, mu, prev, u, self.Pz, Px)
        for name, d in (("A", dA), ("B", dB), ("C", dC)):
            if name in self.options.learn:
                getattr(self, name).__iadd__(rates[name] * d)

    def run(self, y: np.ndarray, u: np.ndarray) -> FilterResult:
        """Filter a whole run; records estimates, energies and (when learning) the
        learned matrices after every step. A :class:`FilterDivergedError` carries the
        result of the steps before the divergence in ``result``."""
        u = _controls(self.model, u)
        y = _matrix(y, "y", len(u), self.model.k)
        mus, energies = np.zeros((len(u), self.model.n)), np.zeros(len(u))
        hist: dict[str, list[np.ndarray]] = {k: [] for k in self.options.learn}
        for t in range(len(u)):
            try:
                energies[t] = self.step(u[t], y[t])
            except FilterDivergedError as e:
                e.result = FilterResult(mus[:t].copy(), None, energies[:t].copy(),
                                        {k: np.array(v).reshape(t, *getattr(self, k).shape)
                                         for k, v in hist.items()})
                raise
            mus[t] = self.mu
            for k in hist:
                hist[k].append(getattr(self, k).copy())
        return FilterResult(mus, None, energies, {k: np.array(v) for k, v in hist.items()})


# --------------------------------------------------------------- beyond the thesis: nonlinear
@dataclass(frozen=True)
class NonlinearModel:
    """``x' = f(x) + w``, ``y = h(x) + z`` with Jacobians ``F(x)``, ``H(x)``; ``w ~ N(0, Q)``,
    ``z ~ N(0, R)``. Functions take and return 1-d numpy arrays."""

    f: object
    F: object
    h: object
    H: object
    Q: np.ndarray
    R: np.ndarray


def pendulum(*, dt: float = 0.05, g: float = 9.81, q_std: tuple[float, float] = (0.01, 0.1),
             r_std: float = 0.1, T: int = 400, x0: tuple[float, float] = (1.5, 0.0),
             rng: np.random.Generator) -> tuple[NonlinearModel, np.ndarray, np.ndarray]:
    """A pendulum observed through the sine of its angle (after Sarkka's Example 5.1, with a
    diagonal process noise): ``theta' = theta + omega dt``, ``omega' = omega - g sin(theta) dt``,
    ``y = sin(theta)``. Returns the model, the true states (T x 2) and observations (T x 1)."""
    def f(x: np.ndarray) -> np.ndarray:
        return np.array([x[0] + x[1] * dt, x[1] - g * np.sin(x[0]) * dt])

    def F(x: np.ndarray) -> np.ndarray:
        return np.array([[1.0, dt], [-g * np.cos(x[0]) * dt, 1.0]])

    def h(x: np.ndarray) -> np.ndarray:
        return np.array([np.sin(x[0])])

    def H(x: np.ndarray) -> np.ndarray:
        return np.array([[np.cos(x[0]), 0.0]])

    Q = np.diag(np.square(q_std))
    R = np.array([[r_std**2]])
    x = np.zeros((T, 2))
    y = np.zeros((T, 1))
    prev = np.array(x0, dtype=np.float64)
    for t in range(T):
        prev = f(prev) + np.sqrt(np.diag(Q)) * rng.standard_normal(2)
        x[t] = prev
        y[t] = h(prev) + r_std * rng.standard_normal(1)
    return NonlinearModel(f, F, h, H, Q, R), x, y


def pc_filter_nonlinear(model: NonlinearModel, y: np.ndarray, mu0: np.ndarray, *, steps: int,
                        rate: float, precondition: bool = True) -> np.ndarray:
    """The PC filter on a nonlinear model: per step, start at ``f(mu_t)`` and descend
    ``F = 1/2 |y - h(mu)|^2_{R^-1} + 1/2 |mu - f(mu_t)|^2_{Q^-1}`` for ``steps`` steps:
    ``dmu = rate * T (H(mu)' R^-1 eps_z - Q^-1 eps_x)``. With ``precondition`` each value
    neuron integrates with its own time constant ``T = diag(Q)`` (its prior variance), which
    removes the stiffness of a small process noise; without it ``T = I`` (the thesis's form)."""
    Pz, Px = np.linalg.inv(model.R), np.linalg.inv(model.Q)
    tau = np.diag(model.Q).copy() if precondition else np.ones(len(mu0))
    mu = np.asarray(mu0, dtype=np.float64).copy()
    out = np.zeros((len(y), len(mu)))
    for t in range(len(y)):
        prior = model.f(mu)  # type: ignore[operator]
        m = prior.copy()
        for _ in range(steps):
            ez = y[t] - model.h(m)  # type: ignore[operator]
            ex = m - prior
            m = m + rate * tau * (model.H(m).T @ (Pz @ ez) - Px @ ex)  # type: ignore[operator]
        mu = m
        out[t] = mu
    return out
