"""Generative (unsupervised) predictive coding as Brian2 rate microcircuits: the hierarchical
generative network of :mod:`algorithms.generative` and the dynamical lattice of
:mod:`algorithms.dynamical` (levels x generalised orders), built from the same specs.

Both are a *node graph*: value populations (nodes), error populations (one per node, or one
per incoming prediction under split errors), and prediction pathways from a node to an error
population of the node it predicts:

==================  ==============  =========================================================
object              pre -> post     role, and the plasticity written in its model
==================  ==============  =========================================================
``V_<node>``        value neurons   clamped (the observation) or free:
                                    ``dv = gamma (-sum pi eps + sum W' f'(a) pi eps)``
``E_<unit>``        error neurons   ``eps = v - sum_k f_k(a_k)``, ``pe = pi eps``, and per
                                    incoming pathway ``k`` the gain ``g_k = f_k'(a_k) pe``
``P_<edge>``        V -> E          prediction ``a_k = W v``; carries ``W' g_k`` back to its
                                    presynaptic value neurons on the same synapse; Hebbian
                                    ``dW += g_k_post v_pre``, applied per batch (x ``1/B``)
``VE_<unit>``       V -> E          one-to-one ``vin = v``
``EV_<unit>``       E -> V          one-to-one ``own = pe``
``D_<node>``        V -> V          one-to-one, dynamical only: the next order's value, the
                                    shift operator ``D`` of the predict step
==================  ==============  =========================================================

One sample (generative) or tick (dynamical) occupies ``settle + relax + 1`` steps of
:data:`~circuits.drive.STEP`, as in the supervised circuits (:mod:`circuits.drive`): the
generative circuit resets its free nodes to zero at each sample (``settle = 0``), the
dynamical one runs one predict step ``v += dt D v`` (``settle = 1``) and latches the sensory
prediction at the first inference step. Learning runs at the start of the next sample, from
the relaxed state. Every step is the Jacobi iteration of the numpy/torch model exactly, which
``tests/test_generative_circuits.py`` checks trajectory by trajectory.

The builders are reached through :func:`circuits.pc.build_pc_circuit`, which dispatches on
the spec's type (``GenerativeSpec`` or ``LatticeSpec``). Tied orders are refused: a weight
shared across orders needs the sum of every copy's product, which no synapse sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import brian2 as b2
import numpy as np
import torch

from algorithms.activations import Activation
from algorithms.dynamical import DynamicalPC, LatticeSpec
from algorithms.dynamical import Params as LatticeParams
from algorithms.generative import GenerativePC, GenerativeSpec

from . import equations as eq
from .base import all_to_all, check_samples, claim
from .drive import (ORDER_CLAMPED, ORDER_MONITOR, ORDER_STAGE1, ORDER_STAGE2, ORDER_STORE,
                    STEP, CircuitError, Phases, Target, builds_on_target, capacity,
                    codegen_target, drive_namespace, gate_arrays)

__all__ = ["DynamicalCircuit", "Edge", "ErrorUnit", "GenerativeCircuit", "Node",
           "build_dynamical_circuit", "build_generative_circuit"]


@dataclass(frozen=True)
class Node:
    """A value population: ``size`` neurons, clamped to an input or free; ``motion`` names
    the node whose value is this one's next generalised order (dynamical predict step)."""

    name: str
    size: int
    clamped: bool = False
    motion: str | None = None


@dataclass(frozen=True)
class ErrorUnit:
    """An error population of ``node`` with precision ``precision`` (0: not observed)."""

    name: str
    node: str
    precision: float


@dataclass(frozen=True)
class Edge:
    """A prediction pathway: ``pre``'s values predict error population ``post`` through
    ``activation(W v)``; ``W`` is ``post size x pre size``."""

    name: str
    pre: str
    post: str
    activation: Activation


@dataclass
class _Graph:
    """A built node graph: the ``Network`` and its objects by name."""

    network: b2.Network
    nodes: dict[str, b2.NeuronGroup]
    units: dict[str, b2.NeuronGroup]
    edges: dict[str, b2.Synapses]
    edge_specs: dict[str, Edge]
    phases: Phases
    sample_clock: b2.Clock
    target: Target
    constants: dict[str, object] = field(default_factory=dict)

    # ------------------------------------------------------------------ weights
    def matrix(self, edge: str) -> np.ndarray:
        """Pathway ``edge``'s weights, ``post x pre``."""
        e = self.edge_specs[edge]
        pre, post = len(self.nodes[e.pre]), len(self.units[e.post])
        return np.asarray(self.edges[edge].w[:]).reshape(pre, post).T.copy()

    def set_matrix(self, edge: str, m: np.ndarray) -> None:
        e = self.edge_specs[edge]
        want = (len(self.units[e.post]), len(self.nodes[e.pre]))
        m = np.asarray(m, dtype=np.float64)
        if m.shape != want:
            raise CircuitError(f"{edge}: shape {m.shape} != {want}")
        self.edges[edge].w[:] = m.T.ravel()

    # --------------------------------------------------------------------- runs
    def _run(self, inputs: dict[str, np.ndarray], *, learn: bool, batch_size: int,
             record: dict[str, tuple[b2.NeuronGroup, str]]) -> dict[str, np.ndarray]:
        """Present ``n`` samples (``inputs``: clamped node -> ``n x size``) in one Brian2
        ``run()``; returns each recorded ``(group, variable)`` at every sample's relaxed
        state (``n x size``)."""
        n = len(next(iter(inputs.values())))
        ph, P = self.phases, self.phases.period
        acc, apply_ = gate_arrays(n, batch_size, learn)
        ns = drive_namespace(ph, {f"{node}_in": rows for node, rows in inputs.items()},
                             acc=acc, apply=apply_, learn_period=P)
        cap = capacity(n)
        latching = np.zeros(cap * P + 1)
        latching[ph.settle: n * P: P] = 1.0
        ns["latching"] = b2.TimedArray(latching, dt=STEP, name="latching")
        ns["batch_scale"] = b2.TimedArray(_batch_scale(apply_, cap + 2), dt=P * STEP,
                                          name="batch_scale")
        ns.update(self.constants)
        mons = {key: b2.StateMonitor(g, var, record=True, dt=P * STEP, when="start",
                                     order=ORDER_MONITOR,
                                     name=f"{self.network.name}_rec_{key}")
                for key, (g, var) in record.items()}
        self.network.add(*mons.values())
        try:
            self.network.t_ = 0.0
            with codegen_target(self.target):
                self.network.run((n * P + 1) * STEP, namespace=ns)
        finally:
            self.network.remove(*mons.values())
        return {key: np.asarray(getattr(m, record[key][1])).T[1:n + 1].copy()
                for key, m in mons.items()}


def _batch_scale(apply: np.ndarray, length: int) -> np.ndarray:
    """``1 / (samples in the batch)`` at each batch end of ``apply`` (from
    :func:`~circuits.drive.gate_arrays`), 0 elsewhere: the batch-mean factor."""
    scale = np.zeros(length)
    ends = np.flatnonzero(apply)
    scale[ends] = 1.0 / np.diff(np.concatenate([[0], ends]))
    return scale


def _stage(s: b2.Synapses) -> None:
    """Summed inputs of value neurons (``fb_*``, ``own_*``) read stored error outputs: stage
    2; every other summed input reads values: stage 1 (see :mod:`circuits.drive`)."""
    for key, updater in s.summed_updaters.items():
        updater.order = ORDER_STAGE2 if key.startswith(("fb_", "own_")) else ORDER_STAGE1


@builds_on_target
def build_graph(nodes: list[Node], units: list[ErrorUnit], edges: list[Edge], *,
                phases: Phases, constants: dict[str, object], target: Target, name: str,
                reset_free: bool) -> _Graph:
    """Build the node graph (see the module docstring). ``reset_free``: free values start
    every sample at zero (generative inference); otherwise they carry over (dynamical)."""
    if target is Target.CPP_STANDALONE:
        raise CircuitError("target: run generative circuits on the numpy or cython target")
    clock = b2.Clock(dt=STEP, name=f"{name}_clock")
    sample_clock = b2.Clock(dt=phases.period * STEP, name=f"{name}_sample_clock")
    by_node: dict[str, list[ErrorUnit]] = {nd.name: [] for nd in nodes}
    for u in units:
        by_node[u.node].append(u)
    out_edges: dict[str, list[Edge]] = {nd.name: [] for nd in nodes}
    in_edges: dict[str, list[Edge]] = {u.name: [] for u in units}
    for e in edges:
        out_edges[e.pre].append(e)
        in_edges[e.post].append(e)
    groups: dict[str, b2.NeuronGroup] = {}
    for nd in nodes:
        if nd.clamped:
            g = b2.NeuronGroup(nd.size, eq.CLAMPED_VALUE, clock=clock, name=f"{name}_V_{nd.name}")
            g.run_regularly(eq.CLAMP.format(var="v", source=f"{nd.name}_in"), clock=sample_clock,
                            when="groups", order=ORDER_CLAMPED, name=f"{name}_V_{nd.name}_clamp")
        else:
            fb = [f"fb_{e.name}" for e in out_edges[nd.name]]
            own = [f"own_{u.name}" for u in by_node[nd.name]]
            summed = "\n".join(f"{v} : 1  # (summed)" for v in
                               [*fb, *own, *(["nxt"] if nd.motion else [])])
            model = eq.GENERATIVE_VALUE.format(fb=" + ".join(fb) or "0",
                                               own=" + ".join(own) or "0",
                                               motion="nxt" if nd.motion else "0",
                                               summed=summed)
            g = b2.NeuronGroup(nd.size, model, method="euler", clock=clock,
                               name=f"{name}_V_{nd.name}")
            if reset_free:
                g.run_regularly("v = 0", clock=sample_clock, when="groups",
                                order=ORDER_CLAMPED, name=f"{name}_V_{nd.name}_reset")
        groups[nd.name] = g
    ugroups: dict[str, b2.NeuronGroup] = {}
    for u in units:
        srcs = in_edges[u.name]
        pred = " + ".join(eq.F[e.activation].format(a=f"a_{e.name}") for e in srcs) or "0"
        per = "".join(eq.GENERATIVE_SOURCE.format(k=e.name, df=eq.DF[e.activation].format(
            a=f"a_{e.name}")) for e in srcs)
        g = b2.NeuronGroup(groups[u.node].N, eq.GENERATIVE_ERROR.format(
            prediction=pred, per_source=per), clock=clock, order=-5, name=f"{name}_E_{u.name}")
        g.prec = u.precision
        store = eq.GENERATIVE_STORE.format(stores="\n".join(f"g_{e.name} = g_{e.name}_now"
                                                            for e in srcs))
        g.run_regularly(store + "\npredicted += latching(t) * (mu_now - predicted)",
                        when="groups", order=ORDER_STORE, name=f"{name}_E_{u.name}_store")
        ugroups[u.name] = g
    syn: dict[str, b2.Synapses] = {}
    learn_dt = phases.period * STEP

    def one_to_one(key: str, pre: b2.NeuronGroup, post: b2.NeuronGroup, model: str) -> None:
        s = b2.Synapses(pre, post, model, clock=clock, name=f"{name}_{key}")
        s.connect(j="i")
        _stage(s)
        syn[key] = s

    for u in units:
        one_to_one(f"VE_{u.name}", groups[u.node], ugroups[u.name],
                   "vin_post = v_pre : 1 (summed)")
        if not next(nd for nd in nodes if nd.name == u.node).clamped:
            one_to_one(f"EV_{u.name}", ugroups[u.name], groups[u.node],
                       f"own_{u.name}_post = pe_pre : 1 (summed)")
    for nd in nodes:
        if nd.motion is not None:
            one_to_one(f"D_{nd.name}", groups[nd.motion], groups[nd.name],
                       "nxt_post = v_pre : 1 (summed)")
    paths: dict[str, b2.Synapses] = {}
    for e in edges:
        s = b2.Synapses(groups[e.pre], ugroups[e.post], eq.GENERATIVE_PATHWAY.format(k=e.name),
                        clock=clock, name=f"{name}_P_{e.name}")
        i, j = all_to_all(len(groups[e.pre]), len(ugroups[e.post]))
        s.connect(i=i, j=j)
        _stage(s)
        s.run_regularly(eq.GENERATIVE_PLASTICITY.format(k=e.name), dt=learn_dt, when="start",
                        order=-3, name=f"{name}_P_{e.name}_learn")
        paths[e.name] = s
    net = claim(b2.Network(*groups.values(), *ugroups.values(), *syn.values(),
                           *paths.values(), name=f"{name}_network"))
    return _Graph(net, groups, ugroups, paths, {e.name: e for e in edges}, phases,
                  sample_clock, target, constants)


# ------------------------------------------------------------------ the generative network
@dataclass
class GenerativeCircuit:
    """The hierarchical generative network as a circuit: node ``L{l}`` is layer ``l``
    (``L0`` clamped to the observation), error population ``e{l}`` its error (``e{L}``: the
    top prior), pathway ``theta{l}`` (``L{l+1} -> e{l}``) the prediction of layer ``l``."""

    spec: GenerativeSpec
    graph: _Graph

    @property
    def network(self) -> b2.Network:
        return self.graph.network

    def get_params(self) -> list[torch.Tensor]:
        """``theta[l]`` (``sizes[l] x sizes[l+1]``, torch float64), as ``GenerativePC``."""
        return [torch.from_numpy(self.graph.matrix(f"theta{l}")) for l in range(self.spec.L)]

    def set_params(self, theta: list[torch.Tensor]) -> None:
        if len(theta) != self.spec.L:
            raise CircuitError(f"theta: {self.spec.L} matrices, got {len(theta)}")
        for l, t in enumerate(theta):
            self.graph.set_matrix(f"theta{l}", t.detach().double().numpy())

    def _obs(self, o: np.ndarray | torch.Tensor) -> np.ndarray:
        return check_samples(o, self.spec.sizes[0], "observations")

    def _record(self) -> dict[str, tuple[b2.NeuronGroup, str]]:
        g = self.graph
        rec = {f"mu{l}": (g.nodes[f"L{l}"], "v") for l in range(1, self.spec.L + 1)}
        rec.update({f"eps{l}": (g.units[f"e{l}"], "eps") for l in range(self.spec.L + 1)})
        return rec

    def relax(self, o: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """Infer every sample without learning: the relaxed ``mu{l}`` (``l = 1..L``) and
        ``eps{l}`` (``l = 0..L``), each ``n x sizes[l]``."""
        return self.graph._run({"L0": self._obs(o)}, learn=False, batch_size=1,
                               record=self._record())

    def encode(self, o: np.ndarray | torch.Tensor) -> np.ndarray:
        """The top latent of each observation (``n x sizes[L]``)."""
        return self.relax(o)[f"mu{self.spec.L}"]

    def train(self, o: np.ndarray | torch.Tensor, batch_size: int) -> dict[str, np.ndarray]:
        """Learn from ``o`` in minibatches of ``batch_size`` consecutive samples (batch-mean
        Hebbian steps, as ``GenerativePC.train_batch`` on each); returns the relaxed state."""
        if batch_size < 1:
            raise CircuitError(f"batch_size: a positive int, got {batch_size}")
        return self.graph._run({"L0": self._obs(o)}, learn=True, batch_size=batch_size,
                               record=self._record())


def build_generative_circuit(spec: GenerativeSpec, theta: list[torch.Tensor] | None = None,
                             *, target: Target = Target.CYTHON, name: str = "gen"
                             ) -> GenerativeCircuit:
    """The circuit of ``spec`` with ``theta`` (default: ``GenerativePC(spec).theta``, the
    torch model's initial weights)."""
    L = spec.L
    nodes = [Node(f"L{l}", spec.sizes[l], clamped=l == 0) for l in range(L + 1)]
    units = [ErrorUnit(f"e{l}", f"L{l}", 1.0) for l in range(L)]
    units.append(ErrorUnit(f"e{L}", f"L{L}", spec.prior_precision))
    edges = [Edge(f"theta{l}", f"L{l + 1}", f"e{l}", spec.activations[l]) for l in range(L)]
    graph = build_graph(nodes, units, edges, phases=Phases(0, spec.inference_steps),
                        constants={"tau_v": STEP / spec.inference_rate, "shift": 0.0,
                                   "eta": spec.learning_rate},
                        target=target, name=name, reset_free=True)
    c = GenerativeCircuit(spec, graph)
    c.set_params(theta if theta is not None else GenerativePC(spec).theta)
    return c


# --------------------------------------------------------------------- the dynamical lattice
@dataclass
class DynamicalCircuit:
    """The dynamical lattice as a circuit: node ``x{i}_{n}`` is level ``i``, order ``n``
    (level 0 clamped to the generalised observation); error populations ``e{i}_{n}`` (split
    errors: ``d{i}_{n}`` dynamical and ``h{i}_{n}`` hierarchical); pathways ``Phi{i}_{n}``
    (``x{i}_{n} -> `` the error of ``(i, n-1)``, or of ``(i, n+1)`` under
    ``LOWER_PREDICTS_HIGHER``) and ``Theta{i}_{n}`` (``-> (i-1, n)``)."""

    spec: LatticeSpec
    graph: _Graph

    @property
    def network(self) -> b2.Network:
        return self.graph.network

    def get_params(self) -> LatticeParams:
        s = self.spec
        Phi: list[list[np.ndarray | None]] = [[None] * s.orders for _ in range(s.levels + 1)]
        Theta: list[list[np.ndarray | None]] = [[None] * s.orders for _ in range(s.levels + 1)]
        for key in self.graph.edges:
            fam, i, n = _parse(key)
            (Phi if fam == "Phi" else Theta)[i][n] = self.graph.matrix(key)
        return LatticeParams(Phi, Theta)

    def set_params(self, p: LatticeParams) -> None:
        for key in self.graph.edges:
            fam, i, n = _parse(key)
            m = getattr(p, fam)[i][n]
            if m is None:
                raise CircuitError(f"params.{fam}[{i}][{n}] is missing")
            self.graph.set_matrix(key, m)

    def get_values(self) -> list[list[np.ndarray]]:
        """``mu[i][n]`` of every free node (level 0: zeros), as ``DynamicalPC.mu``."""
        s = self.spec
        return [[np.zeros(s.sizes[0]) if i == 0 else
                 np.asarray(self.graph.nodes[f"x{i}_{n}"].v[:]).copy()
                 for n in range(s.orders)] for i in range(s.levels + 1)]

    def set_values(self, mu: list[list[np.ndarray]]) -> None:
        for i in range(1, self.spec.levels + 1):
            for n in range(self.spec.orders):
                self.graph.nodes[f"x{i}_{n}"].v[:] = np.asarray(mu[i][n], dtype=np.float64)

    def run(self, obs: np.ndarray, learn: bool = True) -> dict[str, np.ndarray]:
        """Run the online protocol over ``obs`` (``ticks x orders``, or ``ticks x orders x
        d_0``): per tick predict, clamp, infer, learn. Returns ``predicted`` (``ticks x
        orders x d_0``, made before the tick's observation is seen), ``errors`` (``ticks x
        nodes``: each node's error norm after inference) and ``values`` (every free node,
        relaxed, concatenated level by level), as ``DynamicalPC.tick`` reports them."""
        s = self.spec
        o = np.asarray(obs, dtype=np.float64)
        if o.ndim == 2 and s.sizes[0] == 1:
            o = o[:, :, None]
        if o.ndim != 3 or o.shape[1:] != (s.orders, s.sizes[0]) or len(o) == 0:
            raise CircuitError(f"obs must have shape (ticks, {s.orders}, {s.sizes[0]}), got "
                               f"{np.shape(obs)}")
        if not np.isfinite(o).all():
            raise CircuitError("obs contains NaN or inf")
        g = self.graph
        rec = {f"pred{n}": (g.units[_unit(s, 0, n)[-1]], "predicted") for n in range(s.orders)}
        rec.update({f"x{i}_{n}": (g.nodes[f"x{i}_{n}"], "v")
                    for i in range(1, s.levels + 1) for n in range(s.orders)})
        rec.update({f"eps_{u}": (g.units[u], "eps") for u in g.units})
        out = g._run({f"x0_{n}": o[:, n, :] for n in range(s.orders)}, learn=learn,
                     batch_size=1, record=rec)
        norms = []
        for i in range(s.levels + 1):
            for n in range(s.orders):
                sq = sum((out[f"eps_{u}"] ** 2).sum(1) for u in _unit(s, i, n))
                norms.append(np.sqrt(sq) * (i > 0 or n in s.observed))
        return {"predicted": np.stack([out[f"pred{n}"] for n in range(s.orders)], axis=1),
                "errors": np.stack(norms, axis=1),
                "values": np.concatenate([out[f"x{i}_{n}"] for i in range(1, s.levels + 1)
                                          for n in range(s.orders)], axis=1)}


def _parse(key: str) -> tuple[str, int, int]:
    fam = "Phi" if key.startswith("Phi") else "Theta"
    i, n = key[len(fam):].split("_")
    return fam, int(i), int(n)


def _unit(s: LatticeSpec, i: int, n: int) -> list[str]:
    """The error populations of node (i, n): ``[e]``, or ``[d, h]`` / ``[d]`` / ``[h]``
    under split errors (the top order of the top level keeps its zero prior as ``h``)."""
    if not s.split_errors:
        return [f"e{i}_{n}"]
    has_d = i >= 1 and s.dynamical_source(n) is not None
    has_h = i + 1 <= s.levels or not has_d
    return [*([f"d{i}_{n}"] if has_d else []), *([f"h{i}_{n}"] if has_h else [])]


def build_dynamical_circuit(spec: LatticeSpec, params: LatticeParams | None = None,
                            mu: list[list[np.ndarray]] | None = None, *,
                            target: Target = Target.CYTHON, name: str = "dyn"
                            ) -> DynamicalCircuit:
    """The circuit of ``spec`` with ``params`` and starting values ``mu`` (default: those of
    ``DynamicalPC(spec)``, the numpy model's initial state)."""
    if spec.tie_orders:
        raise CircuitError("tie_orders: a weight shared across orders is updated by the sum "
                           "of every copy's Hebbian product, which no single synapse sees; "
                           "the circuit implements untied orders only")
    I, N = spec.levels, spec.orders
    nodes = [Node(f"x{i}_{n}", spec.sizes[i], clamped=i == 0,
                  motion=f"x{i}_{n + 1}" if i >= 1 and n + 1 < N else None)
             for i in range(I + 1) for n in range(N)]
    units: list[ErrorUnit] = []
    edges: list[Edge] = []
    for i in range(I + 1):
        for n in range(N):
            names = _unit(spec, i, n)
            observed = i > 0 or n in spec.observed
            for u in names:
                pi = spec.pi_dynamical(i) if u.startswith("d") else spec.pi(i)
                units.append(ErrorUnit(u, f"x{i}_{n}", pi if observed else 0.0))
            dyn_unit, hier_unit = names[0], names[-1]
            src = spec.dynamical_source(n)
            if i >= 1 and src is not None:
                edges.append(Edge(f"Phi{i}_{src}", f"x{i}_{src}", dyn_unit, spec.dynamical))
            if i + 1 <= I:
                edges.append(Edge(f"Theta{i + 1}_{n}", f"x{i + 1}_{n}", hier_unit,
                                  spec.hierarchical))
    graph = build_graph(nodes, units, edges, phases=Phases(1, spec.inference_steps),
                        constants={"tau_v": STEP / spec.inference_rate, "shift": spec.dt,
                                   "eta": spec.learning_rate},
                        target=target, name=name, reset_free=False)
    c = DynamicalCircuit(spec, graph)
    ref = DynamicalPC(spec) if params is None or mu is None else None
    c.set_params(params if params is not None else ref.params)  # type: ignore[union-attr]
    c.set_values(mu if mu is not None else ref.mu)  # type: ignore[union-attr]
    return c
