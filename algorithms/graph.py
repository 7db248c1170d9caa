"""Predictive coding and activation relaxation on arbitrary computation graphs (thesis 6.2, 6.4).

A :class:`Graph` is a DAG of vertices ``v_j = f_j(theta_j, parents...)`` whose edge functions
are ordinary torch functions (several parents, shared parameters). Both algorithms run
under the fixed-prediction assumption (ch6 spec section 3.3): predictions and Jacobians are
frozen at the forward pass, every edge's ``J^T eps`` is a vector-Jacobian product
through an autograd graph built once per batch (:class:`Linearisation`), and relaxation is the linear system

    PC:  eps_i <- eps_i + rate * (-eps_i + sum_{j in children(i)} J_{j<-i}^T eps_j),
         eps_out = -dL/dv_out (clamped)
    AR:  x_i   <- x_i   + rate * (-x_i   + sum_{j in children(i)} J_{j<-i}^T x_j),
         x_out = +dL/dv_out (clamped)

PC errors converge to ``-dL/dv``, AR activities to ``+dL/dv``; the parameter descent
directions ``+(df/dtheta)^T eps`` (PC) and ``-(df/dtheta)^T x`` (AR) converge to
``-dL/dtheta``. With zero initial values, PC errors equal minus AR activities at every
iteration. Schedules: Jacobi (all vertices in parallel, as in continuous time) or reverse
Gauss-Seidel (one sweep from the output down per iteration).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor

__all__ = [
    "Algorithm",
    "Graph",
    "GraphModel",
    "GraphRelaxation",
    "Linearisation",
    "Loss",
    "Schedule",
    "Vertex",
    "autograd_gradients",
    "loss_gradient",
    "loss_value",
    "per_sample_loss",
    "read_out",
    "relax_graph",
]

EdgeFn = Callable[..., Tensor]


class Loss(Enum):
    """Output loss. ``MSE_SUM``: ``sum (y - T)^2`` (ch6 default); ``MSE_HALF``:
    ``1/2 sum (y - T)^2`` (the PC energy of chapter 3); ``CROSS_ENTROPY``: softmax
    cross-entropy on logits, summed over the batch (``T`` holds class probabilities)."""

    MSE_SUM = "mse_sum"
    MSE_HALF = "mse_half"
    CROSS_ENTROPY = "cross_entropy"


class Schedule(Enum):
    """``JACOBI``: all vertices in parallel from the previous iterate (continuous time).
    ``REVERSE_GAUSS_SEIDEL``: one sweep from the output down per iteration.
    ``BLOCK_REVERSE``: blocks (``Vertex.block``, e.g. time steps) from the last to the first;
    each block relaxes ``steps`` Jacobi iterations with the messages from later blocks held
    fixed (the LSTM code's ``per_timestep_reverse``)."""

    JACOBI = "jacobi"
    REVERSE_GAUSS_SEIDEL = "reverse_gauss_seidel"
    BLOCK_REVERSE = "block_reverse"


class Algorithm(Enum):
    PC = "pc"
    AR = "ar"


@dataclass(frozen=True)
class Vertex:
    """``name = fn(params, *parents)`` where ``params`` maps the names in ``params`` to
    tensors. The function must be pure torch (it is linearised through autograd, see :class:`Linearisation`).
    ``block`` groups vertices for the block schedule (a time step of an unrolled RNN)."""

    name: str
    parents: tuple[str, ...]
    fn: EdgeFn
    params: tuple[str, ...] = ()
    block: int = 0


class Graph:
    """A computation graph: clamped ``inputs``, ``vertices`` in topological order (the last
    one is the output) and shared ``params`` (a name may be used by several vertices)."""

    def __init__(self, inputs: tuple[str, ...], vertices: tuple[Vertex, ...],
                 params: Mapping[str, Tensor]) -> None:
        seen = set(inputs)
        if len(seen) != len(inputs):
            raise ValueError(f"duplicate input names in {inputs}")
        if not vertices:
            raise ValueError("a graph needs at least one vertex")
        for v in vertices:
            if v.name in seen:
                raise ValueError(f"vertex name {v.name!r} is used twice")
            missing = [p for p in v.parents if p not in seen]
            if missing:
                raise ValueError(f"vertex {v.name!r}: parents {missing} are not defined before it "
                                 "(vertices must be in topological order)")
            unknown = [p for p in v.params if p not in params]
            if unknown:
                raise ValueError(f"vertex {v.name!r}: unknown parameters {unknown}")
            seen.add(v.name)
        self.inputs = tuple(inputs)
        self.vertices = tuple(vertices)
        self.params = dict(params)

    @property
    def output(self) -> str:
        return self.vertices[-1].name

    def forward(self, inputs: Mapping[str, Tensor],
                params: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """All vertex values of the forward pass (inputs included)."""
        params = self.params if params is None else params
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise ValueError(f"missing inputs {missing}")
        values = {n: inputs[n] for n in self.inputs}
        for v in self.vertices:
            values[v.name] = v.fn({k: params[k] for k in v.params},
                                  *(values[p] for p in v.parents))
        return values


def per_sample_loss(loss: Loss, y: Tensor, target: Tensor) -> Tensor:
    """The loss of each sample (summed over every non-batch dimension), shape ``B``."""
    if loss is Loss.MSE_SUM:
        per = (y - target) ** 2
    elif loss is Loss.MSE_HALF:
        per = 0.5 * (y - target) ** 2
    else:
        per = -(target * torch.log_softmax(y, dim=-1))
    return per.reshape(per.shape[0], -1).sum(1) if per.ndim > 1 else per


def loss_value(loss: Loss, y: Tensor, target: Tensor) -> Tensor:
    """Scalar loss, summed over the batch."""
    return per_sample_loss(loss, y, target).sum()


def loss_gradient(loss: Loss, y: Tensor, target: Tensor) -> Tensor:
    """``dL/dy`` in closed form (``2(y-T)``, ``y-T``, ``softmax(y) - T``)."""
    if loss is Loss.MSE_SUM:
        return 2.0 * (y - target)
    if loss is Loss.MSE_HALF:
        return y - target
    return torch.softmax(y, dim=-1) - target


def autograd_gradients(graph: Graph, inputs: Mapping[str, Tensor], target: Tensor,
                       loss: Loss) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The oracle: ``dL/dtheta`` and ``dL/dinput`` by reverse-mode autograd."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in graph.params.items()}
    ins = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    values = graph.forward(ins, leaves)
    total = loss_value(loss, values[graph.output], target)
    names = list(leaves) + list(ins)
    grads = torch.autograd.grad(total, [*leaves.values(), *ins.values()], allow_unused=True)
    out = {n: (torch.zeros_like(t) if g is None else g)
           for n, g, t in zip(names, grads, [*leaves.values(), *ins.values()])}
    return {k: out[k] for k in leaves}, {k: out[k] for k in ins}


@dataclass
class GraphRelaxation:
    """Result of :func:`relax_graph`.

    Attributes:
        values: forward-pass values of every vertex (frozen during relaxation).
        state: final PC errors (``-dL/dv`` at convergence) or AR activities (``+dL/dv``) of
            every non-input vertex.
        updates: parameter descent directions (``-dL/dtheta`` at convergence), before any
            learning rate.
        input_messages: ``sum_j J^T state_j`` arriving at each clamped input; PC gives
            ``-dL/dinput``, AR ``+dL/dinput`` at convergence.
        history: per-iteration copies of ``state`` when requested.
    """

    values: dict[str, Tensor]
    state: dict[str, Tensor]
    updates: dict[str, Tensor]
    input_messages: dict[str, Tensor]
    history: list[dict[str, Tensor]] | None = None


def relax_graph(
    graph: Graph,
    inputs: Mapping[str, Tensor],
    target: Tensor,
    *,
    algorithm: Algorithm = Algorithm.PC,
    loss: Loss = Loss.MSE_SUM,
    rate: float = 0.1,
    steps: int = 100,
    schedule: Schedule = Schedule.JACOBI,
    init_from_forward: bool = False,
    update_clamp: float | None = None,
    record: bool = False,
    on_step: Callable[[int, dict[str, Tensor]], None] | None = None,
) -> GraphRelaxation:
    """Relax the graph's error units (PC) or activities (AR) for one batch.

    Args:
        inputs: tensors for ``graph.inputs`` (clamped). target: loss target for the output.
        rate: Euler step (``0 < rate < 2`` converges under the fixed-prediction assumption).
        init_from_forward: AR only: start activities at the forward values (reference code)
            instead of zero; PC always starts with zero errors (``v = v_bar``).
        update_clamp: clamp each parameter update elementwise to ``+-update_clamp``.
        record: keep a copy of the state after every iteration.
        on_step: called as ``on_step(k, state)`` before the first iteration (``k = 0``) and
            after each one, without storing states (for monitoring long relaxations).
    """
    if not 0 < rate < 2:
        raise ValueError(f"rate must lie in (0, 2), got {rate}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    sign = 1.0 if algorithm is Algorithm.AR else -1.0
    with torch.no_grad():
        values = graph.forward(inputs)
    out = graph.output
    clamped = sign * loss_gradient(loss, values[out], target)
    lin = Linearisation(graph, values)
    by_name = {v.name: v for v in graph.vertices}
    all_names = list(by_name)

    def messages_from(name: str, s: Tensor, into: dict[str, Tensor]) -> None:
        """Add ``J_{name<-p}^T s`` to ``into[p]`` for every parent ``p`` of ``name``."""
        for p, m in zip(by_name[name].parents, lin.parent_messages(name, s)):
            into[p] = into[p] + m

    interior = [v.name for v in graph.vertices[:-1]]
    if algorithm is Algorithm.AR and init_from_forward:
        state = {n: values[n].detach().clone() for n in interior}
    else:
        state = {n: torch.zeros_like(values[n]) for n in interior}
    state[out] = clamped
    history = [dict(state)] if record else None
    if on_step is not None:
        on_step(0, state)
    zeros = {n: torch.zeros_like(values[n]) for n in (*graph.inputs, *state)}
    if schedule is Schedule.BLOCK_REVERSE:
        state = _block_reverse(graph, state, lin, zeros, rate, steps, history, on_step)
    for k in range(1, 1 + (0 if schedule is Schedule.BLOCK_REVERSE else steps)):
        if schedule is Schedule.JACOBI:
            incoming = dict(zeros)
            for name, msgs in lin.messages(all_names, state).items():
                for p, m in zip(by_name[name].parents, msgs):
                    incoming[p] = incoming[p] + m
            state = {n: (s if n == out else s + rate * (incoming[n] - s))
                     for n, s in state.items()}
        else:
            incoming = dict(zeros)
            new = dict(state)
            for v in reversed(graph.vertices):
                if v.name != out:
                    new[v.name] = state[v.name] + rate * (incoming[v.name] - state[v.name])
                messages_from(v.name, new[v.name], incoming)
            state = new
        if history is not None:
            history.append(dict(state))
        if on_step is not None:
            on_step(k, state)
    updates, into_inputs = read_out(graph, values, state, algorithm, lin)
    if update_clamp is not None:
        updates = {k: u.clamp(-update_clamp, update_clamp) for k, u in updates.items()}
    return GraphRelaxation(values, state, updates, into_inputs, history)


def read_out(
    graph: Graph,
    values: Mapping[str, Tensor],
    state: Mapping[str, Tensor],
    algorithm: Algorithm = Algorithm.PC,
    lin: Linearisation | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Parameter descent directions and the messages into the clamped inputs for a relaxation
    ``state`` (e.g. one entry of ``GraphRelaxation.history``) at forward ``values``."""
    lin = lin if lin is not None else Linearisation(graph, values)
    sign = 1.0 if algorithm is Algorithm.AR else -1.0
    updates = {k: torch.zeros_like(t) for k, t in graph.params.items()}
    into_inputs = {n: torch.zeros_like(values[n]) for n in graph.inputs}
    for v in graph.vertices:
        if v.params:
            for k, g in lin.param_cotangent(v.name, state[v.name]).items():
                updates[k] = updates[k] - sign * g  # PC: +(df/dtheta)^T eps; AR: -(...)^T x
        if any(p in into_inputs for p in v.parents):
            for p, m in zip(v.parents, lin.parent_messages(v.name, state[v.name])):
                if p in into_inputs:
                    into_inputs[p] = into_inputs[p] + m
    return updates, into_inputs


class Linearisation:
    """Every edge linearised once at the forward pass: per vertex, an autograd graph of
    ``fn(theta, *parents)`` with fresh leaves, kept alive so each vector-Jacobian product is
    one ``torch.autograd.grad`` call (the frozen Jacobians of the fixed-prediction
    assumption; about 20x cheaper per call than ``torch.func.vjp`` on CPU)."""

    def __init__(self, graph: Graph, values: Mapping[str, Tensor]) -> None:
        self._out: dict[str, Tensor] = {}
        self._parents: dict[str, list[Tensor]] = {}
        self._params: dict[str, dict[str, Tensor]] = {}
        with torch.enable_grad():
            for v in graph.vertices:
                parents = [values[p].detach().requires_grad_(True) for p in v.parents]
                theta = {k: graph.params[k].detach().requires_grad_(True) for k in v.params}
                self._out[v.name] = v.fn(theta, *parents)
                self._parents[v.name], self._params[v.name] = parents, theta

    def messages(self, names: list[str], states: Mapping[str, Tensor]) -> dict[str, list[Tensor]]:
        """``parent_messages`` for many vertices in one autograd call (the vertices' graphs
        are independent, so one backward pass computes them all)."""
        names = [n for n in names if self._parents[n]]
        if not names:
            return {}
        leaves = [x for n in names for x in self._parents[n]]
        with torch.enable_grad():
            grads = torch.autograd.grad([self._out[n] for n in names], leaves,
                                        [states[n] for n in names], retain_graph=True,
                                        allow_unused=True)
        out: dict[str, list[Tensor]] = {}
        i = 0
        for n in names:
            k = len(self._parents[n])
            out[n] = [torch.zeros_like(x) if g is None else g
                      for x, g in zip(self._parents[n], grads[i:i + k])]
            i += k
        return out

    def parent_messages(self, name: str, s: Tensor) -> list[Tensor]:
        """``J_{name<-p}^T s`` for each parent position of vertex ``name``."""
        leaves = self._parents[name]
        if not leaves:
            return []
        with torch.enable_grad():
            grads = torch.autograd.grad(self._out[name], leaves, s, retain_graph=True,
                                        allow_unused=True)
        return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]

    def param_cotangent(self, name: str, s: Tensor) -> dict[str, Tensor]:
        """``(d fn / d theta)^T s`` for each parameter of vertex ``name``."""
        theta = self._params[name]
        if not theta:
            return {}
        with torch.enable_grad():
            grads = torch.autograd.grad(self._out[name], list(theta.values()), s,
                                        retain_graph=True, allow_unused=True)
        return {k: torch.zeros_like(t) if g is None else g
                for (k, t), g in zip(theta.items(), grads)}

def _block_reverse(graph: Graph, state: dict[str, Tensor], lin: Linearisation,
                   zeros: dict[str, Tensor], rate: float, steps: int,
                   history: list[dict[str, Tensor]] | None,
                   on_step: Callable[[int, dict[str, Tensor]], None] | None,
                   ) -> dict[str, Tensor]:
    """Relax block by block, last block first; see :class:`Schedule`. ``on_step`` counts
    inner iterations over all blocks."""
    out = graph.output
    blocks = sorted({v.block for v in graph.vertices}, reverse=True)
    state = dict(state)
    count = 0
    for b in blocks:
        members = [v for v in graph.vertices if v.block == b and v.name != out]
        if not members:
            continue
        inside = {v.name for v in members}
        fixed = {n: zeros[n] for n in inside}  # messages from vertices outside the block
        for v in graph.vertices:
            if v.name in inside or not any(p in inside for p in v.parents):
                continue
            for p, m in zip(v.parents, lin.parent_messages(v.name, state[v.name])):
                if p in inside:
                    fixed[p] = fixed[p] + m
        member_names = [v.name for v in members]
        parents_of = {v.name: v.parents for v in members}
        for _ in range(steps):
            incoming = dict(fixed)
            for name, msgs in lin.messages(member_names, state).items():
                for p, m in zip(parents_of[name], msgs):
                    if p in inside:
                        incoming[p] = incoming[p] + m
            for n in inside:
                state[n] = state[n] + rate * (incoming[n] - state[n])
            count += 1
            if history is not None:
                history.append(dict(state))
            if on_step is not None:
                on_step(count, state)
    return state


class GraphModel:
    """A :class:`Graph` trained by SGD on updates from PC, AR or autograd backprop.

    ``train_batch(inputs, target)`` relaxes (or back-propagates), then applies
    ``theta += learning_rate * update`` for every parameter; it returns the batch loss at the
    forward pass. ``algorithm=None`` is the backprop twin: same graph, loss and learning rate.
    """

    def __init__(self, graph: Graph, algorithm: Algorithm | None, *, loss: Loss = Loss.MSE_SUM,
                 learning_rate: float = 1e-3, rate: float = 0.1, steps: int = 100,
                 schedule: Schedule = Schedule.JACOBI, update_clamp: float | None = None) -> None:
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.graph, self.algorithm, self.loss = graph, algorithm, loss
        self.learning_rate, self.rate, self.steps = learning_rate, rate, steps
        self.schedule, self.update_clamp = schedule, update_clamp

    def updates(self, inputs: Mapping[str, Tensor], target: Tensor) -> dict[str, Tensor]:
        """Descent directions for this batch (nothing is changed)."""
        if self.algorithm is None:
            grads, _ = autograd_gradients(self.graph, inputs, target, self.loss)
            ups = {k: -g for k, g in grads.items()}
            if self.update_clamp is not None:
                ups = {k: u.clamp(-self.update_clamp, self.update_clamp) for k, u in ups.items()}
            return ups
        return relax_graph(self.graph, inputs, target, algorithm=self.algorithm, loss=self.loss,
                           rate=self.rate, steps=self.steps, schedule=self.schedule,
                           update_clamp=self.update_clamp).updates

    def train_batch(self, inputs: Mapping[str, Tensor], target: Tensor) -> float:
        with torch.no_grad():
            value = float(loss_value(self.loss, self.predict(inputs), target))
        for k, u in self.updates(inputs, target).items():
            with torch.no_grad():
                self.graph.params[k].add_(u, alpha=self.learning_rate)
        return value

    def predict(self, inputs: Mapping[str, Tensor]) -> Tensor:
        with torch.no_grad():
            return self.graph.forward(inputs)[self.graph.output]
