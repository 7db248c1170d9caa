"""Supervised predictive coding as an explicit Brian2 microcircuit.

:func:`build_pc_circuit` turns the :class:`~algorithms.spec.PCSpec` that builds the torch
network into a ``Network`` of populations and pathways (``l`` = layer, ``L`` = output):

==============  ===============  =============================================================
object          pre -> post      role, and the plasticity written in its model
==============  ===============  =============================================================
``V{l}``        value neurons    ``v``: clamped (``V0`` image, ``VL`` label) or relaxing
``E{l}``        error neurons    ``eps = vin - f(a)`` (or ``v - psi f(a)``, below), gain
                                 ``f'(a)`` local; ``l = 1..L``
``W{l}``        V_l -> E_{l+1}   top-down prediction ``a_in = W u``; Hebbian
                                 ``dW += e_learn_post * u_pre``; under weight transport it
                                 also carries the bottom-up error ``fb_pre = w e_inf_post``
``B{l}``        E_{l+1} -> V_l   bottom-up error through separate weights (fixed random, or
                                 learned: ``dB += e_learn_pre * u_post``)
``VE{l}``       V_l -> E_l       one-to-one ``vin = v``; or, with ``psi`` on the value
                                 (``PsiPlacement.VALUE``), dense ``vin = psi v`` (learned:
                                 ``dpsi += -eps_post * v_pre``; under ``PSI_TRANSPOSE`` also
                                 ``own_pre = w eps_post``)
``PE{l}``       E_l -> E_l       only with ``psi`` on the prediction
                                 (``PsiPlacement.PREDICTION``, the default): dense
                                 ``pin = psi mu`` from the layer's stored predictions
                                 ``mu = f(a)``, and ``eps = v - pin``; learned by the authors'
                                 rule ``dpsi += -1/2 eps_post * mu_pre``
``EV{l}``       E_l -> V_l       one-to-one: own error ``own = eps`` and the settling
                                 prediction ``pred = f(a)``
==============  ===============  =============================================================

Dense ``psi`` lives on hidden layers only; its weights are ``psi{l}`` in :meth:`weights`
whichever pathway carries them. With ``psi`` on the prediction the error neurons store
``mu`` (``ORDER_PREDICTION``) and sum ``psi mu`` (``ORDER_PSI``) before storing ``eps``
(see :mod:`circuits.drive`); other circuits keep the shorter schedule. Under
``fixed_predictions`` ``mu`` is the frozen prediction (``a_in`` reads the latched ``vbar``),
as in the torch backend.

Every relaxation of the spec is a different wiring or plasticity of these pathways. With
``Kernel.NUMBA`` the dense pathways (``W``, ``B``, ``VE``/``PE``) become numba kernels in
``NetworkOperation``s with the same schedule; the populations and one-to-one pathways stay
Brian2 objects. The circuit runs in float64 whatever ``spec.dtype`` says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import brian2 as b2
import numpy as np
import torch

from algorithms.dynamical import LatticeSpec
from algorithms.generative import GenerativeSpec
from algorithms.pc import PCParams, init_params
from algorithms.spec import (BackwardPathway, BatchReduction, DerivativeUse, ErrorConnections,
                             ErrorToValue, HiddenInit, PCSpec, PsiPlacement)

from . import equations as eq
from . import kernels as kn
from .base import (Circuit, DenseWeights, bias_plasticity_code, claim, once_per_sample,
                   pathway)
from .drive import (ORDER_CLAMPED, ORDER_PREDICTION, ORDER_PSI, ORDER_STAGE1, ORDER_STAGE2,
                    ORDER_STORE, STEP,
                    CircuitError, Kernel, Phases, Target, check_target_kernel, builds_on_target)
from .generative import (DynamicalCircuit, GenerativeCircuit, build_dynamical_circuit,
                         build_generative_circuit)
from .spiking import SpikeCoding, SpikingPCCircuit, build_spiking_pc_circuit

__all__ = ["PCCircuit", "build_pc_circuit", "check_circuit_spec"]


def check_circuit_spec(spec: PCSpec) -> None:
    """Reject what the rate circuit does not implement, naming the field."""
    if spec.hidden_init is not HiddenInit.FEEDFORWARD:
        raise CircuitError("hidden_init: the circuit settles value neurons with the "
                           "feedforward sweep; HiddenInit.RANDOM is torch-only")
    if spec.batch_reduction is not BatchReduction.SUM:
        raise CircuitError("batch_reduction: synapses accumulate per-sample products, so "
                           "the circuit implements SUM only")
    if not spec.relaxations.forward_pass.all_frozen:
        raise CircuitError("forward_pass: an activation-relaxation option; use "
                           "fixed_predictions for predictive coding")
    if spec.output_precision != 1.0:
        raise CircuitError("output_precision: the circuits implement unit output precision; "
                           "weak output clamping is torch-only")


@dataclass
class PCCircuit(Circuit):
    """A predictive-coding circuit: ``values[l]`` is ``V{l}`` (``l = 0..L``) and
    ``errors[l]`` is ``E{l}`` (``None`` at 0)."""

    errors: list[b2.NeuronGroup | None] = field(default_factory=list)

    def relax(self, x: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor
              ) -> dict[str, np.ndarray]:
        """Relax every sample without learning; returns the relaxed ``v{l}`` (hidden value
        neurons) and ``eps{l}`` (every error population), each ``n x n_l``."""
        L = self.spec.n_layers
        want: dict[str, tuple[str, ...]] = {f"V{l}": ("v",) for l in range(1, L)}
        want.update({f"E{l}": ("eps",) for l in range(1, L + 1)})
        mons = self.relaxed_monitors(want)
        self.run(x, target, learn=False, monitors=mons)
        out = {}
        for l in range(1, L):
            out[f"v{l}"] = np.asarray(mons[f"V{l}"].v).T[1:].copy()
        for l in range(1, L + 1):
            out[f"eps{l}"] = np.asarray(mons[f"E{l}"].eps).T[1:].copy()
        return out

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """The circuit's feedforward prediction ``f(a_L)`` at the output error neurons
        (settle only, no relaxation): ``n x n_L``."""
        ph = Phases(self.phases.settle, 0)
        mons = self.relaxed_monitors({f"E{self.spec.n_layers}": ("mu",)}, ph)
        self.run(x, None, learn=False, phases=ph, monitors=mons)
        return np.asarray(next(iter(mons.values())).mu).T[1:].copy()


@builds_on_target
def build_pc_circuit(spec: PCSpec | GenerativeSpec | LatticeSpec, params: object = None, *,
                     target: Target = Target.CYTHON, kernel: Kernel = Kernel.BRIAN2,
                     name: str = "pc", coding: SpikeCoding | None = None
                     ) -> PCCircuit | SpikingPCCircuit | GenerativeCircuit | DynamicalCircuit:
    """Build the circuit of ``spec`` with ``params`` (default: ``init_params(spec)``, the
    same initial weights as the torch network). ``name`` prefixes every Brian2 object (the
    Cython cache key includes object names, so fixed names avoid recompiles). With a
    ``coding``, the spiking circuit of :mod:`circuits.spiking` (Brian2 synapses only).

    A ``GenerativeSpec`` (params: the ``theta`` list) or ``LatticeSpec`` (params: its
    ``Params``) builds the unsupervised circuits of :mod:`circuits.generative` (rate coding,
    Brian2 synapses)."""
    if isinstance(spec, (GenerativeSpec, LatticeSpec)):
        if coding is not None or kernel is not Kernel.BRIAN2:
            raise CircuitError("generative and dynamical circuits are rate circuits with "
                               "Brian2 synapses: no coding, Kernel.BRIAN2")
        if isinstance(spec, GenerativeSpec):
            return build_generative_circuit(spec, params, target=target,  # type: ignore[arg-type]
                                            name=name)
        return build_dynamical_circuit(spec, params, target=target,  # type: ignore[arg-type]
                                       name=name)
    if params is not None and not isinstance(params, PCParams):
        raise CircuitError(f"params: a PCParams for a PCSpec, got {type(params).__name__}")
    if coding is not None:
        if kernel is not Kernel.BRIAN2:
            raise CircuitError("kernel: spiking circuits run Brian2 synapses (Kernel.BRIAN2)")
        return build_spiking_pc_circuit(spec, params, coding=coding, target=target,
                                        name=name)
    check_circuit_spec(spec)
    check_target_kernel(target, kernel)
    r = spec.relaxations
    L, sizes = spec.n_layers, spec.sizes
    phases = Phases(settle=max(L - 1, 0), relax=spec.inference_steps)
    clock = b2.Clock(dt=STEP, name=f"{name}_clock")
    learn_dt = phases.period * STEP
    sample_clock = b2.Clock(dt=learn_dt, name=f"{name}_sample_clock")
    dense_kernel = kernel is Kernel.NUMBA
    drop_inf = r.derivative is not DerivativeUse.KEPT
    drop_learn = r.derivative is DerivativeUse.DROPPED_EVERYWHERE
    u_expr = "vbar" if spec.fixed_predictions else "v"
    psi_on_mu = r.has_psi and r.psi_placement is PsiPlacement.PREDICTION

    values: list[b2.NeuronGroup] = []
    errors: list[b2.NeuronGroup | None] = [None]
    for l in range(L + 1):
        if l in (0, L):
            src = "x_in" if l == 0 else "y_in"
            g = b2.NeuronGroup(sizes[l], eq.CLAMPED_VALUE, clock=clock, name=f"{name}_V{l}")
            g.run_regularly(eq.CLAMP.format(var="v", source=src), clock=sample_clock,
                            when="groups", order=ORDER_CLAMPED, name=f"{name}_V{l}_clamp")
        else:
            g = b2.NeuronGroup(sizes[l], eq.VALUE_NEURON.format(u=u_expr), method="euler",
                               clock=clock, order=0, name=f"{name}_V{l}")
        values.append(g)
    for l in range(1, L + 1):
        f, df = eq.activation_strings(spec.activation_of(l))
        dense_psi = psi_on_mu and l < L  # eps = v - psi f(a): psi f(a) summed from E_l
        model = eq.ERROR_NEURON.format(
            f=f, e_inf="eps" if drop_inf else f"{df} * eps",
            e_learn="eps" if drop_learn else f"{df} * eps",
            mu_hat="pin" if dense_psi else "mu_now",
            extra=eq.PSI_PREDICTION_INPUT if dense_psi else "")
        g = b2.NeuronGroup(sizes[l], model, clock=clock, order=-5, name=f"{name}_E{l}")
        if dense_psi:
            g.run_regularly(eq.STORE_PREDICTION, when="groups", order=ORDER_PREDICTION,
                            name=f"{name}_E{l}_store_mu")
        g.run_regularly(eq.STORE_ERRORS, when="groups", order=ORDER_STORE,
                        name=f"{name}_E{l}_store")
        if spec.use_bias:
            g.run_regularly(bias_plasticity_code("e_learn"), dt=learn_dt, when="start",
                            order=-2, name=f"{name}_E{l}_learn")
        errors.append(g)

    pathways: dict[str, b2.Synapses] = {}
    dense: dict[str, DenseWeights] = {}
    init = params if params is not None else init_params(spec)

    def synapses(key: str, pre: b2.NeuronGroup, post: b2.NeuronGroup, model: str,
                 one_to_one: bool = False, learn: str | None = None,
                 decays: bool = False) -> None:
        pathways[key] = pathway(f"{name}_{key}", pre, post, model, clock=clock,
                                learn_dt=learn_dt, one_to_one=one_to_one, learn=learn,
                                decays=decays)

    def dense_matrix(key: str, rows: int, cols: int, decays: bool, plastic: bool) -> None:
        dense[key] = DenseWeights(np.zeros((rows, cols)), np.zeros((rows, cols)), decays, plastic)

    for l in range(L):
        # top-down prediction V_l -> E_{l+1}; under weight transport the same synapse also
        # sums w * e back into its presynaptic value neuron (no second weight copy)
        key = f"W{l}"
        if dense_kernel:
            dense_matrix(key, sizes[l + 1], sizes[l], True, True)
            continue
        model = "w : 1\ndw_acc : 1\na_in_post = w * u_pre : 1 (summed)"
        if r.backward is BackwardPathway.TRANSPOSE and l >= 1:
            model += "\nfb_pre = w * e_inf_post : 1 (summed)"
        synapses(key, values[l], errors[l + 1], model, learn="e_learn_post * u_pre",
                 decays=True)
    for l in range(1, L):
        if r.has_backward_weights:
            key = f"B{l}"
            learned = r.backward is BackwardPathway.LEARNED
            if dense_kernel:
                dense_matrix(key, sizes[l], sizes[l + 1], True, learned)
            else:
                synapses(key, errors[l + 1], values[l],
                         "w : 1\ndw_acc : 1\nfb_post = w * e_inf_pre : 1 (summed)",
                         learn="e_learn_pre * u_post" if learned else None, decays=True)
        key = f"VE{l}"
        learned = r.error_connections is ErrorConnections.LEARNED_PSI
        if not r.has_psi or psi_on_mu:
            synapses(key, values[l], errors[l], "vin_post = v_pre : 1 (summed)",
                     one_to_one=True)
            if not psi_on_mu:
                continue
            # E_l -> E_l: error neuron i sums psi_ij mu_j from the stored predictions of its
            # layer (after ORDER_PREDICTION, before ORDER_STORE); the authors' psi rule
            key = f"PE{l}"
            if dense_kernel:
                dense_matrix(key, sizes[l], sizes[l], False, learned)
                continue
            synapses(key, errors[l], errors[l],
                     "w : 1\ndw_acc : 1\npin_post = w * mu_pre : 1 (summed)",
                     learn="-0.5 * eps_post * mu_pre" if learned else None)
            for updater in pathways[key].summed_updaters.values():
                updater.order = ORDER_PSI
            continue
        if dense_kernel:
            dense_matrix(key, sizes[l], sizes[l], False, learned)
            continue
        model = "w : 1\ndw_acc : 1\nvin_post = w * v_pre : 1 (summed)"
        if r.error_to_value is ErrorToValue.PSI_TRANSPOSE:
            model += "\nown_pre = w * eps_post : 1 (summed)"
        synapses(key, values[l], errors[l], model,
                 learn="-eps_post * v_pre" if learned else None)
    synapses(f"VE{L}", values[L], errors[L], "vin_post = v_pre : 1 (summed)", one_to_one=True)
    for l in range(1, L):
        own = ("" if r.error_to_value is ErrorToValue.PSI_TRANSPOSE
               else "own_post = eps_pre : 1 (summed)\n")
        synapses(f"EV{l}", errors[l], values[l], own + "pred_post = mu_pre : 1 (summed)",
                 one_to_one=True)

    populations = [*values, *[e for e in errors if e is not None]]
    net = claim(b2.Network(*populations, *pathways.values(), name=f"{name}_network"))
    circuit = PCCircuit(spec, net, values, errors, pathways, phases, target, kernel, dense,
                        errors=errors)
    circuit.sample_clocks = [sample_clock]
    once_per_sample(pathways[f"VE{L}"], sample_clock)  # the label's one-to-one pathway
    if not dense_kernel:
        once_per_sample(pathways["W0"], sample_clock)
    if dense_kernel:
        _add_numba_kernels(circuit)
    circuit.set_params(init)
    return circuit


def _add_numba_kernels(c: PCCircuit) -> None:
    """Dense pathways as numba kernels in ``NetworkOperation``s with the schedule of the
    summed variables they replace (stage 1, stage 2, learning; and the ``psi mu`` sum at
    ``ORDER_PSI`` with ``psi`` on the prediction)."""
    spec, r = c.spec, c.spec.relaxations
    L = spec.n_layers
    clock = c.values[0].clock
    codes = [0] + [kn.ACT_CODE[spec.activation_of(l)] for l in range(1, L + 1)]
    drop_inf = r.derivative is not DerivativeUse.KEPT
    drop_learn = r.derivative is DerivativeUse.DROPPED_EVERYWHERE
    transpose = r.backward is BackwardPathway.TRANSPOSE
    psi_t = r.error_to_value is ErrorToValue.PSI_TRANSPOSE
    psi_on_mu = r.has_psi and r.psi_placement is PsiPlacement.PREDICTION
    psi_on_v = r.has_psi and not psi_on_mu
    live: dict[tuple[str, str], np.ndarray] = {}

    def arr(g: b2.NeuronGroup, v: str) -> np.ndarray:
        """The live runtime array of ``g.v`` (stable for the group's lifetime; cached, as the
        lookup costs about a microsecond and the kernels need dozens per step)."""
        key = (g.name, v)
        a = live.get(key)
        if a is None:
            a = live[key] = g.variables[v].get_value()
        return a

    uvar = ["v"] + ["vbar" if spec.fixed_predictions else "v"] * (L - 1)
    buf = {l: (np.zeros(spec.sizes[l]), np.zeros(spec.sizes[l]), np.zeros(spec.sizes[l]))
           for l in range(1, L + 1)}  # eps, e_inf, e_learn

    def u_of(l: int) -> np.ndarray:
        return arr(c.values[l], uvar[l])

    def signals(l: int) -> None:
        e = c.errors[l]
        eps, e_inf, e_learn = buf[l]
        if psi_on_mu and l < L:
            kn.error_signals_psi(codes[l], arr(e, "a_in"), arr(e, "b"), arr(e, "vin"),
                                 arr(e, "pin"), not drop_inf, not drop_learn, eps, e_inf,
                                 e_learn)
            return
        kn.error_signals(codes[l], arr(e, "a_in"), arr(e, "b"), arr(e, "vin"),
                         not drop_inf, not drop_learn, eps, e_inf, e_learn)

    timestep = clock.variables["timestep"].get_value()  # live int64 array, cheaper than t

    def stage1() -> None:
        first_step = int(timestep[0]) % c.period_now == 0
        for l in range(0 if first_step else 1, L):  # the clamped input changes per sample
            kn.matvec(c.dense[f"W{l}"].w, u_of(l), arr(c.errors[l + 1], "a_in"))
        if psi_on_v:
            for l in range(1, L):
                kn.matvec(c.dense[f"VE{l}"].w, arr(c.values[l], "v"), arr(c.errors[l], "vin"))

    def psi_prediction() -> None:
        for l in range(1, L):  # psi mu from the predictions stored at ORDER_PREDICTION
            e = c.errors[l]
            kn.matvec(c.dense[f"PE{l}"].w, arr(e, "mu"), arr(e, "pin"))

    def stage2() -> None:
        for l in range(1, L + 1):
            signals(l)
        for l in range(1, L):
            fb = arr(c.values[l], "fb")
            if transpose:
                kn.matvec_t(c.dense[f"W{l}"].w, buf[l + 1][1], fb)
            else:
                kn.matvec(c.dense[f"B{l}"].w, buf[l + 1][1], fb)
            if psi_t:
                kn.matvec_t(c.dense[f"VE{l}"].w, buf[l][0], arr(c.values[l], "own"))

    def learn(t: b2.Quantity) -> None:
        acc_g, apply_g, period = c._gates
        m = int(round(float(np.asarray(t)) / float(period * STEP)))
        if m >= len(acc_g) or acc_g[m] == 0.0:
            return
        for l in range(1, L + 1):
            signals(l)
        for l in range(L):
            kn.hebb(c.dense[f"W{l}"].acc, buf[l + 1][2], u_of(l), 1.0)
            if r.backward is BackwardPathway.LEARNED and l >= 1:
                kn.hebb(c.dense[f"B{l}"].acc.T, buf[l + 1][2], u_of(l), 1.0)
        if r.error_connections is ErrorConnections.LEARNED_PSI:
            for l in range(1, L):
                if psi_on_mu:
                    kn.hebb(c.dense[f"PE{l}"].acc, buf[l][0], arr(c.errors[l], "mu"), -0.5)
                else:
                    kn.hebb(c.dense[f"VE{l}"].acc, buf[l][0], arr(c.values[l], "v"), -1.0)
        if apply_g[m] != 0.0:
            s = spec
            clamp = s.update_clamp if s.update_clamp is not None else math.inf
            for d in c.dense.values():
                if d.plastic:
                    kn.apply_update(d.w, d.acc, s.learning_rate,
                                    r.kp_decay if d.decays else 0.0, clamp)

    ops = [b2.NetworkOperation(stage1, clock=clock, when="groups", order=ORDER_STAGE1,
                               name=f"{c.network.name}_numba_stage1"),
           b2.NetworkOperation(stage2, clock=clock, when="groups", order=ORDER_STAGE2,
                               name=f"{c.network.name}_numba_stage2"),
           b2.NetworkOperation(learn, dt=c.phases.period * STEP, when="start", order=-3,
                               name=f"{c.network.name}_numba_learn")]
    if psi_on_mu:
        ops.append(b2.NetworkOperation(psi_prediction, clock=clock, when="groups",
                                       order=ORDER_PSI, name=f"{c.network.name}_numba_psi"))
    c.network.add(*ops)
    c._netops = ops
