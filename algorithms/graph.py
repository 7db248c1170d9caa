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
from torch.utils._python_dispatch import TorchDispatchMode

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

    @property
    def device(self) -> torch.device:
        """Where the parameters live (the CPU for a graph without parameters)."""
        for t in self.params.values():
            return t.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> Graph:
        """Move every parameter to ``device`` in place (the dict keeps its keys); returns
        the graph."""
        for k, t in self.params.items():
            self.params[k] = t.to(device)
        return self

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
    """Scalar loss, summed over the batch (one reduction: the per-sample split is skipped)."""
    if loss is Loss.CROSS_ENTROPY:
        return per_sample_loss(loss, y, target).sum()
    d = y - target
    total = (d * d).sum()
    return 0.5 * total if loss is Loss.MSE_HALF else total


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
    dev = graph.device
    target = target.to(dev)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in graph.params.items()}
    ins = {k: v.detach().to(dev).clone().requires_grad_(True) for k, v in inputs.items()}
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
    input_messages: bool = True,
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
        input_messages: compute ``GraphRelaxation.input_messages`` (one extra vector-Jacobian
            product per edge out of an input); ``False`` leaves that dict empty.

    Cost: the clamped inputs never relax, so the iterations send no messages into them, and
    the output's message is sent once (its state is clamped); each Jacobi iteration is one
    autograd call over the remaining edges, each Gauss-Seidel sweep one per vertex.
    """
    if not 0 < rate < 2:
        raise ValueError(f"rate must lie in (0, 2), got {rate}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    sign = 1.0 if algorithm is Algorithm.AR else -1.0
    dev = graph.device  # a batch on another device (a CPU batch for a CUDA graph) moves
    inputs, target = {k: v.to(dev) for k, v in inputs.items()}, target.to(dev)
    lin, values = Linearisation.of_forward(graph, inputs)
    out = graph.output
    clamped = sign * loss_gradient(loss, values[out], target)
    clamped_inputs = set(graph.inputs)

    def relaxing(p: str) -> bool:
        return p not in clamped_inputs

    interior = [v.name for v in graph.vertices[:-1]]
    if algorithm is Algorithm.AR and init_from_forward:
        state = {n: values[n].detach().clone() for n in interior}
    else:
        state = {n: torch.zeros_like(values[n]) for n in interior}
    state[out] = clamped
    history = [dict(state)] if record else None
    if on_step is not None:
        on_step(0, state)
    if schedule is Schedule.BLOCK_REVERSE:
        state = _block_reverse(graph, state, lin, rate, steps, history, on_step)
    elif schedule is Schedule.JACOBI and steps > 0:
        # the output is clamped: its messages are the same at every iteration
        fixed: dict[str, Tensor] = {}
        _accumulate(fixed, lin.vjps([out], state, relaxing))
        send = lin._sender([n for n in interior
                            if any(relaxing(p) for p in lin.parents_of(n))], relaxing)
        zero = {n: torch.zeros_like(state[n]) for n in interior}
        # nobody else sees the iterates: update them in place (unless a message is a view
        # of a state, e.g. through an identity edge, which would see the update early)
        in_place = history is None and on_step is None
        storages = {state[n].untyped_storage().data_ptr() for n in interior}
        for k in range(1, 1 + steps):
            incoming = dict(fixed)
            for p, m in send(state):
                prev = incoming.get(p)
                incoming[p] = m if prev is None else prev + m
            if in_place and not any(m.untyped_storage().data_ptr() in storages
                                    for m in incoming.values()):
                for n in interior:
                    state[n].lerp_(incoming.get(n, zero[n]), rate)
                continue
            new = {n: torch.lerp(state[n], incoming.get(n, zero[n]), rate) for n in interior}
            new[out] = clamped
            state = new
            storages = {state[n].untyped_storage().data_ptr() for n in interior}
            if history is not None:
                history.append(dict(state))
            if on_step is not None:
                on_step(k, state)
    else:
        for k in range(1, 1 + steps):
            incoming: dict[str, Tensor] = {}
            new = dict(state)
            for v in reversed(graph.vertices):
                if v.name != out:
                    s = state[v.name]
                    m = incoming.get(v.name)
                    new[v.name] = torch.lerp(s, torch.zeros_like(s) if m is None else m, rate)
                _accumulate(incoming, lin.vjps([v.name], new, relaxing))
            state = new
            if history is not None:
                history.append(dict(state))
            if on_step is not None:
                on_step(k, state)
    updates, into_inputs = read_out(graph, values, state, algorithm, lin,
                                    input_messages=input_messages)
    if update_clamp is not None:
        updates = {k: u.clamp(-update_clamp, update_clamp) for k, u in updates.items()}
    return GraphRelaxation(values, state, updates, into_inputs, history)


def _accumulate(into: dict[str, Tensor], vjps: Mapping[str, list[tuple[str, Tensor]]]) -> None:
    """Sum messages ``(parent, J^T s)`` into ``into[parent]`` (absent means zero)."""
    for msgs in vjps.values():
        for p, m in msgs:
            prev = into.get(p)
            into[p] = m if prev is None else prev + m


def read_out(
    graph: Graph,
    values: Mapping[str, Tensor],
    state: Mapping[str, Tensor],
    algorithm: Algorithm = Algorithm.PC,
    lin: Linearisation | None = None,
    *,
    input_messages: bool = True,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Parameter descent directions and the messages into the clamped inputs for a relaxation
    ``state`` (e.g. one entry of ``GraphRelaxation.history``) at forward ``values``; one
    autograd call for all of them. ``input_messages=False`` skips (and returns no) input
    messages."""
    lin = lin if lin is not None else Linearisation(graph, values)
    sign = 1.0 if algorithm is Algorithm.AR else -1.0
    into_inputs = ({n: torch.zeros_like(values[n]) for n in graph.inputs} if input_messages
                   else {})
    names = [v.name for v in graph.vertices
             if v.params or any(p in into_inputs for p in v.parents)]
    msgs, cot = lin.vjps(names, state, into_inputs.__contains__, params=True)
    updates: dict[str, Tensor] = {}
    reached: set[str] = set()
    for n in names:
        for k, g in cot[n].items():
            step = g if sign < 0 else -g  # PC: +(df/dtheta)^T eps; AR: -(...)^T x
            updates[k] = updates[k] + step if k in reached else step
            reached.add(k)
        for p, m in msgs[n]:
            into_inputs[p] = into_inputs[p] + m
    updates = {k: updates[k] if k in reached else torch.zeros_like(t)
               for k, t in graph.params.items()}
    return updates, into_inputs


class Linearisation:
    """Every edge linearised once at the forward pass: per vertex, an autograd graph of
    ``fn(theta, *parents)`` with fresh leaves, kept alive so each vector-Jacobian product is
    one ``torch.autograd.grad`` call (the frozen Jacobians of the fixed-prediction
    assumption; about 20x cheaper per call than ``torch.func.vjp`` on CPU). A call asks only
    for the leaves it needs, so autograd runs only the parts of the backward graph that lead
    to them."""

    def __init__(self, graph: Graph, values: Mapping[str, Tensor]) -> None:
        self._build(graph, values)

    @classmethod
    def of_forward(cls, graph: Graph, inputs: Mapping[str, Tensor],
                   ) -> tuple[Linearisation, dict[str, Tensor]]:
        """Linearise while running the forward pass (one pass instead of two); returns the
        linearisation and the forward values (detached, equal to ``graph.forward(inputs)``)."""
        missing = [n for n in graph.inputs if n not in inputs]
        if missing:
            raise ValueError(f"missing inputs {missing}")
        lin = cls.__new__(cls)
        values = {n: inputs[n] for n in graph.inputs}
        lin._build(graph, values, extend=True)
        return lin, values

    def _build(self, graph: Graph, values: Mapping[str, Tensor] | dict[str, Tensor],
               extend: bool = False) -> None:
        self._out: dict[str, Tensor] = {}
        self._parents: dict[str, list[Tensor]] = {}
        self._params: dict[str, dict[str, Tensor]] = {}
        self._parent_names: dict[str, tuple[str, ...]] = {}
        self._replays: dict[tuple, _Replay | bool | None] = {}
        with torch.enable_grad():
            for v in graph.vertices:
                parents = [values[p].detach().requires_grad_(True) for p in v.parents]
                theta = {k: graph.params[k].detach().requires_grad_(True) for k in v.params}
                self._out[v.name] = v.fn(theta, *parents)
                self._parents[v.name], self._params[v.name] = parents, theta
                self._parent_names[v.name] = v.parents
                if extend:
                    values[v.name] = self._out[v.name].detach()  # type: ignore[index]

    def parents_of(self, name: str) -> tuple[str, ...]:
        return self._parent_names[name]

    def vjps(self, names: list[str], states: Mapping[str, Tensor],
             wanted: Callable[[str], bool], *, params: bool = False):
        """``J_{name<-p}^T states[name]`` for the parents ``p`` of each vertex with
        ``wanted(p)``, as ``{name: [(p, message), ...]}``, in one backward pass; with
        ``params=True`` also returns ``{name: {theta: (d fn/d theta)^T states[name]}}``.

        The products are linear in ``states``: a call repeated with the same selection is
        replayed from the aten operations autograd ran (see :class:`_Replay`), without the
        autograd engine."""
        outs, grads_out, leaves, picks, key = [], [], [], [], []
        for n in names:
            pos = tuple(i for i, p in enumerate(self._parent_names[n]) if wanted(p))
            th = tuple(self._params[n]) if params else ()
            live = bool(pos or th) and self._out[n].requires_grad
            picks.append((n, pos, th, live))
            key.append((n, pos, th))
            if live:
                outs.append(self._out[n])
                grads_out.append(states[n])
                leaves.extend(self._parents[n][i] for i in pos)
                leaves.extend(self._params[n][k] for k in th)
        grads: tuple[Tensor | None, ...] | list[Tensor | None] = ()
        if outs:
            grads = self._grad(tuple(key), outs, leaves, grads_out)
        msgs: dict[str, list[tuple[str, Tensor]]] = {}
        cot: dict[str, dict[str, Tensor]] = {}
        i = 0
        for n, pos, th, live in picks:
            got = []
            for j in pos:
                x = self._parents[n][j]
                g = grads[i] if live else None
                i += 1 if live else 0
                got.append((self._parent_names[n][j], torch.zeros_like(x) if g is None else g))
            msgs[n] = got
            c = {}
            for k in th:
                g = grads[i] if live else None
                i += 1 if live else 0
                c[k] = torch.zeros_like(self._params[n][k]) if g is None else g
            cot[n] = c
        return (msgs, cot) if params else msgs

    def _sender(self, names: list[str], wanted: Callable[[str], bool],
                ) -> Callable[[Mapping[str, Tensor]], list[tuple[str, Tensor]]]:
        """``states -> [(parent, J^T states[name]), ...]`` over the wanted parents of
        ``names`` (what :meth:`vjps` computes, without its per-call bookkeeping; a missing
        pair is a zero message). For loops that send the same messages at every step."""
        outs, senders, leaves, targets, key = [], [], [], [], []
        for n in names:
            pos = tuple(i for i, p in enumerate(self._parent_names[n]) if wanted(p))
            key.append((n, pos, ()))
            if pos and self._out[n].requires_grad:
                outs.append(self._out[n])
                senders.append(n)
                leaves.extend(self._parents[n][i] for i in pos)
                targets.extend(self._parent_names[n][i] for i in pos)
        frozen = tuple(key)
        if not outs:
            return lambda states: []

        def send(states: Mapping[str, Tensor]) -> list[tuple[str, Tensor]]:
            grads = self._grad(frozen, outs, leaves, [states[n] for n in senders])
            return [(p, g) for p, g in zip(targets, grads) if g is not None]

        return send

    def _grad(self, key: tuple, outs: list[Tensor], leaves: list[Tensor],
              grads_out: list[Tensor]) -> tuple[Tensor | None, ...] | list[Tensor | None]:
        """``torch.autograd.grad(outs, leaves, grads_out)``; from the second call with the
        same ``key`` on, replayed (when the replay reproduces autograd bitwise)."""
        prog = self._replays.get(key)
        if isinstance(prog, _Replay) and prog.accepts(grads_out):
            return prog(grads_out)
        if key not in self._replays:
            self._replays[key] = None
        elif prog is None:  # second call: try to record a replay
            self._replays[key] = _Replay.record(outs, leaves, grads_out) or False
            return self._grad(key, outs, leaves, grads_out)
        with torch.enable_grad():
            return torch.autograd.grad(outs, leaves, grads_out, retain_graph=True,
                                       allow_unused=True)

    def messages(self, names: list[str], states: Mapping[str, Tensor]) -> dict[str, list[Tensor]]:
        """``parent_messages`` for many vertices in one autograd call (the vertices' graphs
        are independent, so one backward pass computes them all)."""
        names = [n for n in names if self._parents[n]]
        got = self.vjps(names, states, lambda p: True)
        return {n: [m for _, m in got[n]] for n in names}

    def parent_messages(self, name: str, s: Tensor) -> list[Tensor]:
        """``J_{name<-p}^T s`` for each parent position of vertex ``name``."""
        return [m for _, m in self.vjps([name], {name: s}, lambda p: True)[name]]

    def param_cotangent(self, name: str, s: Tensor) -> dict[str, Tensor]:
        """``(d fn / d theta)^T s`` for each parameter of vertex ``name``."""
        return self.vjps([name], {name: s}, lambda p: False, params=True)[1][name]


class _Tape(TorchDispatchMode):
    """Records every aten operation (with its arguments and result) run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no torch.compile here; wrapping would import torch._dynamo (~1 s)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.calls.append((func, args, kwargs, out))
        return out


_REPLAY_CODE: dict[str, Callable] = {}


class _Replay:
    """A backward pass through frozen autograd graphs, replayed as straight-line aten calls.

    Under the fixed-prediction assumption a vector-Jacobian product is a fixed linear map of
    its cotangents. :meth:`record` runs ``torch.autograd.grad`` once on probe cotangents
    under a :class:`_Tape`, keeps the operations that depend on the cotangents (operations
    on saved tensors alone are constants, e.g. ``W.t()``) and generates a Python function
    that calls them in order; the replay runs exactly those aten operations on the new
    cotangents, so it equals autograd bitwise. The recording is checked by replaying it on
    the probes and comparing with autograd's result (``torch.equal``); it is refused (the
    caller keeps calling autograd) if they differ, if an operation returns a non-tensor
    (value-dependent control flow such as ``.item()``) or writes into a saved tensor or a
    cotangent, or if a later call's cotangents differ in shape, strides, dtype or device."""

    def __init__(self, fn: Callable, consts: list, ops: list, signature: list[tuple]) -> None:
        self._fn, self._consts, self._ops, self._signature = fn, consts, ops, signature

    def accepts(self, grads_out: list[Tensor]) -> bool:
        return len(grads_out) == len(self._signature) and all(
            (g.shape, g.stride(), g.dtype, g.device) == sig
            for g, sig in zip(grads_out, self._signature))

    def __call__(self, grads_out: list[Tensor]) -> list[Tensor | None]:
        if any(g.requires_grad for g in grads_out):  # constants are detached
            with torch.no_grad():
                return self._fn(grads_out, self._consts, self._ops)
        return self._fn(grads_out, self._consts, self._ops)

    @staticmethod
    def record(outs: list[Tensor], leaves: list[Tensor],
               grads_out: list[Tensor]) -> _Replay | None:
        if not all(g.is_contiguous() and g.is_floating_point() for g in grads_out):
            return None
        tape = _Tape()
        try:  # probes: fixed, generic cotangents (no random numbers drawn)
            probes = [torch.sin(0.7548776662 * torch.arange(1, g.numel() + 1, dtype=g.dtype,
                                                            device=g.device)).reshape(g.shape)
                      for g in grads_out]
            with torch.enable_grad(), tape:
                expected = torch.autograd.grad(outs, leaves, probes, retain_graph=True,
                                               allow_unused=True)
        except Exception:  # noqa: BLE001 - anything unusual: no replay, autograd as before
            return None
        made = _Replay._compile(tape.calls, probes, list(expected))
        if made is None:
            return None
        prog = _Replay(*made, [(g.shape, g.stride(), g.dtype, g.device) for g in grads_out])
        got = prog(probes)
        if len(got) != len(expected) or not all(
                (a is None and b is None) or (a is not None and b is not None
                                              and a.shape == b.shape and a.dtype == b.dtype
                                              and torch.equal(a, b))
                for a, b in zip(got, expected)):
            return None
        return prog

    @staticmethod
    def _compile(calls: list[tuple], probes: list[Tensor], results: list[Tensor | None]):
        """Source of the replay function, or ``None`` if the tape cannot be replayed."""
        kind: dict[int, tuple[str, str]] = {}   # id(tensor) -> (kind, expression)
        protected: set[int] = set()             # constants, cotangents and their views
        consts: list = []
        ops: list = []
        lines = []
        keep = []  # keeps every recorded tensor alive, so ids are not reused

        def const(value) -> str:
            if isinstance(value, Tensor):
                value = value.detach()
            consts.append(value)
            return f"c[{len(consts) - 1}]"

        for i, t in enumerate(probes):
            kind[id(t)] = ("dyn", f"p{i}")
            protected.add(id(t))

        def tensors_in(x):
            if isinstance(x, Tensor):
                yield x
            elif isinstance(x, (list, tuple)):
                for y in x:
                    yield from tensors_in(y)

        def expr(x, dynamic: list[bool]) -> str:
            if isinstance(x, Tensor):
                k = kind.get(id(x))
                if k is None:  # a saved tensor (or a parameter) met for the first time
                    keep.append(x)
                    k = ("const", const(x))
                    kind[id(x)] = k
                    protected.add(id(x))
                if k[0] == "dyn":
                    dynamic[0] = True
                return k[1]
            if isinstance(x, (list, tuple)) and any(isinstance(y, Tensor) for y in x):
                inner = ", ".join(expr(y, dynamic) for y in x)
                return f"[{inner}]" if isinstance(x, list) else f"({inner},)"
            return const(x)

        for func, args, kwargs, out in calls:
            keep.append((args, kwargs, out))
            schema = func._schema
            outs_t = out if isinstance(out, (tuple, list)) else (out,)
            if not all(o is None or isinstance(o, Tensor) for o in outs_t):
                return None  # value-dependent (e.g. .item()): not a fixed linear map
            written, viewed = [], []
            for j, a in enumerate(args):
                info = schema.arguments[j].alias_info if j < len(schema.arguments) else None
                if info is not None:
                    (written if info.is_write else viewed).extend(tensors_in(a))
            by_name = {arg.name: arg for arg in schema.arguments}
            for name, a in kwargs.items():
                info = by_name[name].alias_info if name in by_name else None
                if info is not None:
                    (written if info.is_write else viewed).extend(tensors_in(a))
            if any(id(w) in protected or id(w) not in kind for w in written):
                return None  # would write into a saved tensor or a cotangent
            dynamic = [False]
            arg_src = [expr(a, dynamic) for a in args]
            kw_src = [f"{k}={expr(v, dynamic)}" for k, v in kwargs.items()]
            if not dynamic[0] and not written:
                for o in outs_t:  # folded: computed once, at the recording
                    if o is not None and id(o) not in kind:
                        kind[id(o)] = ("const", const(o))
                        protected.add(id(o))
                continue
            ops.append(getattr(func, "_op", func))  # the C++ op behind the OpOverload
            name = f"v{len(ops) - 1}"
            lines.append(f"    {name} = f[{len(ops) - 1}]({', '.join(arg_src + kw_src)})")
            aliases_protected = any(id(v) in protected for v in viewed)
            if isinstance(out, (tuple, list)):
                for j, o in enumerate(out):
                    if o is not None and id(o) not in kind:
                        kind[id(o)] = ("dyn", f"{name}[{j}]")
                        if aliases_protected:
                            protected.add(id(o))
            elif id(out) not in kind:
                kind[id(out)] = ("dyn", name)
                if aliases_protected:
                    protected.add(id(out))
        ret = []
        for r in results:
            if r is None:
                ret.append("None")
                continue
            k = kind.get(id(r))
            if k is None:
                return None
            ret.append(k[1] if k[0] == "dyn" else f"{k[1]}.clone()")
        head = [f"    p{i} = g[{i}]" for i in range(len(probes))]
        src = "def replay(g, c, f):\n" + "\n".join(head + lines) + \
            f"\n    return [{', '.join(ret)}]\n"
        fn = _REPLAY_CODE.get(src)
        if fn is None:
            scope: dict = {}
            exec(compile(src, "<graph replay>", "exec"), scope)  # noqa: S102
            fn = _REPLAY_CODE[src] = scope["replay"]
        return fn, consts, ops


def _block_reverse(graph: Graph, state: dict[str, Tensor], lin: Linearisation,
                   rate: float, steps: int,
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
        # messages from vertices outside the block (held fixed while it relaxes)
        fixed: dict[str, Tensor] = {}
        outside = [v.name for v in graph.vertices
                   if v.name not in inside and any(p in inside for p in v.parents)]
        _accumulate(fixed, lin.vjps(outside, state, inside.__contains__))
        senders = [v.name for v in members if any(p in inside for p in v.parents)]
        for _ in range(steps):
            incoming = dict(fixed)
            _accumulate(incoming, lin.vjps(senders, state, inside.__contains__))
            for v in members:
                s = state[v.name]
                m = incoming.get(v.name)
                state[v.name] = torch.lerp(s, torch.zeros_like(s) if m is None else m, rate)
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

    def _here(self, inputs: Mapping[str, Tensor], target: Tensor | None = None
              ) -> tuple[dict[str, Tensor], Tensor | None]:
        """The batch on the graph's device (a CPU batch for a CUDA graph is copied there)."""
        dev = self.graph.device
        moved = {k: v.to(dev) for k, v in inputs.items()}
        return moved, None if target is None else target.to(dev)

    def updates(self, inputs: Mapping[str, Tensor], target: Tensor) -> dict[str, Tensor]:
        """Descent directions for this batch (nothing is changed)."""
        inputs, target = self._here(inputs, target)
        assert target is not None
        if self.algorithm is None:
            grads, _ = autograd_gradients(self.graph, inputs, target, self.loss)
            ups = {k: -g for k, g in grads.items()}
            if self.update_clamp is not None:
                ups = {k: u.clamp(-self.update_clamp, self.update_clamp) for k, u in ups.items()}
            return ups
        return self._relax(inputs, target).updates

    def _relax(self, inputs: Mapping[str, Tensor], target: Tensor) -> GraphRelaxation:
        assert self.algorithm is not None
        return relax_graph(self.graph, inputs, target, algorithm=self.algorithm, loss=self.loss,
                           rate=self.rate, steps=self.steps, schedule=self.schedule,
                           update_clamp=self.update_clamp, input_messages=False)

    def train_batch(self, inputs: Mapping[str, Tensor], target: Tensor) -> float:
        inputs, target = self._here(inputs, target)
        assert target is not None
        if self.algorithm is None:
            with torch.no_grad():
                value = float(loss_value(self.loss, self.predict(inputs), target))
            ups = self.updates(inputs, target)
        else:  # the relaxation's forward pass is the prediction
            r = self._relax(inputs, target)
            with torch.no_grad():
                value = float(loss_value(self.loss, r.values[self.graph.output], target))
            ups = r.updates
        for k, u in ups.items():
            with torch.no_grad():
                self.graph.params[k].add_(u, alpha=self.learning_rate)
        return value

    def predict(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The output vertex's forward value, on the graph's device."""
        with torch.no_grad():
            return self.graph.forward(self._here(inputs)[0])[self.graph.output]
