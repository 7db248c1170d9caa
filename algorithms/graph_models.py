"""Ready-made computation graphs for :mod:`algorithms.graph`.

* :func:`scalar_graph`: the branching test function ``tan(sqrt(theta v0)) + sin(v0^2)`` of
  thesis section 6.2 (Fig 6.2);
* :func:`mlp_graph`: the layered network of a :class:`PCSpec` (same initial weights as
  ``algorithms.pc.init_params``), so the graph engine can be checked against the layered code;
* :func:`cnn_graph`: conv / max-pool / fully connected (the thesis PC-CNN and AR-CNN);
* :func:`rnn_graph` and :func:`lstm_graph`: recurrent networks unrolled through time, one
  block per time step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .graph import Graph, Vertex
from .pc import PCParams, init_params
from .activations import Activation
from .device import DeviceLike, generator_on, randn_on
from .spec import PCSpec

__all__ = ["cnn_graph", "lstm_graph", "mlp_graph", "rnn_graph", "scalar_graph"]


def scalar_graph(theta: float = 2.0, dtype: torch.dtype = torch.float64,
                 device: DeviceLike | None = None) -> Graph:
    """``v1 = theta v0, v2 = sqrt v1, v3 = tan v2, v4 = v0^2, v5 = sin v4, v6 = v3 + v5``.

    Input ``v0`` (clamped), parameter ``theta``; ``v0`` has two children (a branch)."""
    vertices = (
        Vertex("v1", ("v0",), lambda p, v0: p["theta"] * v0, ("theta",)),
        Vertex("v2", ("v1",), lambda p, v1: torch.sqrt(v1)),
        Vertex("v3", ("v2",), lambda p, v2: torch.tan(v2)),
        Vertex("v4", ("v0",), lambda p, v0: v0 * v0),
        Vertex("v5", ("v4",), lambda p, v4: torch.sin(v4)),
        Vertex("v6", ("v3", "v5"), lambda p, v3, v5: v3 + v5),
    )
    return Graph(("v0",), vertices, {"theta": torch.tensor(theta, dtype=dtype, device=device)})


def mlp_graph(spec: PCSpec, params: PCParams | None = None, *,
              device: DeviceLike | None = None) -> Graph:
    """The MLP ``h_{l+1} = f_{l+1}(h_l W_l^T + b_l)`` of ``spec`` as a graph with input ``x``
    (``B x n_0``) and vertices ``h1..hL``; weights ``W0..``, biases ``b0..`` taken from
    ``params`` (default: ``init_params(spec, device=device)``; the tensors are shared, not
    copied)."""
    p = params if params is not None else init_params(spec, device=device)
    named: dict[str, Tensor] = {}
    vertices = []
    prev = "x"
    for l, w in enumerate(p.weights):
        named[f"W{l}"] = w
        names = (f"W{l}",)
        b = p.biases[l]
        if b is not None:
            named[f"b{l}"] = b
            names = (f"W{l}", f"b{l}")
        act = spec.activation_of(l + 1)

        def fn(q: dict[str, Tensor], h: Tensor, _l: int = l, _act=act) -> Tensor:
            a = h @ q[f"W{_l}"].T
            if f"b{_l}" in q:
                a = a + q[f"b{_l}"]
            return _act.f(a)

        vertices.append(Vertex(f"h{l + 1}", (prev,), fn, names))
        prev = f"h{l + 1}"
    return Graph(("x",), tuple(vertices), named)


def _normal(g: torch.Generator | None, std: float, dtype: torch.dtype,
            device: torch.device, *shape: int) -> Tensor:
    """``N(0, std^2)`` drawn in float64 from ``g`` on ``device``, then cast (CPU draws are
    the ones every earlier result used)."""
    return (randn_on(shape, g, device, torch.float64) * std).to(dtype)


def cnn_graph(
    in_channels: int = 3,
    image_size: int = 32,
    conv_channels: tuple[int, ...] = (6, 16),
    kernel: int = 5,
    pool_after: tuple[bool, ...] = (True, False),
    fc_sizes: tuple[int, ...] = (200, 150),
    n_classes: int = 10,
    activation: Activation = Activation.RELU,
    init_std: float = 0.05,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: DeviceLike | None = None,
) -> Graph:
    """A CNN as a graph: ``conv_k`` (activation) -> optional 2x2 max-pool vertex -> ... ->
    flatten into ``fc`` layers (activation) -> linear ``out``. Defaults are the thesis's PC-CNN
    (spec ch6 3.8): 3x32x32 -> conv 6@5x5 -> pool -> conv 16@5x5 -> 1600 -> 200 -> 150 -> 10.
    Input ``x``: ``B x C x H x W``. No biases, weights ``N(0, init_std^2)``."""
    if len(pool_after) != len(conv_channels):
        raise ValueError("pool_after needs one flag per conv layer")
    dev = torch.device("cpu" if device is None else device)
    g = generator_on(dev, seed)
    params: dict[str, Tensor] = {}
    vertices: list[Vertex] = []
    prev, channels, size = "x", in_channels, image_size
    for i, (c, pool) in enumerate(zip(conv_channels, pool_after)):
        name = f"conv{i + 1}"
        params[f"K{i + 1}"] = _normal(g, init_std, dtype, dev, c, channels, kernel, kernel)
        vertices.append(Vertex(
            name, (prev,),
            lambda p, h, _k=f"K{i + 1}": activation.f(torch.nn.functional.conv2d(h, p[_k])),
            (f"K{i + 1}",)))
        prev, channels, size = name, c, size - kernel + 1
        if size < 1:
            raise ValueError(f"image too small for {len(conv_channels)} conv layers")
        if pool:
            vertices.append(Vertex(f"pool{i + 1}", (prev,),
                                   lambda p, h: torch.nn.functional.max_pool2d(h, 2)))
            prev, size = f"pool{i + 1}", size // 2
    width = channels * size * size
    for j, n in enumerate((*fc_sizes, n_classes)):
        last = j == len(fc_sizes)
        name = "out" if last else f"fc{j + 1}"
        params[f"F{j + 1}"] = _normal(g, init_std, dtype, dev, n, width)
        act = Activation.LINEAR if last else activation
        vertices.append(Vertex(
            name, (prev,),
            lambda p, h, _w=f"F{j + 1}", _a=act: _a.f(h.flatten(1) @ p[_w].T), (f"F{j + 1}",)))
        prev, width = name, n
    return Graph(("x",), tuple(vertices), params)


def rnn_graph(
    steps: int, n_in: int, n_hidden: int, n_out: int, *, init_std: float = 0.05,
    seed: int = 0, dtype: torch.dtype = torch.float32, device: DeviceLike | None = None,
) -> Graph:
    """An Elman RNN unrolled over ``steps``: ``h_t = tanh(h_{t-1} Wh^T + x_t Wx^T)``, one
    linear readout ``y = h_T Wy^T`` after the last step (thesis 6.2.2.1). Inputs ``h0`` and
    ``x1..xT`` (each ``B x n_in``); vertex ``h_t`` is in block ``t``."""
    dev = torch.device("cpu" if device is None else device)
    g = generator_on(dev, seed)
    params = {"Wh": _normal(g, init_std, dtype, dev, n_hidden, n_hidden),
              "Wx": _normal(g, init_std, dtype, dev, n_hidden, n_in),
              "Wy": _normal(g, init_std, dtype, dev, n_out, n_hidden)}
    vertices = []
    prev = "h0"
    for t in range(1, steps + 1):
        vertices.append(Vertex(
            f"h{t}", (prev, f"x{t}"),
            lambda p, h, x: torch.tanh(h @ p["Wh"].T + x @ p["Wx"].T), ("Wh", "Wx"), block=t))
        prev = f"h{t}"
    vertices.append(Vertex("y", (prev,), lambda p, h: h @ p["Wy"].T, ("Wy",), block=steps + 1))
    return Graph(("h0", *(f"x{t}" for t in range(1, steps + 1))), tuple(vertices), params)


def lstm_graph(
    steps: int, n_in: int, n_hidden: int, n_out: int, *, sigmoid_readout: bool = False,
    init_std: float = 0.05, seed: int = 0, dtype: torch.dtype = torch.float32,
    device: DeviceLike | None = None,
) -> Graph:
    """The LSTM cell of thesis appendix B unrolled over ``steps``, one vertex per operation:

    ``v1 = h (+) x_t``, ``v2 = s(Wf v1)`` (forget gate; the thesis's theta_i), ``v3 = c v2``,
    ``v4 = s(Wi v1)``, ``v5 = tanh(Wc v1)``, ``v6 = v4 v5``, ``v7 = v3 + v6`` (new cell),
    ``v8 = s(Wo v1)``, ``v9 = tanh(v7)``, ``v10 = v8 v9`` (new hidden), ``y_t = Wy v10``
    (sigmoid with ``sigmoid_readout``, as printed in the thesis; linear in its code).

    Inputs ``h0, c0, x1..xT``; the output ``y`` stacks the per-step readouts
    (``B x T x n_out``), so a loss on ``y`` sums over time. Vertices of step ``t`` are in
    block ``t`` (for the per-timestep reverse schedule).
    """
    dev = torch.device("cpu" if device is None else device)
    g = generator_on(dev, seed)
    n_cat = n_hidden + n_in
    params = {k: _normal(g, init_std, dtype, dev, n_hidden, n_cat)
              for k in ("Wf", "Wi", "Wc", "Wo")}
    params["Wy"] = _normal(g, init_std, dtype, dev, n_out, n_hidden)
    sig = torch.sigmoid
    readout = (lambda p, h: sig(h @ p["Wy"].T)) if sigmoid_readout else (lambda p, h: h @ p["Wy"].T)
    vertices: list[Vertex] = []
    h, c = "h0", "c0"
    for t in range(1, steps + 1):
        n = {k: f"v{k}_{t}" for k in range(1, 11)}
        vertices += [
            Vertex(n[1], (h, f"x{t}"), lambda p, a, b: torch.cat([a, b], dim=-1), block=t),
            Vertex(n[2], (n[1],), lambda p, v: sig(v @ p["Wf"].T), ("Wf",), block=t),
            Vertex(n[3], (c, n[2]), lambda p, a, b: a * b, block=t),
            Vertex(n[4], (n[1],), lambda p, v: sig(v @ p["Wi"].T), ("Wi",), block=t),
            Vertex(n[5], (n[1],), lambda p, v: torch.tanh(v @ p["Wc"].T), ("Wc",), block=t),
            Vertex(n[6], (n[4], n[5]), lambda p, a, b: a * b, block=t),
            Vertex(n[7], (n[3], n[6]), lambda p, a, b: a + b, block=t),
            Vertex(n[8], (n[1],), lambda p, v: sig(v @ p["Wo"].T), ("Wo",), block=t),
            Vertex(n[9], (n[7],), lambda p, v: torch.tanh(v), block=t),
            Vertex(n[10], (n[8], n[9]), lambda p, a, b: a * b, block=t),
            Vertex(f"y_{t}", (n[10],), readout, ("Wy",), block=t),
        ]
        h, c = n[10], n[7]
    vertices.append(Vertex("y", tuple(f"y_{t}" for t in range(1, steps + 1)),
                           lambda p, *ys: torch.stack(ys, dim=1), block=steps + 1))
    return Graph(("h0", "c0", *(f"x{t}" for t in range(1, steps + 1))), tuple(vertices), params)
