"""Dynamical predictive coding in generalised coordinates: the "full construct" lattice of
hierarchical levels x dynamical orders (thesis 3.3.1, spec ch3 sections 3.2-3.6, with its
fixes).

Nodes ``mu[i][n]`` (level ``i = 0..I``, order ``n = 0..N-1``; level 0 is the clamped sensory
level, ``d_i`` wide). Each node is predicted by the next-higher order at its level (weights
``Phi[i][n+1]``, free levels only) and by the same order one level up (``Theta[i+1][n]``)::

    mu_hat[i][n] = f(Phi[i][n+1] mu[i][n+1]) + g(Theta[i+1][n] mu[i+1][n])   (terms that exist)
    eps[i][n]    = mu[i][n] - mu_hat[i][n]
    F            = 1/2 sum_{i,n} pi[i][n] |eps[i][n]|^2     (sensory: observed orders only)
    dmu[i][n]    = -pi eps[i][n]
                   + Phi[i][n]'   (f'(Phi[i][n] mu[i][n])   * pi eps[i][n-1])     (n >= 1)
                   + Theta[i][n]' (g'(Theta[i][n] mu[i][n]) * pi eps[i-1][n])     (i >= 1)
                   [+ mu[i][n+1], the shift operator D, when ``d_term``]
    dPhi[i][n]   = (f'(.) * pi eps[i][n-1]) mu[i][n]',   dTheta[i][n] = (g'(.) * pi eps[i-1][n]) mu[i][n]'

Options of spec 3.5: ``split_errors`` (two errors, each with its own precision, at a node
reached by both predictions), ``tie_orders`` (one ``Phi_i`` and one ``Theta_i`` for every
order, as local linearisation implies) and ``direction`` (which order predicts which, A-8);
see :class:`LatticeSpec` and :class:`DynamicsDirection`. The formulas above are the default
direction.

Pure numpy functions (:func:`predictions`, :func:`node_errors`, :func:`free_energy`,
:func:`inference_direction`, :func:`weight_directions`) and the online protocol of spec 3.6 in
:class:`DynamicalPC` (predict by the shift operator, correct by inference, learn). Every rule
is checked against ``torch.autograd`` in ``tests/test_dynamical.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from .activations import Activation

__all__ = ["DynamicalPC", "DynamicsDirection", "LatticeSpec", "Params", "errors", "free_energy", "generalised_wave",
           "inference_direction", "init_params", "node_errors", "predictions",
           "weight_directions"]

Nodes = list[list[np.ndarray]]


def _f(act: Activation, a: np.ndarray) -> np.ndarray:
    if act is Activation.LINEAR:
        return a
    if act is Activation.TANH:
        return np.tanh(a)
    if act is Activation.RELU:
        return np.maximum(a, 0.0)
    return 1.0 / (1.0 + np.exp(-a))


def _df(act: Activation, a: np.ndarray) -> np.ndarray:
    if act is Activation.LINEAR:
        return np.ones_like(a)
    if act is Activation.TANH:
        return 1.0 - np.tanh(a) ** 2
    if act is Activation.RELU:
        return (a > 0).astype(a.dtype)
    s = 1.0 / (1.0 + np.exp(-a))
    return s * (1.0 - s)


class DynamicsDirection(Enum):
    """Which order predicts which at a level (spec 3.5, A-8).

    ``HIGHER_PREDICTS_LOWER`` (thesis Eq. 3.16): ``mu[n] <- f(Phi[n+1] mu[n+1])``, so
    ``Phi[i][n]`` (``n >= 1``) carries order ``n`` down to ``n - 1``.
    ``LOWER_PREDICTS_HIGHER`` (the standard generalised motion model ``x' = Phi x``):
    ``mu[n] <- f(Phi[n-1] mu[n-1])``, so ``Phi[i][n]`` (``n <= N - 2``) carries order ``n``
    up to ``n + 1``.
    """

    HIGHER_PREDICTS_LOWER = "higher_predicts_lower"
    LOWER_PREDICTS_HIGHER = "lower_predicts_higher"


@dataclass(frozen=True)
class LatticeSpec:
    """Sizes ``(d_0, ..., d_I)`` (``d_0``: the observation), ``orders`` N, the dynamical and
    hierarchical nonlinearities, which sensory orders are observed, precisions (one per level,
    shared by its orders), the D-term, and the protocol's rates.

    ``split_errors`` (spec 3.5, default False): a node reached by both predictions keeps two
    errors, a dynamical one ``mu - f(Phi mu')`` with precision ``dynamical_precisions[i]``
    (default: ``precisions[i]``) and a hierarchical one ``mu - g(Theta mu_up)`` with
    ``precisions[i]``, instead of one error against their sum (the four-term reading of
    Eq. 3.20). ``tie_orders`` (default False, the thesis's indexing): one ``Theta_i`` and one
    ``Phi_i`` shared by every order of level ``i``, as local linearisation implies; their
    update is the sum of the per-order Hebbian products. ``direction``: which order predicts
    which at a level (:class:`DynamicsDirection`; default the thesis's Eq. 3.16)."""

    sizes: tuple[int, ...] = (1, 2)
    orders: int = 3
    dynamical: Activation = Activation.LINEAR
    hierarchical: Activation = Activation.LINEAR
    observed: tuple[int, ...] = (0, 1)
    precisions: tuple[float, ...] | None = None
    split_errors: bool = False
    dynamical_precisions: tuple[float, ...] | None = None
    tie_orders: bool = False
    direction: DynamicsDirection = DynamicsDirection.HIGHER_PREDICTS_LOWER
    d_term: bool = True
    dt: float = 0.1
    inference_rate: float = 0.05
    inference_steps: int = 100
    learning_rate: float = 0.01
    init_std: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(not isinstance(d, int) or d < 1 for d in self.sizes):
            raise ValueError(f"sizes: need an observation and at least one latent level of "
                             f"positive ints, got {self.sizes}")
        if not isinstance(self.orders, int) or self.orders < 1:
            raise ValueError(f"orders: a positive int, got {self.orders!r}")
        if not self.observed or any(not 0 <= n < self.orders for n in self.observed):
            raise ValueError(f"observed: orders in [0, {self.orders}), got {self.observed}")
        if self.precisions is not None and (len(self.precisions) != len(self.sizes)
                                            or min(self.precisions) <= 0):
            raise ValueError(f"precisions: one positive value per level, got {self.precisions}")
        if self.dynamical_precisions is not None:
            if not self.split_errors:
                raise ValueError("dynamical_precisions: only used with split_errors=True")
            if (len(self.dynamical_precisions) != len(self.sizes)
                    or min(self.dynamical_precisions) <= 0):
                raise ValueError(f"dynamical_precisions: one positive value per level, got "
                                 f"{self.dynamical_precisions}")
        if not isinstance(self.direction, DynamicsDirection):
            raise ValueError(f"direction: must be a DynamicsDirection, got {self.direction!r}")
        for name in ("dynamical", "hierarchical"):
            if not isinstance(getattr(self, name), Activation):
                raise ValueError(f"{name}: must be an Activation, got {getattr(self, name)!r}")
        for name in ("dt", "inference_rate", "learning_rate", "init_std"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be non-negative, got {getattr(self, name)!r}")

    @property
    def levels(self) -> int:
        """``I``: the number of latent levels."""
        return len(self.sizes) - 1

    def pi(self, i: int) -> float:
        """Precision of level ``i``'s (hierarchical, or only) errors."""
        return 1.0 if self.precisions is None else float(self.precisions[i])

    def dynamical_source(self, n: int) -> int | None:
        """The order whose value predicts order ``n`` at a free level (``None``: none)."""
        m = n + 1 if self.direction is DynamicsDirection.HIGHER_PREDICTS_LOWER else n - 1
        return m if 0 <= m < self.orders else None

    def dynamical_target(self, n: int) -> int | None:
        """The order that order ``n`` predicts through ``Phi[i][n]`` (``None``: none)."""
        m = n - 1 if self.direction is DynamicsDirection.HIGHER_PREDICTS_LOWER else n + 1
        return m if 0 <= m < self.orders else None

    def pi_dynamical(self, i: int) -> float:
        """Precision of level ``i``'s dynamical errors (split errors; else :meth:`pi`)."""
        if self.dynamical_precisions is None:
            return self.pi(i)
        return float(self.dynamical_precisions[i])


@dataclass
class Params:
    """``Phi[i][n]`` (``d_i x d_i``; ``i >= 1`` and order ``n`` predicts another order, see
    :class:`DynamicsDirection`; else ``None``) and ``Theta[i][n]``
    (``d_{i-1} x d_i``; ``i >= 1``)."""

    Phi: list[list[np.ndarray | None]]
    Theta: list[list[np.ndarray | None]]

    def copy(self) -> Params:
        c = lambda t: [[None if m is None else m.copy() for m in row] for row in t]  # noqa: E731
        return Params(c(self.Phi), c(self.Theta))


def init_params(spec: LatticeSpec, rng: np.random.Generator | None = None) -> Params:
    """``N(0, init_std^2)`` weights from ``spec.seed`` (or ``rng``). Under ``tie_orders`` one
    matrix per level and family is drawn and copied to every order."""
    rng = rng or np.random.default_rng(spec.seed)
    I, N, d = spec.levels, spec.orders, spec.sizes
    Phi: list[list[np.ndarray | None]] = [[None] * N for _ in range(I + 1)]
    Theta: list[list[np.ndarray | None]] = [[None] * N for _ in range(I + 1)]
    for i in range(1, I + 1):
        for n in range(N):
            Theta[i][n] = (Theta[i][0].copy() if spec.tie_orders and n >= 1  # type: ignore[union-attr]
                           else spec.init_std * rng.standard_normal((d[i - 1], d[i])))
            if spec.dynamical_target(n) is None:
                continue
            first = next((m for m in Phi[i] if m is not None), None)
            Phi[i][n] = (first.copy() if spec.tie_orders and first is not None
                         else spec.init_std * rng.standard_normal((d[i], d[i])))
    return Params(Phi, Theta)


def _dyn(spec: LatticeSpec, p: Params, mu: Nodes, i: int, n: int) -> np.ndarray | None:
    """The dynamical prediction ``f(Phi[i][m] mu[i][m])`` of node (i, n), if any (``m``: the
    next-higher order, or the next-lower one under ``LOWER_PREDICTS_HIGHER``)."""
    m = spec.dynamical_source(n)
    if i >= 1 and m is not None:
        return _f(spec.dynamical, p.Phi[i][m] @ mu[i][m])  # type: ignore[operator]
    return None


def _hier(spec: LatticeSpec, p: Params, mu: Nodes, i: int, n: int) -> np.ndarray | None:
    """The hierarchical prediction ``g(Theta[i+1][n] mu[i+1][n])`` of node (i, n), if any."""
    if i + 1 <= spec.levels:
        return _f(spec.hierarchical, p.Theta[i + 1][n] @ mu[i + 1][n])  # type: ignore[operator]
    return None


def predictions(spec: LatticeSpec, p: Params, mu: Nodes) -> Nodes:
    """``mu_hat[i][n]``: the sum of the dynamical and hierarchical predictions reaching each
    node (zero where neither exists: the top order of the top level has a zero prior)."""
    out: Nodes = []
    for i in range(spec.levels + 1):
        row = []
        for n in range(spec.orders):
            m = np.zeros(spec.sizes[i])
            for part in (_dyn(spec, p, mu, i, n), _hier(spec, p, mu, i, n)):
                if part is not None:
                    m = m + part
            row.append(m)
        out.append(row)
    return out


def node_errors(spec: LatticeSpec, p: Params, mu: Nodes) -> tuple[Nodes, Nodes]:
    """``(dynamical, hierarchical)`` errors of every node. Without ``split_errors`` both are
    the same list: each node's single error ``mu - mu_hat``. With it, a node reached by a
    dynamical prediction has ``mu - f(Phi mu')`` in the first list, one reached by a
    hierarchical prediction (or by none: the zero prior of the top order of the top level)
    ``mu - g(Theta mu_up)`` (or ``mu``) in the second, and zeros elsewhere. Unobserved sensory
    orders carry zero error."""
    I, N = spec.levels, spec.orders
    if not spec.split_errors:
        hat = predictions(spec, p, mu)
        eps = [[mu[i][n] - hat[i][n] for n in range(N)] for i in range(I + 1)]
        for n in range(N):
            if n not in spec.observed:
                eps[0][n] = np.zeros_like(eps[0][n])
        return eps, eps
    dyn: Nodes = [[np.zeros(spec.sizes[i]) for _ in range(N)] for i in range(I + 1)]
    hier: Nodes = [[np.zeros(spec.sizes[i]) for _ in range(N)] for i in range(I + 1)]
    for i in range(I + 1):
        for n in range(N):
            if i == 0 and n not in spec.observed:
                continue
            d, h = _dyn(spec, p, mu, i, n), _hier(spec, p, mu, i, n)
            if d is not None:
                dyn[i][n] = mu[i][n] - d
            if h is not None or d is None:
                hier[i][n] = mu[i][n] - (0.0 if h is None else h)
    return dyn, hier


def errors(spec: LatticeSpec, p: Params, mu: Nodes) -> Nodes:
    """``eps[i][n] = mu[i][n] - mu_hat[i][n]`` (with ``split_errors``: the hierarchical
    errors; see :func:`node_errors`); unobserved sensory orders carry zero error."""
    return node_errors(spec, p, mu)[1]


def free_energy(spec: LatticeSpec, p: Params, mu: Nodes) -> float:
    """``F = 1/2 sum pi |eps|^2`` over every error (both kinds under ``split_errors``)."""
    dyn, hier = node_errors(spec, p, mu)
    F = sum(0.5 * spec.pi(i) * float(e @ e) for i, row in enumerate(hier) for e in row)
    if spec.split_errors:
        F += sum(0.5 * spec.pi_dynamical(i) * float(e @ e) for i, row in enumerate(dyn)
                 for e in row)
    return float(F)


def inference_direction(spec: LatticeSpec, p: Params, mu: Nodes,
                        eps: tuple[Nodes, Nodes] | None = None, *,
                        d_term: bool | None = None) -> Nodes:
    """``dmu`` for every free node (level 0 gets zeros): ``-dF/dmu``, plus ``D mu`` when the
    D-term is on (``d_term`` overrides the spec). ``eps``: :func:`node_errors` if known."""
    dyn, hier = node_errors(spec, p, mu) if eps is None else eps
    I, N = spec.levels, spec.orders
    use_d = spec.d_term if d_term is None else d_term
    out: Nodes = [[np.zeros(spec.sizes[0]) for _ in range(N)]]
    for i in range(1, I + 1):
        row = []
        for n in range(N):
            dm = -spec.pi(i) * hier[i][n]
            if spec.split_errors:
                dm = dm - spec.pi_dynamical(i) * dyn[i][n]
            tn = spec.dynamical_target(n)
            if tn is not None:
                Phi = p.Phi[i][n]
                assert Phi is not None
                dm = dm + Phi.T @ (_df(spec.dynamical, Phi @ mu[i][n])
                                   * spec.pi_dynamical(i) * dyn[i][tn])
            Th = p.Theta[i][n]
            assert Th is not None
            dm = dm + Th.T @ (_df(spec.hierarchical, Th @ mu[i][n]) * spec.pi(i - 1)
                              * hier[i - 1][n])
            if use_d and n + 1 < N:
                dm = dm + mu[i][n + 1]
            row.append(dm)
        out.append(row)
    return out


def weight_directions(spec: LatticeSpec, p: Params, mu: Nodes,
                      eps: tuple[Nodes, Nodes] | None = None) -> Params:
    """``-dF/dPhi`` and ``-dF/dTheta``: postsynaptic gain-weighted error x presynaptic value.
    Under ``tie_orders`` every order's entry holds the gradient of the shared matrix (the sum
    of the per-order products)."""
    dyn, hier = node_errors(spec, p, mu) if eps is None else eps
    I, N = spec.levels, spec.orders
    dPhi: list[list[np.ndarray | None]] = [[None] * N for _ in range(I + 1)]
    dTheta: list[list[np.ndarray | None]] = [[None] * N for _ in range(I + 1)]
    for i in range(1, I + 1):
        for n in range(N):
            tn = spec.dynamical_target(n)
            if tn is not None:
                Phi = p.Phi[i][n]
                assert Phi is not None
                post = (_df(spec.dynamical, Phi @ mu[i][n]) * spec.pi_dynamical(i)
                        * dyn[i][tn])
                dPhi[i][n] = np.outer(post, mu[i][n])
            Th = p.Theta[i][n]
            assert Th is not None
            post = _df(spec.hierarchical, Th @ mu[i][n]) * spec.pi(i - 1) * hier[i - 1][n]
            dTheta[i][n] = np.outer(post, mu[i][n])
        if spec.tie_orders:
            total_t = sum(dTheta[i][n] for n in range(N))  # type: ignore[misc]
            dTheta[i] = [total_t.copy() for _ in range(N)]  # type: ignore[union-attr]
            have = [n for n in range(N) if dPhi[i][n] is not None]
            if have:
                total_p = sum(dPhi[i][n] for n in have)  # type: ignore[misc]
                dPhi[i] = [total_p.copy() if n in have else None  # type: ignore[union-attr]
                           for n in range(N)]
    return Params(dPhi, dTheta)


def generalised_wave(kind: str, ticks: int, *, omega: float = 1.0, dt: float = 0.1,
                     orders: int = 3) -> np.ndarray:
    """Generalised observations ``ticks x orders`` of a sine, sawtooth or square wave: the
    value and its analytic derivatives (piecewise for sawtooth/square: slope, no deltas)."""
    t = np.arange(ticks) * dt
    out = np.zeros((ticks, orders))
    if kind == "sine":
        derivs = [np.sin(omega * t), omega * np.cos(omega * t), -omega**2 * np.sin(omega * t)]
    elif kind == "sawtooth":
        period = 2 * np.pi / omega
        phase = (t / period) % 1.0
        derivs = [2 * phase - 1, np.full(ticks, 2 / period), np.zeros(ticks)]
    elif kind == "square":
        derivs = [np.sign(np.sin(omega * t)), np.zeros(ticks), np.zeros(ticks)]
    else:
        raise ValueError(f"kind: 'sine', 'sawtooth' or 'square', got {kind!r}")
    for n in range(min(orders, 3)):
        out[:, n] = derivs[n]
    return out


@dataclass
class DynamicalPC:
    """The online protocol (spec 3.6): per tick, predict with the shift operator
    (``mu <- mu + dt D mu``) and record the sensory prediction, clamp the generalised
    observation and run inference, then one weight step. ``history`` keeps, per tick, the
    predicted observation (before seeing it), the errors and the values."""

    spec: LatticeSpec
    params: Params = field(init=False)
    mu: Nodes = field(init=False)

    def __post_init__(self) -> None:
        s = self.spec
        rng = np.random.default_rng(s.seed)
        self.params = init_params(s, rng)
        self.mu = [[s.init_std * rng.standard_normal(s.sizes[i]) if i else np.zeros(s.sizes[0])
                    for _ in range(s.orders)] for i in range(s.levels + 1)]

    def predicted_observation(self) -> np.ndarray:
        """The sensory level's prediction at every order (``orders x d_0``)."""
        hat = predictions(self.spec, self.params, self.mu)
        return np.array(hat[0])

    def tick(self, obs: np.ndarray, learn: bool = True) -> dict[str, np.ndarray]:
        """One tick with the generalised observation ``obs`` (``orders x d_0``, or
        ``orders`` for a 1-d signal)."""
        s = self.spec
        obs = np.asarray(obs, dtype=np.float64).reshape(s.orders, s.sizes[0])
        for i in range(1, s.levels + 1):  # predict: prior motion D mu
            self.mu[i] = [self.mu[i][n] + s.dt * (self.mu[i][n + 1] if n + 1 < s.orders else 0.0)
                          for n in range(s.orders)]
        predicted = self.predicted_observation()
        self.mu[0] = [obs[n].copy() for n in range(s.orders)]
        for _ in range(s.inference_steps):  # correct (the D-term is the predict step's)
            d = inference_direction(s, self.params, self.mu, d_term=False)
            for i in range(1, s.levels + 1):
                self.mu[i] = [self.mu[i][n] + s.inference_rate * d[i][n]
                              for n in range(s.orders)]
        eps = node_errors(s, self.params, self.mu)
        if learn:
            w = weight_directions(s, self.params, self.mu, eps)
            for fam in ("Phi", "Theta"):
                mine, dirs = getattr(self.params, fam), getattr(w, fam)
                for i in range(s.levels + 1):
                    for n in range(s.orders):
                        if dirs[i][n] is not None:
                            mine[i][n] += s.learning_rate * dirs[i][n]
        return {"predicted": predicted,
                "errors": np.array([np.hypot(np.linalg.norm(d), np.linalg.norm(h))
                                    if s.split_errors else np.linalg.norm(h)
                                    for rd, rh in zip(*eps) for d, h in zip(rd, rh)]),
                "values": np.concatenate([m for row in self.mu[1:] for m in row])}
