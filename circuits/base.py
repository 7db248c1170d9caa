"""What every rate circuit shares: weights in and out, and the many-samples driver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import brian2 as b2
import numpy as np
import torch

from algorithms.pc import PCParams, PCUpdate, load_named_tensors
from algorithms.spec import PCSpec, PsiPlacement

from .drive import (ORDER_MONITOR, STEP, CircuitError, Kernel, Phases, Target, codegen_target,
                    drive_namespace, gate_arrays, order_summed)

__all__ = ["Circuit", "DenseWeights", "all_to_all", "bias_plasticity_code", "check_samples",
           "claim", "once_per_sample", "pathway", "plasticity_code", "psi_pathway"]


def psi_pathway(spec: PCSpec) -> str:
    """Key prefix of the dense ``psi`` pathways: ``VE`` (``V_l -> E_l``, ``psi`` on the value)
    or ``PE`` (``E_l -> E_l``, ``psi`` on the prediction, ``PsiPlacement.PREDICTION``)."""
    return "PE" if spec.relaxations.psi_placement is PsiPlacement.PREDICTION else "VE"


def all_to_all(n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    """Explicit pre/post indices, pre-major, so synapse ``k = i * n_post + j``."""
    return np.repeat(np.arange(n_pre), n_post), np.tile(np.arange(n_post), n_pre)


def check_samples(x: np.ndarray | torch.Tensor, width: int, what: str) -> np.ndarray:
    """``x`` as a float64 ``samples x width`` array; a clear error for a wrong shape, no
    samples, NaN or inf."""
    a = x.detach().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, float)
    if a.ndim != 2 or a.shape[1] != width:
        raise CircuitError(f"{what} must have shape (samples, {width}), got {a.shape}")
    if a.shape[0] == 0:
        raise CircuitError(f"{what} has no samples")
    if not np.isfinite(a).all():
        raise CircuitError(f"{what} contains NaN or inf")
    return a


def plasticity_code(post_pre: str, decays: bool) -> str:
    """Learning code of a plastic synapse (run at every sample boundary). The gates are
    scalar temporaries, which Brian2 evaluates once per call rather than per synapse."""
    return ("g_acc = acc_gate(t)\n"
            "g_apply = apply_gate(t)\n"
            f"dw_acc += g_acc * ({post_pre})\n"
            f"w = w * (1 - g_apply * eta * {'decay' if decays else '0'})"
            " + g_apply * eta * clip(dw_acc, -clamp, clamp)\n"
            "dw_acc = dw_acc * (1 - g_apply)")


def bias_plasticity_code(factor: str) -> str:
    """Learning code of a bias (a neuron's own variable ``b``), run at every sample boundary:
    accumulate ``factor`` (the neuron's postsynaptic learning signal), apply per batch."""
    return (f"b_acc += acc_gate(t) * ({factor})\n"
            "b = b + apply_gate(t) * eta * clip(b_acc, -clamp, clamp)\n"
            "b_acc = b_acc * (1 - apply_gate(t))")


def pathway(name: str, pre: b2.NeuronGroup, post: b2.NeuronGroup, model: str, *,
            clock: b2.Clock, learn_dt: b2.Quantity, one_to_one: bool = False,
            learn: str | None = None, decays: bool = False) -> b2.Synapses:
    """A named pathway: all-to-all (pre-major, so synapse ``k = i * n_post + j``) or
    one-to-one, its summed inputs scheduled by stage, and, if ``learn`` names the local
    product, the plasticity of :func:`plasticity_code` at every sample boundary."""
    s = b2.Synapses(pre, post, model, clock=clock, name=name)
    if one_to_one:
        s.connect(j="i")
    else:
        i, j = all_to_all(len(pre), len(post))
        s.connect(i=i, j=j)
    order_summed(s)
    if learn is not None:
        s.run_regularly(plasticity_code(learn, decays), dt=learn_dt, when="start", order=-3,
                        name=f"{name}_learn")
    return s


def once_per_sample(synapses: b2.Synapses, clock: b2.Clock) -> None:
    """Compute the summed pathways of ``synapses`` (whose presynaptic population is clamped
    to the sample) once per sample instead of every step: their updaters move to ``clock``,
    which ticks at each sample's first step, right after the clamped population took the new
    sample (order -40 < -30). Exact, and it removes the widest product (the input layer's)
    from the inner loop. Brian2 offers no constructor argument for an updater's clock, so it
    is set on the updater objects (``_clock``) before the network first runs."""
    for updater in synapses.summed_updaters.values():
        updater._clock = clock


def claim(network: b2.Network) -> b2.Network:
    """Mark ``network``'s objects as belonging to it, as Brian2 does at the first run, so a
    circuit that is built but never run (to read its weights, say) is not reported as
    "never included in a network" when it is garbage collected."""
    for obj in network.objects:
        obj._network = network.id
    return network


@dataclass
class DenseWeights:
    """A dense pathway's weights held as a numpy matrix (numba kernel path)."""

    w: np.ndarray
    acc: np.ndarray
    decays: bool
    plastic: bool


@dataclass
class Circuit:
    """A built circuit: the ``Network``, its populations and pathways by name.

    ``values[l]`` is the value population of layer ``l`` (``V{l}`` in PC, ``X{l}`` in AR);
    ``bias_groups[l + 1]`` holds the bias ``b`` of ``W_l`` (PC: ``E{l+1}``, AR: ``X{l+1}``).
    Weights are read and written as :class:`~algorithms.pc.PCParams` (torch float64) with
    :meth:`get_params` / :meth:`set_params`, in the torch backend's layout.
    """

    spec: PCSpec
    network: b2.Network
    values: list[b2.NeuronGroup]
    bias_groups: list[b2.NeuronGroup | None]
    pathways: dict[str, b2.Synapses]
    phases: Phases
    target: Target
    kernel: Kernel
    dense: dict[str, DenseWeights] = field(default_factory=dict)
    _netops: list[b2.NetworkOperation] = field(default_factory=list)
    _gates: tuple[np.ndarray, np.ndarray, int] = (np.zeros(1), np.zeros(1), 1)
    sample_clocks: list[b2.Clock] = field(default_factory=list)
    """Clocks ticking once per sample (inputs from clamped populations are constant within a
    sample, so their summed pathways are computed once, at the sample's first step)."""
    period_now: int = 1
    step: b2.Quantity = field(default_factory=lambda: STEP)
    """Simulated time of one step (rate circuits: one inference iteration)."""

    # ------------------------------------------------------------------ weights
    def _matrix(self, name: str, rows: int, cols: int) -> np.ndarray:
        """Pathway ``name`` as the torch-layout matrix ``rows x cols`` (post x pre)."""
        if name in self.dense:
            return self.dense[name].w.copy()
        s = self.pathways[name]
        return np.asarray(s.w[:]).reshape(cols, rows).T.copy()

    def _set_matrix(self, name: str, m: np.ndarray) -> None:
        m = np.asarray(m, dtype=np.float64)
        if name in self.dense:
            if m.shape != self.dense[name].w.shape:
                raise CircuitError(f"{name}: shape {m.shape} != {self.dense[name].w.shape}")
            self.dense[name].w[...] = m
            return
        self.pathways[name].w[:] = m.T.ravel()

    def _matrices(self) -> list[tuple[str, str, int, int, int]]:
        """``(pathway, params field, layer, rows, cols)`` for every weight matrix."""
        sizes, L = self.spec.sizes, self.spec.n_layers
        out = [(f"W{l}", "weights", l, sizes[l + 1], sizes[l]) for l in range(L)]
        r = self.spec.relaxations
        if r.has_backward_weights:
            out += [(f"B{l}", "backward", l, sizes[l], sizes[l + 1]) for l in range(1, L)]
        if r.has_psi:
            key = psi_pathway(self.spec)
            out += [(f"{key}{l}", "psi", l, sizes[l], sizes[l]) for l in range(1, L)]
        return out

    def get_params(self) -> PCParams:
        """Every weight (and bias) as torch float64 tensors, torch layout."""
        L = self.spec.n_layers
        p = PCParams([None] * L, [None] * L, [None] * L, [None] * (L + 1))  # type: ignore[list-item]
        for name, fld, l, rows, cols in self._matrices():
            getattr(p, fld)[l] = torch.from_numpy(self._matrix(name, rows, cols))
        if self.spec.use_bias:
            for l in range(L):
                p.biases[l] = torch.from_numpy(np.asarray(self.bias_groups[l + 1].b[:]).copy())
        return p

    def set_params(self, params: PCParams) -> None:
        """Load weights (torch layout, any float dtype) into the synapses."""
        for name, fld, l, rows, cols in self._matrices():
            t = getattr(params, fld)[l]
            if t is None or tuple(t.shape) != (rows, cols):
                raise CircuitError(f"params.{fld}[{l}] must have shape ({rows}, {cols}), got "
                                   f"{None if t is None else tuple(t.shape)}")
            self._set_matrix(name, t.detach().double().numpy())
        if self.spec.use_bias:
            for l in range(self.spec.n_layers):
                b = params.biases[l]
                assert b is not None
                self.bias_groups[l + 1].b[:] = b.detach().double().numpy()

    def weights(self) -> dict[str, np.ndarray]:
        """Every weight matrix and bias as a numpy array under its pathway name (``W0``,
        ``B1``, ``psi1``, ``b0``...), torch layout (``post x pre``)."""
        return {k: v.numpy() for k, v in self.get_params().tensors().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Write weights given as in :meth:`weights` (every name, matching shapes)."""
        p = self.get_params()
        load_named_tensors(p, {k: torch.as_tensor(np.asarray(v, dtype=np.float64))
                               for k, v in weights.items()})
        self.set_params(p)

    def accumulated(self) -> PCUpdate:
        """The per-synapse update accumulators ``dw_acc`` (the batch's summed descent
        directions before the learning rate), torch layout. Non-zero only between a run
        with ``apply=False`` and the next applied update."""
        L = self.spec.n_layers
        u = PCUpdate([None] * L, [None] * L, [None] * L, [None] * (L + 1))  # type: ignore[list-item]
        for name, fld, l, rows, cols in self._matrices():
            if name in self.dense:
                m = self.dense[name].acc.copy()
            elif "dw_acc" in self.pathways[name].variables:
                m = np.asarray(self.pathways[name].dw_acc[:]).reshape(cols, rows).T.copy()
            else:
                continue
            getattr(u, fld)[l] = torch.from_numpy(m)
        if self.spec.use_bias:
            for l in range(L):
                u.biases[l] = torch.from_numpy(np.asarray(self.bias_groups[l + 1].b_acc[:]).copy())
        return u

    # --------------------------------------------------------------------- runs
    def _check(self, x: np.ndarray | torch.Tensor, width: int, what: str) -> np.ndarray:
        return check_samples(x, width, what)

    def run(self, x: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor | None = None,
            *, learn: bool = True, apply: bool = True, phases: Phases | None = None,
            monitors: dict[str, b2.StateMonitor] | None = None,
            report: Callable[[float], None] | None = None) -> None:
        """Present ``x`` (``n x n_0``) with ``target`` (``n x n_L``) sample by sample in one
        Brian2 ``run()``: settle, relax, and (if ``learn``) accumulate each sample's
        Hebbian products, applying them every ``batch_size`` samples (and at the end) when
        ``apply``. Monitors given are added for this run only."""
        sizes = self.spec.sizes
        xa = self._check(x, sizes[0], "input")
        ya = (np.zeros((len(xa), sizes[-1])) if target is None
              else self._check(target, sizes[-1], "target"))
        if len(ya) != len(xa):
            raise CircuitError(f"input has {len(xa)} samples but target has {len(ya)}")
        ph = phases or self.phases
        n, P = len(xa), self.phases.period
        if ph == self.phases:
            acc, apply_ = gate_arrays(n, self.spec.batch_size, learn)
            if not apply:
                apply_[:] = 0.0
        else:  # another period (prediction): the learning clock ticks on, gated off
            if learn:
                raise CircuitError("learning needs the circuit's own phases")
            acc = apply_ = np.zeros(n * ph.period // P + 2)
        ns = drive_namespace(ph, {"x_in": xa, "y_in": ya}, acc=acc, apply=apply_,
                             learn_period=P, step=self.step)
        ns.update(self._constants())
        ns.update(self._drive_extra(ph, n, learn))
        self._gates = (acc, apply_, P)
        self.period_now = ph.period
        for clock in self.sample_clocks:
            clock.dt = ph.period * self.step
        extra = list((monitors or {}).values())
        for m in extra:
            self.network.add(m)
        duration = (len(xa) * ph.period + 1) * self.step
        if self.target is Target.CPP_STANDALONE:  # recorded now, built by run_standalone
            self.network.run(duration, namespace=ns)
            return
        try:
            self.network.t_ = 0.0
            with codegen_target(self.target):
                self.network.run(duration, namespace=ns,
                                 report=None if report is None else
                                 (lambda elapsed, done, start, duration: report(float(done))),
                                 report_period=10 * b2.second)
        finally:
            for m in extra:
                self.network.remove(m)

    def _drive_extra(self, phases: Phases, n: int, learn: bool) -> dict[str, object]:
        """More run-namespace entries (spiking circuits: the hold-window gates)."""
        return {}

    def _constants(self) -> dict[str, object]:
        s = self.spec
        tau_v = STEP / s.inference_rate if s.inference_rate > 0 else 1e12 * b2.second
        return {"tau_v": tau_v, "eta": s.learning_rate, "decay": s.relaxations.kp_decay,
                "clamp": s.update_clamp if s.update_clamp is not None else 1e300}

    def _groups(self) -> list[b2.NeuronGroup]:
        return [o for o in self.network.objects if isinstance(o, b2.NeuronGroup)]

    def relaxed_monitors(self, variables: dict[str, tuple[str, ...]],
                         phases: Phases | None = None) -> dict[str, b2.StateMonitor]:
        """Monitors that record ``variables`` (population name -> variable names) once per
        sample, at the relaxed state just before learning. Pass them to :meth:`run`; row
        ``k + 1`` of each recording is sample ``k`` (row 0 is the state before the run)."""
        ph = phases or self.phases
        groups = {g.name.removeprefix(f"{self.network.name.removesuffix('_network')}_"): g for g in self._groups() if g is not None}
        out = {}
        for pop, vars_ in variables.items():
            if pop not in groups:
                raise CircuitError(f"no population {pop!r}; have {sorted(groups)}")
            out[pop] = b2.StateMonitor(groups[pop], list(vars_), record=True,
                                       dt=ph.period * self.step, when="start",
                                       order=ORDER_MONITOR,
                                       name=f"{self.network.name}_relaxed_{pop}")
        return out

    def step_monitors(self, variables: dict[str, tuple[str, ...]]) -> dict[str, b2.StateMonitor]:
        """Monitors that record ``variables`` at the end of every step (for pictures of the
        circuit at work); pass them to :meth:`run`."""
        groups = {g.name.removeprefix(f"{self.network.name.removesuffix('_network')}_"): g for g in self._groups() if g is not None}
        return {pop: b2.StateMonitor(groups[pop], list(v), record=True, when="end",
                                     name=f"{self.network.name}_steps_{pop}")
                for pop, v in variables.items()}

