"""The predictive-coding Kalman filter as a Brian2 microcircuit (thesis 3.4, spec 6).

==============  ===============  =============================================================
object          pre -> post      role, and the plasticity written in its model
==============  ===============  =============================================================
``V``           value neurons    the estimate ``mu``: ``dmu = gamma (C' Pz eps_z - Px eps_x)``
``M``           memory neurons   the previous estimate ``mu_t``, copied from ``V`` at the
                                 start of every filter step
``U``, ``Y``    inputs           control ``u_t`` and observation ``y``, clamped per filter step
``Ez``          sensory errors   ``eps_z = y - C mu``, output ``pi_z eps_z``
``Ex``          dynamics errors  ``eps_x = mu - A mu_t - B u``, output ``pi_x eps_x``
``C``           V -> Ez          prediction ``C mu``; carries ``C' (pi_z eps_z)`` back to
                                 ``V`` on the same synapse (the weight transport the thesis
                                 notes); Hebbian ``dC = eta_C (pi_z eps_z)_post mu_pre``
``A``, ``B``    M, U -> Ex       ``A mu_t``, ``B u``; ``dA = eta_A (pi_x eps_x)_post mu_t_pre``,
                                 ``dB = eta_B (pi_x eps_x)_post u_pre``
``YE``, ``VE``  Y, V -> Ez, Ex   one-to-one inputs; ``EV``: Ex -> V, one-to-one
                                 ``-pi_x eps_x`` (and the projection for the settle step)
==============  ===============  =============================================================

One filter step = (copy ``V -> M``, clamp ``y`` and ``u``) [+ one settle step to the
projection ``A mu_t + B u``] + ``K`` inference steps. Plasticity runs at every inference
step from the same errors that move the estimate (``LearnTiming.EVERY_ITERATION``), after
the bottom-up sums and before the value update, so the step is the numpy
:class:`~algorithms.kalman.PCFilter` iteration exactly. Precisions are diagonal (a gain per
error neuron); the prior precision is the process one (``PriorPrecision.PROCESS``). The
automatic rate (``options.rate=None``) is resolved at build time to ``1 / lambda_max`` of
``C' Pz C + Px`` (:func:`~algorithms.kalman.stable_rate`) and fixes the value neurons' time
constant; with a learning ``C`` (whose Hessian moves) the circuit needs an explicit rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import brian2 as b2
import numpy as np

from algorithms.kalman import (FilterResult, Init, LearnTiming, PCFilterOptions, PriorPrecision,
                               StateSpace, stable_rate)

from .base import all_to_all, claim
from .drive import (ORDER_CLAMPED, ORDER_MONITOR, STEP, CircuitError,
                    Phases, Target, capacity, codegen_target, order_summed, builds_on_target)

__all__ = ["KalmanCircuit", "build_kalman_circuit"]

VALUE = """
dv/dt = relaxing(t) * (fbz - own) / tau_v + settling(t) * (proj - v) / step : 1
fbz : 1    # (summed) C' (pi_z eps_z) from the sensory errors
own : 1    # (summed) pi_x eps_x from the own dynamics error neuron
proj : 1   # (summed) the projection A mu_t + B u, used by the settle step
"""
MEMORY = "v : 1   # the previous estimate mu_t (COPY at each filter step's start)"
INPUT = "v : 1   # clamped control or observation"
SENSORY_ERROR = """
eps = yin - cin : 1   # y - C mu
pe = prec * eps : 1     # precision-weighted output
yin : 1               # (summed) one-to-one from Y
cin : 1               # (summed) C mu from V
prec : 1 (constant)   # precision (diagonal of R^-1)
"""
DYNAMICS_ERROR = """
eps = vin - am - au : 1   # mu - A mu_t - B u
pe = prec * eps : 1
vin : 1                   # (summed) one-to-one from V
am : 1                    # (summed) A mu_t from M
au : 1                    # (summed) B u from U
prec : 1 (constant)       # precision (diagonal of Q^-1)
"""
LEARN = "w += relaxing(t) * eta * pe_post * v_pre"
"""Hebbian: precision-weighted postsynaptic error x presynaptic activity, at inference steps."""

STAGE2 = frozenset({"fbz", "own", "proj"})
"""Summed inputs of the value neurons: they read error outputs computed at stage 1."""

ORDER_LEARN = -15  # after the stage-2 sums (which use the old weights), before the value update


def _diagonal(m: np.ndarray, name: str) -> np.ndarray:
    if not np.allclose(m, np.diag(np.diag(m))):
        raise CircuitError(f"{name}: the circuit's error neurons carry diagonal precisions only")
    return np.diag(m).copy()


@dataclass
class KalmanCircuit:
    """A built Kalman circuit: ``network`` and its populations and pathways by name."""

    model: StateSpace
    options: PCFilterOptions
    network: b2.Network
    groups: dict[str, b2.NeuronGroup]
    pathways: dict[str, b2.Synapses]
    phases: Phases
    sample_clock: b2.Clock
    target: Target

    def matrix(self, name: str) -> np.ndarray:
        """``A``, ``B`` or ``C`` as a numpy matrix (post x pre)."""
        s = self.pathways[name]
        post, pre = {"A": (self.model.n, self.model.n), "B": (self.model.n, self.model.m),
                     "C": (self.model.k, self.model.n)}[name]
        return np.asarray(s.w[:]).reshape(pre, post).T.copy()

    def run(self, y: np.ndarray, u: np.ndarray, *, monitor: bool = False) -> FilterResult:
        """Filter a whole run in one Brian2 ``run()``; returns the estimate after every filter
        step (and, with ``monitor``, every population's value at every step in ``extra``)."""
        u = np.asarray(u, dtype=np.float64).reshape(len(u), -1)
        y = np.asarray(y, dtype=np.float64)
        if u.shape[1] != self.model.m or y.shape != (len(u), self.model.k):
            raise CircuitError(f"need y ({len(u)}, {self.model.k}) and u ({len(u)}, "
                               f"{self.model.m}); got {y.shape} and {u.shape}")
        n, P = len(u), self.phases.period
        cap = capacity(n)
        settling, relaxing = self.phases.arrays(n, cap)
        pad = lambda a: np.vstack([a, np.repeat(a[-1:], cap + 1 - n, axis=0)])  # noqa: E731
        o = self.options
        ns = {"settling": b2.TimedArray(settling, dt=STEP, name="settling"),
              "relaxing": b2.TimedArray(relaxing, dt=STEP, name="relaxing"),
              "y_in": b2.TimedArray(pad(y), dt=P * STEP, name="y_in"),
              "u_in": b2.TimedArray(pad(u), dt=P * STEP, name="u_in"),
              "step": STEP, "tau_v": STEP / o.rate,
              "eta_A": o.learning_rates["A"] if "A" in o.learn else 0.0,
              "eta_B": o.learning_rates["B"] if "B" in o.learn else 0.0,
              "eta_C": o.learning_rates["C"] if "C" in o.learn else 0.0}
        V = self.groups["V"]
        rec = b2.StateMonitor(V, "v", record=True, dt=P * STEP, when="start",
                              order=ORDER_MONITOR, name=f"{self.network.name}_estimates")
        extra = [rec]
        steps = {}
        if monitor:
            for gname in ("V", "M", "Ez", "Ex"):
                var = "v" if gname in ("V", "M") else "eps"
                steps[gname] = b2.StateMonitor(self.groups[gname], var, record=True, when="end",
                                               name=f"{self.network.name}_steps_{gname}")
            extra += list(steps.values())
        self.network.add(*extra)
        try:
            self.network.t_ = 0.0
            self.sample_clock.dt = P * STEP
            with codegen_target(self.target):
                self.network.run((n * P + 1) * STEP, namespace=ns)
        finally:
            self.network.remove(*extra)
        mu = np.asarray(rec.v).T[1:n + 1].copy()
        out = {k: np.asarray(getattr(m, "v" if k in ("V", "M") else "eps")).copy()
               for k, m in steps.items()}
        return FilterResult(mu, None, None, out)


@builds_on_target
def build_kalman_circuit(model: StateSpace, options: PCFilterOptions | None = None, *,
                         A: np.ndarray | None = None, B: np.ndarray | None = None,
                         C: np.ndarray | None = None, mu0: np.ndarray | None = None,
                         target: Target = Target.NUMPY, name: str = "kf") -> KalmanCircuit:
    """The circuit of the PC filter of ``model`` (the same arguments as
    :class:`~algorithms.kalman.PCFilter`)."""
    o = options or PCFilterOptions()
    if o.prior_precision is not PriorPrecision.PROCESS:
        raise CircuitError("prior_precision: the Kalman covariance recursion is not local; the "
                           "circuit implements PriorPrecision.PROCESS")
    if o.learn and o.timing is not LearnTiming.EVERY_ITERATION:
        raise CircuitError("timing: the circuit's plasticity runs at every inference step "
                           "(LearnTiming.EVERY_ITERATION)")
    if target is Target.CPP_STANDALONE:
        raise CircuitError("target: run the Kalman circuit on the numpy or cython target")
    n, m, k = model.n, model.m, model.k
    pz, px = _diagonal(np.linalg.inv(model.R), "R"), _diagonal(np.linalg.inv(model.Q), "Q")
    Cm = model.C if C is None else np.asarray(C, dtype=np.float64)
    Am = model.A if A is None else np.asarray(A, dtype=np.float64)
    Bm = model.B if B is None else np.asarray(B, dtype=np.float64)
    auto, bound = stable_rate(Cm, np.diag(pz), np.diag(px))
    if o.rate is None:
        if "C" in o.learn:
            raise CircuitError("rate: the automatic rate follows the learned C (the numpy "
                               "PCFilter recomputes it); the circuit's time constant is fixed, "
                               f"so pass an explicit rate below 2/lambda_max = {bound:.4g}")
        o = replace(o, rate=auto)
    elif o.rate > bound:
        raise CircuitError(f"rate: {o.rate!r} is above the stability bound 2/lambda_max = "
                           f"{bound:.4g} of the inference Hessian C' Pz C + Px")
    phases = _NoHold(1 if o.init is Init.PROJECTION else 0, o.steps)
    clock = b2.Clock(dt=STEP, name=f"{name}_clock")
    sample_clock = b2.Clock(dt=phases.period * STEP, name=f"{name}_sample_clock")
    g = {"V": b2.NeuronGroup(n, VALUE, method="euler", clock=clock, name=f"{name}_V"),
         "M": b2.NeuronGroup(n, MEMORY, clock=clock, name=f"{name}_M"),
         "U": b2.NeuronGroup(m, INPUT, clock=clock, name=f"{name}_U"),
         "Y": b2.NeuronGroup(k, INPUT, clock=clock, name=f"{name}_Y"),
         "Ez": b2.NeuronGroup(k, SENSORY_ERROR, clock=clock, name=f"{name}_Ez"),
         "Ex": b2.NeuronGroup(n, DYNAMICS_ERROR, clock=clock, name=f"{name}_Ex")}
    g["Ez"].prec = pz
    g["Ex"].prec = px
    g["V"].v = np.zeros(n) if mu0 is None else np.asarray(mu0, dtype=np.float64)
    # each filter step starts: inputs take the new sample (memory: the VM link below)
    g["U"].run_regularly("v = u_in(t, i)", clock=sample_clock, when="groups",
                         order=ORDER_CLAMPED, name=f"{name}_U_clamp")
    g["Y"].run_regularly("v = y_in(t, i)", clock=sample_clock, when="groups",
                         order=ORDER_CLAMPED, name=f"{name}_Y_clamp")
    paths: dict[str, b2.Synapses] = {}

    def syn(key: str, pre: str, post: str, model_: str, weights: np.ndarray | None,
            learn: str | None = None) -> b2.Synapses:
        s = b2.Synapses(g[pre], g[post], model_, clock=clock, name=f"{name}_{key}")
        if weights is None:
            s.connect(j="i")
        else:
            i, j = all_to_all(len(g[pre]), len(g[post]))
            s.connect(i=i, j=j)
            s.w[:] = weights.T.ravel()
        order_summed(s, STAGE2)
        if learn is not None:
            s.run_regularly(LEARN.replace("eta", learn), when="groups", order=ORDER_LEARN,
                            name=f"{name}_{key}_learn")
        paths[key] = s
        return s

    syn("C", "V", "Ez", "w : 1\ncin_post = w * v_pre : 1 (summed)\n"
                        "fbz_pre = w * pe_post : 1 (summed)", Cm, "eta_C")
    syn("A", "M", "Ex", "w : 1\nam_post = w * v_pre : 1 (summed)", Am, "eta_A")
    syn("B", "U", "Ex", "w : 1\nau_post = w * v_pre : 1 (summed)", Bm, "eta_B")
    syn("YE", "Y", "Ez", "yin_post = v_pre : 1 (summed)", None)
    syn("VE", "V", "Ex", "vin_post = v_pre : 1 (summed)", None)
    syn("EV", "Ex", "V", "own_post = pe_pre : 1 (summed)\nproj_post = am_pre + au_pre : 1 "
                         "(summed)", None)
    # memory: a one-to-one copy V -> M, summed once per filter step (before V moves)
    link = b2.Synapses(g["V"], g["M"], "v_post = v_pre : 1 (summed)", clock=clock,
                       name=f"{name}_VM")
    link.connect(j="i")
    for up in link.summed_updaters.values():
        up._clock = sample_clock
        up.order = ORDER_CLAMPED - 1
    paths["VM"] = link
    net = claim(b2.Network(*g.values(), *paths.values(), name=f"{name}_network"))
    return KalmanCircuit(model, o, net, g, paths, phases, sample_clock, target)


class _NoHold(Phases):
    """A filter step has no hold step: ``settle + relax`` steps."""

    @property
    def period(self) -> int:
        return self.settle + self.relax

    def arrays(self, n: int, capacity: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        one = np.zeros(self.period)
        settling, relaxing = one.copy(), one.copy()
        settling[: self.settle] = 1.0
        relaxing[self.settle:] = 1.0
        rest = np.zeros(((capacity or n) - n) * self.period + 1)
        return (np.concatenate([np.tile(settling, n), rest]),
                np.concatenate([np.tile(relaxing, n), rest]))
