"""Spiking predictive-coding and activation-relaxation circuits.

The rate circuits of :mod:`circuits.pc` and :mod:`circuits.ar` with every inter-population
signal carried by spikes. Each unit's signed quantity is coded by an ON/OFF pair of spike
trains (leaky integrate-and-fire or Poisson cells, :class:`Encoding`), decoded at every
receiving neuron by an exponential synaptic trace (:data:`circuits.equations.SPIKE_CODE`).

One sample lasts ``settle + relax + hold`` (:class:`SpikeCoding`):

* **settle**: the feedforward sweep; each value neuron follows the dendritic prediction of
  its own error unit (one-to-one, within the unit); bottom-up errors are gated off;
* **relax**: ``tau_v dv/dt = B e_{l+1} - eps_l`` with both errors decoded from spikes;
* **hold**: value neurons are still and keep firing; every pair's spikes are counted (the
  readout of :meth:`SpikingPCCircuit.relax`) and every plastic synapse integrates its
  Hebbian product from spikes and traces: at each postsynaptic error spike (ON: ``+``, OFF:
  ``-``) ``dw_acc += gain_learn_post * tr_pre * k`` where ``tr_pre`` is the presynaptic
  neuron's trace of its own spikes and ``k = range_e / (max_rate * hold)``, so the sum over
  the window estimates the rate rule's ``f'(a) eps u``.

The accumulated products are applied per batch at the next sample boundary, as in the rate
circuits. :meth:`SpikeCoding.rate_spec` gives the rate spec whose Euler iteration is the
spiking circuit's relaxation ODE (``gamma = dt / tau_v``, ``T = relax / dt`` steps), the
reference of the correspondence tests and curves.

Dale's law (:attr:`SpikeCoding.dale`): every ON/OFF cell is excitatory; each signed pathway
is split into an excitatory part carrying ``max(w, 0)`` and an inhibitory part carrying
``max(-w, 0)`` through a one-to-one inhibitory relay population (one interneuron per
presynaptic cell and event, which fires one step after its cell), so every synapse has a
fixed sign. The learned quantity is still ``w`` (the excitatory minus the inhibitory
efficacy).

Dense error connections ``psi`` (hidden layers), as in :mod:`circuits.pc`:

==============  ===============  =============================================================
pathway         pre -> post      with ``psi`` on ...
==============  ===============  =============================================================
``VE{l}``       V_l -> E_l       the value (``PsiPlacement.VALUE``): dense ``psi``, the error
                                 dendrite decodes ``psi v``; at each error spike
                                 ``dw_acc += -eps tr_pre`` (``-eps v``); under
                                 ``PSI_TRANSPOSE`` the error spikes travel back as ``psi^T
                                 eps``. Otherwise one-to-one ``v``.
``EP{l}``       E_l -> P_l       the prediction (``PsiPlacement.PREDICTION``, the default):
                                 one-to-one within the unit; the prediction pairs ``P{l}``
                                 code ``mu = f(a)`` (within ``value_range``)
``PE{l}``       P_l -> E_l       the prediction: dense ``psi``, the error dendrite decodes
                                 ``pin = psi mu`` and codes ``eps = v - pin``; at each error
                                 spike ``dw_acc += -1/2 eps tr_pre`` (the authors' rule)
==============  ===============  =============================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import brian2 as b2
import numpy as np
import torch

from algorithms.ar import check_ar_spec
from algorithms.graph import Loss
from algorithms.pc import PCParams, init_params
from algorithms.spec import (BackwardPathway, BatchReduction, DerivativeUse, ErrorConnections,
                             ErrorToValue, PassValue, PCSpec, PsiPlacement)

from . import equations as eq
from .base import Circuit, all_to_all, claim
from .drive import ORDER_CLAMPED, CircuitError, Kernel, Phases, Target, builds_on_target

__all__ = ["Encoding", "SpikeCoding", "SpikingARCircuit", "SpikingPCCircuit",
           "build_spiking_ar_circuit", "build_spiking_pc_circuit", "decode_counts"]


class Encoding(Enum):
    """How an ON/OFF cell turns its rate into spikes."""

    LIF = "lif"
    """Leaky integrate-and-fire, drive calibrated so a constant input fires at the coded
    rate (deterministic, regular)."""
    POISSON = "poisson"
    """Poisson cells (seeded). A population of ``cells`` independent Poisson cells per ON or
    OFF side is simulated exactly as one Poisson count per step with ``cells`` times the
    rate (superposition); each event carries its count to the synapses."""


@dataclass(frozen=True)
class SpikeCoding:
    """Rate-coding parameters of a spiking circuit. Times in seconds, rates in Hz.

    Defaults: LIF cells up to 1 kHz (a pair stands for a population of slower cells);
    values coded within ``|u| <= 1``, hidden errors within ``|eps| <= 0.1`` and output
    errors within 0.25 (beyond, a cell saturates at ``max_rate``); 5 ms synaptic traces; a
    10 ms value-neuron time constant; per sample 15 ms of settling per hidden layer, 30 ms of
    relaxation (3 ``tau_v``) and a 20 ms hold window; 0.2 ms steps.
    """

    encoding: Encoding = Encoding.LIF
    max_rate: float = 1000.0
    value_range: float = 1.0
    error_range: float = 0.1
    output_error_range: float = 0.25
    """Output errors are larger than hidden ones; both saturate early in training (a
    clipped error) and fall within range as the network learns."""
    gradient_range: float = 2.0
    """AR output units code the loss gradient within this range."""
    tau_syn: float = 5e-3
    tau_value: float = 10e-3
    tau_settle: float = 1e-3
    tau_membrane: float = 20e-3
    settle_per_layer: float = 15e-3
    relax: float = 30e-3
    hold: float = 20e-3
    dt: float = 0.2e-3
    cells: int = 1
    """Cells in each ON and each OFF population (Poisson only): decoding noise falls as
    ``1 / sqrt(cells * max_rate)`` while each cell keeps ``max_rate``."""
    dale: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.encoding, Encoding):
            raise CircuitError(f"encoding: must be an Encoding, got {self.encoding!r}")
        for name in ("max_rate", "value_range", "error_range", "output_error_range",
                     "gradient_range", "tau_syn",
                     "tau_value", "tau_settle", "tau_membrane", "settle_per_layer", "hold",
                     "dt"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise CircuitError(f"{name}: must be a positive number, got {v!r}")
        if not isinstance(self.relax, (int, float)) or self.relax < 0:
            raise CircuitError(f"relax: must be >= 0, got {self.relax!r}")
        if self.max_rate * self.dt > 0.5:
            raise CircuitError(f"max_rate * dt = {self.max_rate * self.dt:g}: a cell needs "
                               f"at least two steps per spike; lower max_rate or dt")
        if not isinstance(self.cells, int):
            raise CircuitError(f"cells: must be a positive int, got {self.cells!r}")
        for name in ("tau_syn", "tau_value", "tau_settle", "tau_membrane"):
            if getattr(self, name) < self.dt:
                raise CircuitError(f"{name} = {getattr(self, name)} s is shorter than one "
                                   f"step (dt = {self.dt} s)")
        if self.hold < 2 * self.dt:
            raise CircuitError("hold: the readout window needs at least two steps")
        if not isinstance(self.dale, bool):
            raise CircuitError(f"dale: must be a bool, got {self.dale!r}")
        if not isinstance(self.cells, int) or isinstance(self.cells, bool) or self.cells < 1:
            raise CircuitError(f"cells: must be a positive int, got {self.cells!r}")
        if self.cells > 1 and self.encoding is not Encoding.POISSON:
            raise CircuitError("cells: populations of several cells per side are simulated "
                               "exactly only for Poisson cells (superposition); use "
                               "Encoding.POISSON or cells=1")
        if not isinstance(self.seed, int):
            raise CircuitError(f"seed: must be an int, got {self.seed!r}")

    def steps(self, seconds: float) -> int:
        return int(round(seconds / self.dt))

    def phases(self, n_layers: int, *, hidden_layers_settle: int | None = None) -> Phases:
        """Steps per sample for a network of ``n_layers`` weight layers."""
        k = max(n_layers - 1, 1) if hidden_layers_settle is None else hidden_layers_settle
        return Phases(settle=self.steps(k * self.settle_per_layer), relax=self.steps(self.relax),
                      hold=self.steps(self.hold))

    def rate_spec(self, spec: PCSpec) -> PCSpec:
        """The rate spec whose Jacobi iteration is this circuit's relaxation ODE sampled every
        ``dt``: ``inference_rate = dt / tau_v`` and ``relax / dt`` steps."""
        return spec.replace(inference_rate=self.dt / self.tau_value,
                            inference_steps=self.steps(self.relax))

    def constants(self, hold_steps: int) -> dict[str, object]:
        """The run-namespace constants of the equations (dimensionless except times)."""
        hold = hold_steps * self.dt
        r, ts = self.max_rate, self.tau_syn
        rp = r * self.cells  # the population's maximum rate
        return {
            "tau_s": ts * b2.second, "tau_m": self.tau_membrane * b2.second,
            "tau_settle": self.tau_settle * b2.second, "tau_v": self.tau_value * b2.second,
            "rate_dt": r * self.dt, "cells": float(self.cells), "lif_k": math.log(1.0 - self.dt / self.tau_membrane),
            "range_v": self.value_range, "range_e": self.error_range,
            "range_g": self.gradient_range, "range_o": self.output_error_range,
            "c_v": self.value_range / (rp * ts), "c_e": self.error_range / (rp * ts),
            "c_g": self.gradient_range / (rp * ts), "c_o": self.output_error_range / (rp * ts),
            "k_v": self.value_range / (rp * hold), "k_e": self.error_range / (rp * hold),
            "k_g": self.gradient_range / (rp * hold),
            "k_o": self.output_error_range / (rp * hold),
            "hold_time": hold * b2.second,
        }


def decode_counts(counts: np.ndarray, coding_range: float, coding: SpikeCoding,
                  hold_steps: int) -> np.ndarray:
    """Signed spike counts (ON minus OFF) over a hold window -> the coded quantity."""
    return np.asarray(counts) * coding_range / (coding.max_rate * coding.cells * hold_steps
                                                * coding.dt)


def _apply_code(decays: bool, dale: bool = False) -> str:
    """Apply a batch's accumulated update at a sample boundary (gated by ``apply_gate``).
    A Dale half moves at half the rate and is floored at zero."""
    rate = "0.5 * eta" if dale else "eta"
    new = (f"w * (1 - g_apply * eta * {'decay' if decays else '0'})"
           f" + g_apply * {rate} * clip(dw_acc, -clamp, clamp)")
    return ("g_apply = apply_gate(t)\n"
            f"w = {f'clip({new}, 0, inf)' if dale else new}\n"
            "dw_acc = dw_acc * (1 - g_apply)")


_BIAS_APPLY = ("b = b + apply_gate(t) * eta * clip(b_acc, -clamp, clamp)\n"
               "b_acc = b_acc * (1 - apply_gate(t))")

_RESET_COUNTS = "count = 0"


def _pair_group(name: str, n: int, model: str, *, q: str, rng: str, coding: SpikeCoding,
                clock: b2.Clock, trace_c: str | None, on_code: str = "",
                method: str = "euler") -> b2.NeuronGroup:
    """A population of ``n`` units whose ON/OFF pairs code ``q`` within ``rng``; each
    event updates the hold-window count, the unit's own trace (``trace_c``, if any) and
    runs ``on_code`` (``{s}`` is ``+`` for ON and ``-`` for OFF)."""
    code = eq.SPIKE_CODE.format(q=q, rng=rng)
    if coding.encoding is Encoding.LIF:
        code += eq.LIF_PAIR
        events = dict(eq.LIF_EVENTS)
    else:
        code += eq.POISSON_PAIR
        events = dict(eq.POISSON_EVENTS)
    g = b2.NeuronGroup(n, eq.SAMPLE_TIME + model + code, events=events, method=method, clock=clock, order=0,
                       name=name)
    if coding.encoding is Encoding.POISSON:
        g.run_regularly(eq.POISSON_DRAW, when="thresholds", order=-1, name=f"{name}_draw")
    for ev, s in (("on", "+"), ("off", "-")):
        k = _multiplicity(coding, ev, "")
        lines = [f"count {s}= holding(tp) * {k}"]
        if coding.encoding is Encoding.LIF:
            lines.append(eq.LIF_RESETS[ev])
        if trace_c is not None:
            lines.append(f"tr {s}= {trace_c} * {k}")
        if on_code:
            lines.append(_counted(on_code).format(s=s, n=k, L=eq.LEARNING))
        g.run_on_event(ev, "\n".join(lines), when="resets")
    return g


def _per_sample(g: b2.NeuronGroup, name: str, reset: str, sample_clock: b2.Clock,
                learn_dt: b2.Quantity, bias: bool) -> None:
    """A population's sample-boundary code: clear its readouts (``count`` and ``reset``),
    and apply its bias's accumulated update per batch."""
    g.run_regularly("\n".join(filter(None, [_RESET_COUNTS, reset])), clock=sample_clock,
                    when="start", order=-1, name=f"{name}_reset")
    if bias:
        g.run_regularly(_BIAS_APPLY, dt=learn_dt, when="start", order=-2,
                        name=f"{name}_apply")


def _counted(code: str) -> str:
    """Make every ``x {s}= expr`` of a spike's code count the event's spikes: ``x {s}= {n} *
    expr``."""
    return code.replace("{s}= ", "{s}= {n} * ")


def _multiplicity(coding: SpikeCoding, event: str, side: str) -> str:
    """Spikes an event stands for: 1 for LIF cells, the drawn count of the Poisson
    population (``n_on``/``n_off`` of the ``side``: ``"_pre"``, ``"_post"`` or ``""``)."""
    return "1" if coding.encoding is Encoding.LIF else f"n_{event}{side}"


def _spiking_pathway(name: str, pre: b2.NeuronGroup, post: b2.NeuronGroup, *, clock: b2.Clock,
                     coding: SpikeCoding, learn_dt: b2.Quantity, forward: str | None,
                     backward: str | None = None, plastic: bool = False, decays: bool = False,
                     one_to_one: bool = False, weighted: bool = True, summed: str = "",
                     dale: bool = False) -> list[b2.BrianObject]:
    """A pathway driven by the pre cells' ON/OFF events (``forward``: code with ``{s}`` the
    event's sign; every ``x {s}= ...`` counts the event's spikes) and, if ``backward``, by
    the post cells' events. ``plastic`` adds the batch application of ``dw_acc``. Under
    ``dale`` (weighted all-to-all pathways) the synapses are excitatory (``w >= 0``) and an
    inhibitory relay carries the negative part (:func:`_inhibitory_relay`); returns the
    pathway first, then any relay objects."""
    split = dale and weighted and not one_to_one
    syn = _synapses(name, pre, post, clock=clock, coding=coding, forward=forward,
                    backward=backward, one_to_one=one_to_one, weighted=weighted,
                    summed=summed, sign=1)
    if plastic:
        syn.run_regularly(_apply_code(decays, split), dt=learn_dt, when="start", order=-3,
                          name=f"{name}_apply")
    if not split:
        return [syn]
    return [syn, *_inhibitory_relay(name, pre, post, clock=clock, coding=coding,
                                    forward=forward, backward=backward, plastic=plastic,
                                    decays=decays, learn_dt=learn_dt)]


def _synapses(name: str, pre: b2.NeuronGroup, post: b2.NeuronGroup, *, clock: b2.Clock,
              coding: SpikeCoding, forward: str | None, backward: str | None,
              one_to_one: bool, weighted: bool, summed: str, sign: int) -> b2.Synapses:
    """The Brian2 ``Synapses`` of a pathway; ``sign = -1`` flips every event's sign (the
    inhibitory half of a Dale pathway)."""
    model = ("w : 1\ndw_acc : 1\n" if weighted else "") + summed
    on_pre: dict[str, str] = {}
    on_post: dict[str, str] = {}
    on_event: dict[str, str] = {}
    for ev, s in (("on", "+"), ("off", "-")):
        s_eff = s if sign > 0 else ("-" if s == "+" else "+")
        if forward is not None:
            on_pre[f"up_{ev}"] = _counted(forward).format(
                s=s_eff, w="w", n=_multiplicity(coding, ev, "_pre"), L=eq.LEARNING)
            on_event[f"up_{ev}"] = ev
        if backward is not None:
            on_post[f"down_{ev}"] = _counted(backward).format(
                s=s_eff, n=_multiplicity(coding, ev, "_post"), L=eq.LEARNING)
            on_event[f"down_{ev}"] = ev
    kwargs: dict[str, object] = {}
    if on_pre:
        kwargs["on_pre"] = on_pre
    if on_post:
        kwargs["on_post"] = on_post
    if on_event:
        kwargs["on_event"] = on_event
    syn = b2.Synapses(pre, post, model, clock=clock, name=name, **kwargs)
    if one_to_one:
        syn.connect(j="i")
    else:
        i, j = all_to_all(len(pre), len(post))
        syn.connect(i=i, j=j)
    for updater in syn.summed_updaters.values():
        updater.order = -20
    return syn


_RELAY = """
fire_on : 1      # spikes to relay next step (set by the drive synapses)
fire_off : 1
n_on : 1         # spikes relayed in this step
n_off : 1
dtr/dt = -tr / tau_s : 1   # trace of the relayed spikes (the presynaptic factor)
"""
"""An inhibitory relay population: one interneuron per presynaptic cell and event. It also
sees its cell's gains (``f'(a)``) and latched activity (one-to-one, every step), which its
synapses read where the cell's own synapses would."""

_GAINS = ("gain", "gain_learn", "h", "h_learn", "xbar")


def _inhibitory_relay(name: str, pre: b2.NeuronGroup, post: b2.NeuronGroup, *,
                      clock: b2.Clock, coding: SpikeCoding, forward: str | None,
                      backward: str | None, plastic: bool, decays: bool,
                      learn_dt: b2.Quantity) -> list[b2.BrianObject]:
    """Dale's law for a signed pathway: inhibitory interneurons (one per presynaptic cell
    and event) fire one step after their cell, and their synapses onto ``post`` carry the
    negative part of the weight with every sign flipped. Both halves learn the same local
    product with opposite signs at half the learning rate, floored at zero, so the effective
    weight ``w_exc - w_inh`` moves as the rate rule while neither half is at zero."""
    n = len(pre)
    gains = "".join(f"{g} : 1\n" for g in _GAINS if g in pre.variables)  # (summed) copies
    relay = b2.NeuronGroup(n, _RELAY + gains, events={"on": "fire_on > 0", "off": "fire_off > 0"},
                           method="euler", clock=clock, name=f"{name}_inh")
    for ev in ("on", "off"):
        s = "+" if ev == "on" else "-"  # the trace only serves value cells' relays
        relay.run_on_event(ev, f"n_{ev} = fire_{ev}\nfire_{ev} = 0\ntr {s}= c_v * n_{ev}",
                           when="thresholds", order=1)
    copies = "".join(f"{g}_post = {g}_pre : 1 (summed)\n" for g in _GAINS
                     if g in pre.variables)
    drive = b2.Synapses(pre, relay, copies, on_pre={
        f"r_{ev}": f"fire_{ev}_post += {_multiplicity(coding, ev, '_pre')}"
        for ev in ("on", "off")}, on_event={"r_on": "on", "r_off": "off"}, clock=clock,
        order=1, name=f"{name}_inh_drive")
    drive.connect(j="i")
    inh = _synapses(f"{name}_inh_syn", relay, post, clock=clock, coding=coding,
                    forward=forward, backward=backward, one_to_one=False, weighted=True,
                    summed="", sign=-1)
    out: list[b2.BrianObject] = [relay, drive, inh]
    if plastic:
        inh.run_regularly(_apply_code(decays, True), dt=learn_dt, when="start", order=-3,
                          name=f"{name}_inh_apply")
    return out


# ------------------------------------------------------------------------ the circuits
class _Spiking:
    """What spiking circuits add to :class:`~circuits.base.Circuit`: the hold-window gates
    in the run namespace and the coding constants."""

    coding: SpikeCoding

    def _drive_extra(self, phases: Phases, n: int, learn: bool) -> dict[str, object]:
        """Phase gates over one sample period (read at the time within the sample)."""
        settling, relaxing = phases.arrays(1)
        hold = phases.holding(1)
        step = self.step  # type: ignore[attr-defined]
        return {"settling": b2.TimedArray(settling[:-1], dt=step, name="settling"),
                "relaxing": b2.TimedArray(relaxing[:-1], dt=step, name="relaxing"),
                "holding": b2.TimedArray(hold[:-1], dt=step, name="holding"),
                "learning": b2.TimedArray(hold[:-1] * float(learn), dt=step, name="learning"),
                "sample_time": phases.period * step,
                **self.coding.constants(max(phases.hold, 1))}

    def _constants(self) -> dict[str, object]:
        s = self.spec  # type: ignore[attr-defined]
        return {"eta": s.learning_rate, "decay": s.relaxations.kp_decay,
                "clamp": s.update_clamp if s.update_clamp is not None else 1e300}

    def _inhibitory(self, name: str) -> b2.Synapses | None:
        """The inhibitory half of pathway ``name`` under Dale's law (else ``None``)."""
        want = f"{self.pathways[name].name}_inh_syn"  # type: ignore[attr-defined]
        for obj in self.network.objects:  # type: ignore[attr-defined]
            if obj.name == want:
                return obj
        return None

    def _matrix(self, name: str, rows: int, cols: int) -> np.ndarray:
        """Under Dale's law the weight is the excitatory minus the inhibitory efficacy."""
        m = super()._matrix(name, rows, cols)  # type: ignore[misc]
        inh = self._inhibitory(name)
        if inh is not None:
            m = m - np.asarray(inh.w[:]).reshape(cols, rows).T
        return m

    def _set_matrix(self, name: str, m: np.ndarray) -> None:
        inh = self._inhibitory(name)
        if inh is None:
            super()._set_matrix(name, m)  # type: ignore[misc]
            return
        m = np.asarray(m, dtype=np.float64)
        super()._set_matrix(name, np.maximum(m, 0.0))  # type: ignore[misc]
        inh.w[:] = np.maximum(-m, 0.0).T.ravel()

    def _decode(self, counts: np.ndarray, coding_range: float, hold_steps: int) -> np.ndarray:
        return decode_counts(counts, coding_range, self.coding, hold_steps)


@dataclass
class SpikingPCCircuit(_Spiking, Circuit):
    """A spiking predictive-coding circuit (populations named as in :mod:`circuits.pc`)."""

    errors: list[b2.NeuronGroup | None] = field(default_factory=list)
    coding: SpikeCoding = field(default_factory=SpikeCoding)

    def relax(self, x: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, *,
              accumulate: bool = False) -> dict[str, np.ndarray]:
        """Relax every sample. Returns, decoded from the spike counts of the hold window,
        ``v{l}`` (hidden value pairs) and ``eps{l}`` (error pairs), plus the value neurons'
        state ``v{l}_state`` at the end of the window; each ``n x n_l``. With
        ``accumulate`` the synapses also integrate their updates, left unapplied for
        :meth:`accumulated`."""
        L = self.spec.n_layers
        want: dict[str, tuple[str, ...]] = {f"V{l}": ("count", "v") for l in range(1, L)}
        want.update({f"E{l}": ("count",) for l in range(1, L + 1)})
        mons = self.relaxed_monitors(want)
        self.run(x, target, learn=accumulate, apply=False, monitors=mons)
        c, h = self.coding, self.phases.hold
        out = {}
        for l in range(1, L):
            out[f"v{l}"] = self._decode(np.asarray(mons[f"V{l}"].count).T[1:], c.value_range, h)
            out[f"v{l}_state"] = np.asarray(mons[f"V{l}"].v).T[1:].copy()
        for l in range(1, L + 1):
            rng = c.output_error_range if l == L else c.error_range
            out[f"eps{l}"] = self._decode(np.asarray(mons[f"E{l}"].count).T[1:], rng, h)
        return out

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """The output error units' dendritic prediction ``f(a_L)`` averaged over a hold window
        after the feedforward sweep (no relaxation): ``n x n_L``."""
        ph = Phases(self.phases.settle, 0, self.phases.hold)
        mons = self.relaxed_monitors({f"E{self.spec.n_layers}": ("mu_hold",)}, ph)
        self.run(x, None, learn=False, phases=ph, monitors=mons)
        return np.asarray(next(iter(mons.values())).mu_hold).T[1:].copy()


def check_spiking_spec(spec: PCSpec, coding: SpikeCoding) -> None:
    """Reject what the spiking PC circuit does not implement, naming the field."""
    from .pc import check_circuit_spec
    check_circuit_spec(spec)
    if not isinstance(coding, SpikeCoding):
        raise CircuitError(f"coding: must be a SpikeCoding, got {coding!r}")
    r = spec.relaxations
    if coding.dale and (r.backward is BackwardPathway.TRANSPOSE
                        or r.error_to_value is ErrorToValue.PSI_TRANSPOSE):
        raise CircuitError("dale: weight transport sends errors back through the forward "
                           "synapses, which then carry both signs; use separate backward "
                           "weights (BackwardPathway.LEARNED or RANDOM) and ErrorToValue.IDENTITY")


@builds_on_target
def build_spiking_pc_circuit(spec: PCSpec, params: PCParams | None = None, *,
                             coding: SpikeCoding | None = None, target: Target = Target.CYTHON,
                             name: str = "spc") -> SpikingPCCircuit:
    """Build the spiking circuit of ``spec`` (every relaxation: the pathways of
    :mod:`circuits.pc`, carried by ON/OFF spike trains; ``psi`` on the prediction through
    prediction pairs ``P{l}``) with ``params`` (default ``init_params(spec)``). ``coding``
    defaults to :class:`SpikeCoding` ``()``."""
    coding = coding if coding is not None else SpikeCoding()
    check_spiking_spec(spec, coding)
    if not isinstance(target, Target):
        raise CircuitError(f"target: must be a Target, got {target!r}")
    if coding.encoding is Encoding.POISSON:
        b2.seed(coding.seed)  # Brian2 has one generator per process; seeded, never the clock
    r = spec.relaxations
    L, sizes = spec.n_layers, spec.sizes
    phases = coding.phases(L)
    step = coding.dt * b2.second
    clock = b2.Clock(dt=step, name=f"{name}_clock")
    learn_dt = phases.period * step
    sample_clock = b2.Clock(dt=learn_dt, name=f"{name}_sample_clock")
    drop_inf = r.derivative is not DerivativeUse.KEPT
    drop_learn = r.derivative is DerivativeUse.DROPPED_EVERYWHERE
    psi_on_mu = r.has_psi and r.psi_placement is PsiPlacement.PREDICTION

    values: list[b2.NeuronGroup] = []
    for l in range(L + 1):
        if l in (0, L):
            g = _pair_group(f"{name}_V{l}", sizes[l], eq.SPIKING_CLAMPED, q="u", rng="range_v",
                            coding=coding, clock=clock, trace_c="c_v")
            g.run_regularly(eq.CLAMP.format(var="v", source="x_in" if l == 0 else "y_in"),
                            clock=sample_clock, when="groups", order=ORDER_CLAMPED,
                            name=f"{name}_V{l}_clamp")
        else:
            model = eq.SPIKING_VALUE.format()
            g = _pair_group(f"{name}_V{l}", sizes[l], model, q="u", rng="range_v",
                            coding=coding, clock=clock, trace_c="c_v")
        g.run_regularly(_RESET_COUNTS, clock=sample_clock, when="start", order=-1,
                        name=f"{name}_V{l}_reset")
        values.append(g)
    errors: list[b2.NeuronGroup | None] = [None]
    for l in range(1, L + 1):
        # fixed predictions: the dendrite latches its input at the end of settling, and the
        # plasticity reads the presynaptic latched value (the rate circuit's u = vbar)
        f, df = eq.activation_strings(spec.activation_of(l),
                                      "abar" if spec.fixed_predictions else "a")
        dense_psi = psi_on_mu and l < L  # eps = v - psi mu: psi mu decoded from P_l's spikes
        model = eq.SPIKING_ERROR.format(f=f, gain="1.0" if drop_inf else df,
                                        gain_learn="1.0" if drop_learn else df,
                                        mu_hat="pin" if dense_psi else "mu",
                                        extra=eq.SPIKING_PSI_INPUT if dense_psi else "")
        o = "o" if l == L else "e"  # the output pair codes a wider range
        bias = f"b_acc {{s}}= {{L}} * gain_learn * k_{o}" if spec.use_bias else ""
        g = _pair_group(f"{name}_E{l}", sizes[l], model, q="eps", rng=f"range_{o}",
                        coding=coding, clock=clock, trace_c=None, on_code=bias)
        _per_sample(g, f"{name}_E{l}", "mu_hold = 0", sample_clock, learn_dt, spec.use_bias)
        errors.append(g)
    predictions: list[b2.NeuronGroup | None] = [None] * (L + 1)
    if psi_on_mu:
        for l in range(1, L):
            g = _pair_group(f"{name}_P{l}", sizes[l], eq.SPIKING_PREDICTION, q="mu",
                            rng="range_v", coding=coding, clock=clock, trace_c="c_v")
            g.run_regularly(_RESET_COUNTS, clock=sample_clock, when="start", order=-1,
                            name=f"{name}_P{l}_reset")
            predictions[l] = g

    objects: list[b2.BrianObject] = []
    pathways: dict[str, b2.Synapses] = {}
    u = "vbar" if spec.fixed_predictions else "tr"  # the presynaptic factor of W, B

    def add(key: str, pre: b2.NeuronGroup, post: b2.NeuronGroup, **kw: object) -> None:
        objs = _spiking_pathway(f"{name}_{key}", pre, post, clock=clock, coding=coding,
                                learn_dt=learn_dt, dale=coding.dale, **kw)  # type: ignore[arg-type]
        pathways[key] = objs[0]
        objects.extend(objs)

    for l in range(L):
        # V_l -> E_{l+1}: the prediction; Hebbian at each error spike; under weight transport
        # the error spikes also travel back through the same synapses
        o = "o" if l + 1 == L else "e"
        back = f"dw_acc {{s}}= {{L}} * gain_learn_post * {u}_pre * k_{o}"
        if r.backward is BackwardPathway.TRANSPOSE and l >= 1:
            back += f"\nfb_pre {{s}}= w * gain_post * c_{o}"
        add(f"W{l}", values[l], errors[l + 1], forward="a_in_post {s}= {w} * c_v",
            backward=back, plastic=True, decays=True)
    for l in range(1, L):
        if r.has_backward_weights:
            learned = r.backward is BackwardPathway.LEARNED
            o = "o" if l + 1 == L else "e"
            fwd = f"fb_post {{s}}= {{w}} * gain_pre * c_{o}"
            if learned:
                fwd += f"\ndw_acc {{s}}= {{L}} * gain_learn_pre * {u}_post * k_{o}"
            add(f"B{l}", errors[l + 1], values[l], forward=fwd, plastic=learned, decays=True)
        if not r.has_psi or psi_on_mu:
            add(f"VE{l}", values[l], errors[l], forward="vin_post {s}= c_v", one_to_one=True,
                weighted=False)
        if psi_on_mu:
            # E_l -> P_l (within the unit) -> E_l through dense psi; the authors' rule
            # -1/2 eps mu at each error spike, mu decoded from P_l's own-spike trace
            p = predictions[l]
            assert p is not None
            add(f"EP{l}", errors[l], p, forward=None, one_to_one=True, weighted=False,
                summed="mu_post = mu_pre : 1 (summed)")
            learned = r.error_connections is ErrorConnections.LEARNED_PSI
            add(f"PE{l}", p, errors[l], forward="pin_post {s}= {w} * c_v",
                backward="dw_acc {s}= -0.5 * {L} * tr_pre * k_e" if learned else None,
                plastic=learned)
        elif r.has_psi:
            learned = r.error_connections is ErrorConnections.LEARNED_PSI
            back = "dw_acc {s}= -{L} * tr_pre * k_e" if learned else ""
            if r.error_to_value is ErrorToValue.PSI_TRANSPOSE:
                back += ("\n" if back else "") + "own_pre {s}= w * c_e"
            add(f"VE{l}", values[l], errors[l], forward="vin_post {s}= {w} * c_v",
                backward=back or None, plastic=learned)
    add(f"VE{L}", values[L], errors[L], forward="vin_post {s}= c_v", one_to_one=True,
        weighted=False)
    for l in range(1, L):
        own = None if r.error_to_value is ErrorToValue.PSI_TRANSPOSE else "own_post {s}= c_e"
        add(f"EV{l}", errors[l], values[l], forward=own, one_to_one=True, weighted=False,
            summed="pred_post = mu_pre : 1 (summed)")

    populations = [*values, *[e for e in [*errors, *predictions] if e is not None]]
    net = claim(b2.Network(*populations, *objects, name=f"{name}_network"))
    circuit = SpikingPCCircuit(spec, net, values, errors, pathways, phases, target,
                               Kernel.BRIAN2, {}, errors=errors, coding=coding)
    circuit.step = step
    circuit.sample_clocks = [sample_clock]
    circuit.set_params(params if params is not None else init_params(spec))
    return circuit


# ------------------------------------------------------------------- correspondence
@dataclass(frozen=True)
class Correspondence:
    """How far a spiking circuit is from its rate twin (:meth:`SpikeCoding.rate_spec`) for
    the same weights and inputs. Relative errors ``||spiking - rate|| / ||rate||`` over all
    samples and units; angles in degrees."""

    values: float
    """Hidden values decoded from the value pairs' spike counts in the hold window."""
    errors: float
    """Errors decoded from the error pairs' spike counts (all layers)."""
    updates: float
    """The batch's accumulated weight updates (all ``W`` layers concatenated)."""
    angle_to_rate: float
    """Between the spiking and the rate update."""
    angle_to_backprop: float
    """Between the spiking update and ``-`` the autograd gradient of the squared loss."""
    rate_angle_to_backprop: float
    """Between the rate update and the same gradient (the floor of the previous line)."""


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    d = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / d if d > 0 else math.nan


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    d = float(np.linalg.norm(a) * np.linalg.norm(b))
    if d == 0:
        return math.nan
    return math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b) / d))))


def measure_correspondence(spec: PCSpec, params: PCParams, x: np.ndarray | torch.Tensor,
                           y: np.ndarray | torch.Tensor, coding: SpikeCoding, *,
                           target: Target = Target.CYTHON) -> Correspondence:
    """Relax the batch ``x``/``y`` once in the spiking circuit and once in its rate twin from
    the same ``params``, accumulating (not applying) every update, and compare."""
    from algorithms.backprop import gradients

    from .pc import build_pc_circuit

    xs = torch.as_tensor(np.asarray(x, dtype=np.float64))
    ys = torch.as_tensor(np.asarray(y, dtype=np.float64))
    sc = build_spiking_pc_circuit(spec, params, coding=coding, target=target, name="corr_s")
    got = sc.relax(xs, ys, accumulate=True)
    dw_s = np.concatenate([w.numpy().ravel() for w in sc.accumulated().weights])
    rc = build_pc_circuit(coding.rate_spec(spec), params, target=target, name="corr_r")
    mons = rc.relaxed_monitors({**{f"V{l}": ("v",) for l in range(1, spec.n_layers)},
                                **{f"E{l}": ("eps",) for l in range(1, spec.n_layers + 1)}})
    rc.run(xs, ys, learn=True, apply=False, monitors=mons)
    dw_r = np.concatenate([w.numpy().ravel() for w in rc.accumulated().weights])
    L = spec.n_layers
    vs = [np.asarray(mons[f"V{l}"].v).T[1:] for l in range(1, L)]
    es = [np.asarray(mons[f"E{l}"].eps).T[1:] for l in range(1, L + 1)]
    grad = gradients(params, spec.replace(batch_reduction=BatchReduction.SUM,
                                          dtype="float64"), xs, ys)
    g = -np.concatenate([w.numpy().ravel() for w in grad.weights])
    cat = np.concatenate
    return Correspondence(
        values=_rel(cat([got[f"v{l}"].ravel() for l in range(1, L)]), cat([v.ravel() for v in vs]))
        if L > 1 else math.nan,
        errors=_rel(cat([got[f"eps{l}"].ravel() for l in range(1, L + 1)]),
                    cat([e.ravel() for e in es])),
        updates=_rel(dw_s, dw_r), angle_to_rate=_angle(dw_s, dw_r),
        angle_to_backprop=_angle(dw_s, g), rate_angle_to_backprop=_angle(dw_r, g))


@dataclass
class SpikingARCircuit(_Spiking, Circuit):
    """A spiking activation-relaxation circuit (populations named as in :mod:`circuits.ar`)."""

    loss: Loss = Loss.MSE_SUM
    coding: SpikeCoding = field(default_factory=SpikeCoding)

    def relax(self, x: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, *,
              accumulate: bool = False) -> dict[str, np.ndarray]:
        """Relax every sample; returns ``x{l}`` decoded from the spike counts of the hold
        window (hidden units within ``value_range``, outputs within ``gradient_range``) and
        ``x{l}_state`` at its end, ``l = 1..L``, each ``n x n_l``."""
        L = self.spec.n_layers
        mons = self.relaxed_monitors({f"X{l}": ("count", "x") for l in range(1, L + 1)})
        self.run(x, target, learn=accumulate, apply=False, monitors=mons)
        c, h = self.coding, self.phases.hold
        out = {}
        for l in range(1, L + 1):
            rng = c.gradient_range if l == L else c.value_range
            out[f"x{l}"] = self._decode(np.asarray(mons[f"X{l}"].count).T[1:], rng, h)
            out[f"x{l}_state"] = np.asarray(mons[f"X{l}"].x).T[1:].copy()
        return out

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """The output units' forward activity ``f(a_L)`` averaged over a hold window after the
        feedforward sweep: ``n x n_L``."""
        ph = Phases(self.phases.settle, 0, self.phases.hold)
        mons = self.relaxed_monitors({f"X{self.spec.n_layers}": ("y_hold",)}, ph)
        self.run(x, None, learn=False, phases=ph, monitors=mons)
        return np.asarray(next(iter(mons.values())).y_hold).T[1:].copy()


@builds_on_target
def build_spiking_ar_circuit(spec: PCSpec, params: PCParams | None = None, *,
                             coding: SpikeCoding | None = None, loss: Loss = Loss.MSE_SUM,
                             init_from_forward: bool = True, target: Target = Target.CYTHON,
                             name: str = "sar") -> SpikingARCircuit:
    """The spiking twin of :func:`circuits.ar.build_ar_circuit`: every unit codes its activity
    with an ON/OFF pair (outputs: the loss gradient, within ``gradient_range``), every
    pathway is decoded from spike traces, and plasticity integrates, at each postsynaptic
    spike in the hold window, ``-h_learn_post * pre`` with ``pre`` the presynaptic unit's
    latched forward activity (or, under R8, its spike trace)."""
    from .ar import _GRADIENT
    coding = coding if coding is not None else SpikeCoding()
    check_ar_spec(spec)
    if not isinstance(coding, SpikeCoding):
        raise CircuitError(f"coding: must be a SpikeCoding, got {coding!r}")
    if spec.batch_reduction is not BatchReduction.SUM:
        raise CircuitError("batch_reduction: the circuit implements SUM only")
    if loss not in _GRADIENT:
        raise CircuitError(f"loss: MSE_SUM or MSE_HALF, got {loss!r}")
    if not isinstance(target, Target):
        raise CircuitError(f"target: must be a Target, got {target!r}")
    r, fp = spec.relaxations, spec.relaxations.forward_pass
    if coding.dale and r.backward is BackwardPathway.TRANSPOSE:
        raise CircuitError("dale: weight transport sends activity back through the forward "
                           "synapses; use separate backward weights")
    if coding.encoding is Encoding.POISSON:
        b2.seed(coding.seed)
    L, sizes = spec.n_layers, spec.sizes
    phases = coding.phases(L, hidden_layers_settle=L)
    step = coding.dt * b2.second
    clock = b2.Clock(dt=step, name=f"{name}_clock")
    learn_dt = phases.period * step
    sample_clock = b2.Clock(dt=learn_dt, name=f"{name}_sample_clock")

    def gain(l: int, which: PassValue, dropped: bool) -> str:
        if dropped:
            return "1.0"
        return eq.DF[spec.activation_of(l)].format(a="abar" if which is PassValue.FROZEN else "a")

    def suffix(l: int) -> str:  # coding range of layer l's pair
        return "g" if l == L else "v"

    groups: list[b2.NeuronGroup] = [_pair_group(f"{name}_X0", sizes[0], eq.SPIKING_AR_INPUT,
                                                q="u", rng="range_v", coding=coding,
                                                clock=clock, trace_c="c_v")]
    groups[0].run_regularly(eq.CLAMP.format(var="x", source="x_in"), clock=sample_clock,
                            when="groups", order=ORDER_CLAMPED, name=f"{name}_X0_clamp")
    groups[0].run_regularly(_RESET_COUNTS, clock=sample_clock, when="start", order=-1,
                            name=f"{name}_X0_reset")
    for l in range(1, L + 1):
        f = eq.F[spec.activation_of(l)].format(a="a")
        out = l == L
        extra = ("target = y_in(t, i) : 1\ndy_hold/dt = holding(tp) * xbar / hold_time : 1"
                 if out else "")
        model = eq.SPIKING_AR_UNIT.format(
            relax_term="0 / second" if out else "relaxing(tp) * (fb - x) / tau_v",
            x_settle=(_GRADIENT[loss].format(y=f) if out else (f if init_from_forward else "0")),
            f=f, h=gain(l, fp.gain_in_relaxation, r.derivative is not DerivativeUse.KEPT),
            h_learn=gain(l, fp.gain_in_update, r.derivative is DerivativeUse.DROPPED_EVERYWHERE),
            extra=extra)
        o = suffix(l)
        bias = f"b_acc {{s}}= -{{L}} * h_learn * k_{o}" if spec.use_bias else ""
        g = _pair_group(f"{name}_X{l}", sizes[l], model, q="u", rng=f"range_{o}",
                        coding=coding, clock=clock, trace_c=f"c_{o}", on_code=bias)
        _per_sample(g, f"{name}_X{l}", "y_hold = 0" if out else "", sample_clock, learn_dt,
                    spec.use_bias)
        groups.append(g)

    objects: list[b2.BrianObject] = []
    pathways: dict[str, b2.Synapses] = {}
    for l in range(L):
        o = suffix(l + 1)
        pre = "xbar_pre" if (l == 0 or fp.presynaptic_in_update is PassValue.FROZEN) else "tr_pre"
        back = f"dw_acc {{s}}= -{{L}} * h_learn_post * {pre} * k_{o}"
        if r.backward is BackwardPathway.TRANSPOSE and l >= 1:
            back += f"\nfb_pre {{s}}= w * h_post * c_{o}"
        objs = _spiking_pathway(f"{name}_W{l}", groups[l], groups[l + 1], clock=clock,
                                coding=coding, learn_dt=learn_dt, forward="a_in_post {s}= {w} * c_v",
                                backward=back, plastic=True, decays=True, dale=coding.dale)
        pathways[f"W{l}"] = objs[0]
        objects += objs
        if r.has_backward_weights and l >= 1:
            learned = r.backward is BackwardPathway.LEARNED
            fwd = f"fb_post {{s}}= {{w}} * h_pre * c_{o}"
            if learned:
                post = pre.replace("_pre", "_post")
                fwd += f"\ndw_acc {{s}}= -{{L}} * h_learn_pre * {post} * k_{o}"
            objs = _spiking_pathway(f"{name}_B{l}", groups[l + 1], groups[l], clock=clock,
                                    coding=coding, learn_dt=learn_dt, forward=fwd, plastic=learned,
                                    decays=True, dale=coding.dale)
            pathways[f"B{l}"] = objs[0]
            objects += objs

    net = claim(b2.Network(*groups, *objects, name=f"{name}_network"))
    circuit = SpikingARCircuit(spec, net, groups, [None, *groups[1:]], pathways, phases,
                               target, Kernel.BRIAN2, {}, loss=loss, coding=coding)
    circuit.step = step
    circuit.sample_clocks = [sample_clock]
    circuit.set_params(params if params is not None else init_params(spec))
    return circuit
