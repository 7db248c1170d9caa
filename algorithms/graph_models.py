"""Ready-made computation graphs for :mod:`algorithms.graph`.

* :func:`scalar_graph`: the branching test function ``tan(sqrt(theta v0)) + sin(v0^2)`` of
  thesis section 6.2 (Fig 6.2);
* :func:`mlp_graph`: the layered network of a :class:`PCSpec` (same initial weights as
  ``algorithms.pc.init_params``), so the graph engine can be checked against the layered code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .graph import Graph, Vertex
from .pc import PCParams, init_params
from .spec import PCSpec

__all__ = ["mlp_graph", "scalar_graph"]


def scalar_graph(theta: float = 2.0, dtype: torch.dtype = torch.float64) -> Graph:
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
    return Graph(("v0",), vertices, {"theta": torch.tensor(theta, dtype=dtype)})


def mlp_graph(spec: PCSpec, params: PCParams | None = None) -> Graph:
    """The MLP ``h_{l+1} = f_{l+1}(h_l W_l^T + b_l)`` of ``spec`` as a graph with input ``x``
    (``B x n_0``) and vertices ``h1..hL``; weights ``W0..``, biases ``b0..`` taken from
    ``params`` (default: ``init_params(spec)``; the tensors are shared, not copied)."""
    p = params if params is not None else init_params(spec)
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
