"""Activation relaxation (thesis 6.4) as a Brian2 circuit: one population per layer.

==============  ===============  =============================================================
object          pre -> post      role, and the plasticity written in its model
==============  ===============  =============================================================
``X0``          input            clamped to the image
``X{l}``        activity units   ``x`` settles to ``f(a)`` (latched as ``xbar``, ``abar``),
                                 then relaxes to the adjoint; ``XL`` holds ``dL/dxbar_L``
``W{l}``        X_l -> X_{l+1}   forward ``a_in = W xbar`` and ``acur_in = W x``; learning
                                 ``dW += -hx_learn_post * pre_pre`` (``pre = xbar``, or ``x``
                                 under R8); under weight transport it also sends the
                                 activity down: ``fb_pre = w hx_post``
``B{l}``        X_{l+1} -> X_l   separate backward weights (fixed random or learned:
                                 ``dB += -hx_learn_pre * pre_post``)
==============  ===============  =============================================================

The relaxations are the shared :class:`~algorithms.spec.Relaxations` (backward pathway,
derivative use, forward-pass options R5-R8); the schedule is Jacobi (see
:mod:`circuits.drive`). ``Kernel.NUMBA`` computes the dense ``W``/``B`` pathways and their
Hebbian products with numba kernels on the same schedule. Checked against :mod:`algorithms.ar` in ``tests/test_circuits.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import brian2 as b2
import numpy as np
import torch

from algorithms.ar import check_ar_spec
from algorithms.graph import Loss
from algorithms.pc import PCParams, init_params
from algorithms.spec import BackwardPathway, BatchReduction, DerivativeUse, PassValue, PCSpec

from . import equations as eq
from . import kernels as kn
from .base import (Circuit, DenseWeights, bias_plasticity_code, claim, once_per_sample,
                   pathway)
from .drive import (ORDER_CLAMPED, ORDER_STAGE1, ORDER_STAGE2, ORDER_STORE, STEP,
                    CircuitError, Kernel, Phases, Target, check_target_kernel, builds_on_target)
from .spiking import SpikeCoding, SpikingARCircuit, build_spiking_ar_circuit

__all__ = ["ARCircuit", "build_ar_circuit"]

_GRADIENT = {Loss.MSE_SUM: "2 * ({y} - target)", Loss.MSE_HALF: "({y} - target)"}


@dataclass
class ARCircuit(Circuit):
    """An activation-relaxation circuit: ``values[l]`` is ``X{l}`` (``l = 0..L``)."""

    loss: Loss = Loss.MSE_SUM

    def relax(self, x: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor
              ) -> dict[str, np.ndarray]:
        """Relax every sample without learning; returns ``x{l}`` for ``l = 1..L`` (the
        relaxed activities, ``n x n_l``; ``x{L}`` is the clamped loss gradient)."""
        L = self.spec.n_layers
        mons = self.relaxed_monitors({f"X{l}": ("x",) for l in range(1, L + 1)})
        self.run(x, target, learn=False, monitors=mons)
        return {f"x{l}": np.asarray(mons[f"X{l}"].x).T[1:].copy() for l in range(1, L + 1)}

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """The feedforward output ``f(a_L)`` latched by the output units (``n x n_L``)."""
        ph = Phases(self.phases.settle, 0)
        L = self.spec.n_layers
        mons = self.relaxed_monitors({f"X{L}": ("xbar",)}, ph)
        self.run(x, None, learn=False, phases=ph, monitors=mons)
        return np.asarray(mons[f"X{L}"].xbar).T[1:].copy()


@builds_on_target
def build_ar_circuit(spec: PCSpec, params: PCParams | None = None, *,
                     loss: Loss = Loss.MSE_SUM, init_from_forward: bool = True,
                     target: Target = Target.CYTHON, kernel: Kernel = Kernel.BRIAN2,
                     name: str = "ar", coding: SpikeCoding | None = None,
                     relax_input: bool = False) -> ARCircuit | SpikingARCircuit:
    """Build the AR circuit of ``spec`` (relaxations as in :mod:`algorithms.ar`) with
    ``params`` (default ``init_params(spec)``), output clamped at ``dL/dy`` of ``loss``.
    With a ``coding``, the spiking circuit of :mod:`circuits.spiking`. ``relax_input``
    (:class:`algorithms.ar.ActivationRelaxationNetwork`'s option) is not built: ``X0`` is
    clamped to the image."""
    if relax_input is not False:
        raise CircuitError("relax_input: the AR circuit clamps X0 to the image; relaxing the "
                           "input layer (the authors' code) is only in algorithms.ar")
    if coding is not None:
        if kernel is not Kernel.BRIAN2:
            raise CircuitError("kernel: spiking circuits run Brian2 synapses (Kernel.BRIAN2)")
        return build_spiking_ar_circuit(spec, params, coding=coding, loss=loss,
                                        init_from_forward=init_from_forward, target=target,
                                        name=name)
    check_ar_spec(spec)
    if spec.batch_reduction is not BatchReduction.SUM:
        raise CircuitError("batch_reduction: the circuit implements SUM only")
    if loss not in _GRADIENT:
        raise CircuitError(f"loss: the circuit clamps the output at a local gradient "
                           f"(MSE_SUM or MSE_HALF); {loss.name} needs a softmax across units")
    check_target_kernel(target, kernel)
    r, fp = spec.relaxations, spec.relaxations.forward_pass
    L, sizes = spec.n_layers, spec.sizes
    phases = Phases(settle=L, relax=spec.inference_steps)
    clock = b2.Clock(dt=STEP, name=f"{name}_clock")
    learn_dt = phases.period * STEP
    sample_clock = b2.Clock(dt=learn_dt, name=f"{name}_sample_clock")

    def gain(l: int, which: PassValue, dropped: bool) -> str:
        if dropped:
            return "1.0"
        df = eq.DF[spec.activation_of(l)]
        return df.format(a="abar" if which is PassValue.FROZEN else "acur")

    groups: list[b2.NeuronGroup] = [b2.NeuronGroup(sizes[0], eq.AR_INPUT, clock=clock,
                                                   name=f"{name}_X0")]
    groups[0].run_regularly(eq.CLAMP.format(var="x", source="x_in"), clock=sample_clock,
                            when="groups", order=ORDER_CLAMPED, name=f"{name}_X0_clamp")
    for l in range(1, L + 1):
        f = eq.F[spec.activation_of(l)].format(a="a")
        out = l == L
        model = eq.AR_UNIT.format(
            relax_term="0 / step" if out else "relaxing(t) * (fb - x) / tau_v",
            x_settle=(_GRADIENT[loss].format(y=f) if out else (f if init_from_forward else "0")),
            f=f,
            h=gain(l, fp.gain_in_relaxation, r.derivative is not DerivativeUse.KEPT),
            h_learn=gain(l, fp.gain_in_update, r.derivative is DerivativeUse.DROPPED_EVERYWHERE),
            extra="target = y_in(t, i) : 1" if out else "")
        g = b2.NeuronGroup(sizes[l], model, method="euler", clock=clock, order=0,
                           name=f"{name}_X{l}")
        g.run_regularly(eq.STORE_AR, when="groups", order=ORDER_STORE, name=f"{name}_X{l}_store")
        if spec.use_bias:
            g.run_regularly(bias_plasticity_code("-hx_learn"), dt=learn_dt, when="start",
                            order=-2, name=f"{name}_X{l}_learn")
        groups.append(g)

    pathways: dict[str, b2.Synapses] = {}

    def synapses(key: str, pre: b2.NeuronGroup, post: b2.NeuronGroup, model: str,
                 learn: str | None) -> None:
        pathways[key] = pathway(f"{name}_{key}", pre, post, model, clock=clock,
                                learn_dt=learn_dt, learn=learn, decays=True)

    dense: dict[str, DenseWeights] = {}
    for l in range(L):
        pre = "xbar" if (l == 0 or fp.presynaptic_in_update is PassValue.FROZEN) else "x"
        has_b = r.has_backward_weights and l >= 1
        if kernel is Kernel.NUMBA:
            shape = (sizes[l + 1], sizes[l])
            dense[f"W{l}"] = DenseWeights(np.zeros(shape), np.zeros(shape), True, True)
            if has_b:
                dense[f"B{l}"] = DenseWeights(np.zeros(shape[::-1]), np.zeros(shape[::-1]), True,
                                              r.backward is BackwardPathway.LEARNED)
            continue
        model = ("w : 1\ndw_acc : 1\na_in_post = w * xbar_pre : 1 (summed)\n"
                 "acur_in_post = w * x_pre : 1 (summed)")
        if r.backward is BackwardPathway.TRANSPOSE and l >= 1:
            model += "\nfb_pre = w * hx_post : 1 (summed)"
        synapses(f"W{l}", groups[l], groups[l + 1], model, f"-hx_learn_post * {pre}_pre")
        if has_b:
            learned = r.backward is BackwardPathway.LEARNED
            synapses(f"B{l}", groups[l + 1], groups[l],
                     "w : 1\ndw_acc : 1\nfb_post = w * hx_pre : 1 (summed)",
                     f"-hx_learn_pre * {pre}_post" if learned else None)

    net = claim(b2.Network(*groups, *pathways.values(), name=f"{name}_network"))
    circuit = ARCircuit(spec, net, groups, [None, *groups[1:]], pathways, phases, target,
                        kernel, dense, loss=loss)
    circuit.sample_clocks = [sample_clock]
    if kernel is Kernel.NUMBA:
        _add_numba_kernels(circuit, clock)
    else:
        once_per_sample(pathways["W0"], sample_clock)
    circuit.set_params(params if params is not None else init_params(spec))
    return circuit


def _add_numba_kernels(c: ARCircuit, clock: b2.Clock) -> None:
    """Dense AR pathways as numba kernels on the summed variables' schedule: stage 1 (forward
    inputs ``W xbar`` and ``W x``; the clamped input's once per sample), stage 2 (the activity
    sent down, ``W' (h x)`` or ``B (h x)``) and learning at sample boundaries."""
    spec, r = c.spec, c.spec.relaxations
    fp = r.forward_pass
    L = spec.n_layers
    live: dict[tuple[int, str], np.ndarray] = {}

    def arr(l: int, v: str) -> np.ndarray:
        a = live.get((l, v))
        if a is None:
            name = "x" if (l == 0 and v == "xbar") else v  # X0's xbar is x
            a = live[(l, v)] = c.values[l].variables[name].get_value()
        return a

    timestep = clock.variables["timestep"].get_value()
    presyn = ["xbar" if (l == 0 or fp.presynaptic_in_update is PassValue.FROZEN) else "x"
              for l in range(L)]

    def stage1() -> None:
        first_step = int(timestep[0]) % c.period_now == 0
        for l in range(0 if first_step else 1, L):
            w = c.dense[f"W{l}"].w
            kn.matvec(w, arr(l, "xbar"), arr(l + 1, "a_in"))
            kn.matvec(w, arr(l, "x"), arr(l + 1, "acur_in"))

    def stage2() -> None:
        for l in range(1, L):
            b = c.dense.get(f"B{l}")
            if b is None:
                kn.matvec_t(c.dense[f"W{l}"].w, arr(l + 1, "hx"), arr(l, "fb"))
            else:
                kn.matvec(b.w, arr(l + 1, "hx"), arr(l, "fb"))

    def learn() -> None:
        acc_g, apply_g, period = c._gates
        m = int(timestep[0]) // period
        if m >= len(acc_g) or acc_g[m] == 0.0:
            return
        for l in range(L):
            post, pre = arr(l + 1, "hx_learn"), arr(l, presyn[l])
            kn.hebb(c.dense[f"W{l}"].acc, post, pre, -1.0)
            b = c.dense.get(f"B{l}")
            if b is not None and b.plastic:
                kn.hebb(b.acc.T, post, pre, -1.0)
        if apply_g[m] != 0.0:
            clamp = spec.update_clamp if spec.update_clamp is not None else math.inf
            for d in c.dense.values():
                if d.plastic:
                    kn.apply_update(d.w, d.acc, spec.learning_rate,
                                    r.kp_decay if d.decays else 0.0, clamp)

    name = c.network.name
    c.network.add(
        b2.NetworkOperation(stage1, clock=clock, when="groups", order=ORDER_STAGE1,
                            name=f"{name}_numba_stage1"),
        b2.NetworkOperation(stage2, clock=clock, when="groups", order=ORDER_STAGE2,
                            name=f"{name}_numba_stage2"),
        b2.NetworkOperation(learn, dt=c.phases.period * STEP, when="start", order=-3,
                            name=f"{name}_numba_learn"))
