"""PC and AR on computation graphs against autograd and closed forms (ch6 spec section 11)."""

from __future__ import annotations

import math

import pytest
import torch

from algorithms.fidelity import compare, gradient_angle
from algorithms.graph import (Algorithm, Graph, Loss, Schedule, Vertex, autograd_gradients,
                              relax_graph)
from algorithms.graph_models import mlp_graph, scalar_graph
from algorithms.pc import relax, weight_update, init_params
from algorithms.spec import Activation, PCSpec

F64 = torch.float64


def test_scalar_graph_reference_values():
    """Forward values, loss and gradients of tan(sqrt(theta v0)) + sin(v0^2) (spec 3.13)."""
    g = scalar_graph()
    v0, target = torch.tensor(5.0, dtype=F64), torch.tensor(3.0, dtype=F64)
    values = g.forward({"v0": v0})
    expected = {"v1": 10.0, "v2": 3.16227766, "v3": 0.02068796, "v4": 25.0,
                "v5": -0.13235175, "v6": -0.11166379}
    for k, v in expected.items():
        assert float(values[k]) == pytest.approx(v, abs=1e-8)
    # closed form: L = (v6 - T)^2, dL/dv0 = 2(v6-T)[theta sec^2(v2) / (2 v2) + 2 v0 cos(v0^2)]
    d = 2 * (float(values["v6"]) - 3.0)
    v2 = math.sqrt(10.0)
    dv0 = d * (2.0 / math.cos(v2) ** 2 / (2 * v2) + 10.0 * math.cos(25.0))
    dtheta = d * (5.0 / math.cos(v2) ** 2 / (2 * v2))
    assert dv0 == pytest.approx(-63.654629, abs=1e-5)
    assert dtheta == pytest.approx(-4.9220782, abs=1e-6)
    gp, gi = autograd_gradients(g, {"v0": v0}, target, Loss.MSE_SUM)
    assert float(gi["v0"]) == pytest.approx(dv0, rel=1e-12)
    assert float(gp["theta"]) == pytest.approx(dtheta, rel=1e-12)


@pytest.mark.parametrize("rate,steps,err", [(0.1, 10, 47.2), (0.1, 50, 2.30), (0.1, 100, 0.0237),
                                            (0.1, 200, 1.4e-6), (0.2, 100, 4.6e-7)])
def test_scalar_graph_convergence_table(rate, steps, err):
    g = scalar_graph()
    v0, target = torch.tensor(5.0, dtype=F64), torch.tensor(3.0, dtype=F64)
    _, gi = autograd_gradients(g, {"v0": v0}, target, Loss.MSE_SUM)
    r = relax_graph(g, {"v0": v0}, target, rate=rate, steps=steps)
    got = abs(float(-r.input_messages["v0"]) - float(gi["v0"]))
    assert got == pytest.approx(err, rel=0.03)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_scalar_graph_exact_after_depth_steps_at_rate_one(algorithm):
    g = scalar_graph()
    v0, target = torch.tensor(5.0, dtype=F64), torch.tensor(3.0, dtype=F64)
    gp, gi = autograd_gradients(g, {"v0": v0}, target, Loss.MSE_SUM)
    r = relax_graph(g, {"v0": v0}, target, algorithm=algorithm, rate=1.0, steps=3)
    assert float(r.updates["theta"]) == pytest.approx(-float(gp["theta"]), rel=1e-12)
    sign = -1.0 if algorithm is Algorithm.PC else 1.0
    assert float(sign * r.input_messages["v0"]) == pytest.approx(float(gi["v0"]), rel=1e-12)
    short = relax_graph(g, {"v0": v0}, target, algorithm=algorithm, rate=1.0, steps=2)
    assert float(short.updates["theta"]) == 0.0  # v1 is 3 hops from the output


def _random_dag(seed: int) -> tuple[Graph, dict[str, torch.Tensor], torch.Tensor]:
    """Branching, multiplicative and residual vertices with a shared weight matrix."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=F64) * 0.5

    params = {"A": r(6, 5), "B": r(6, 6), "C": r(4, 6), "b": r(6)}
    vertices = (
        Vertex("h1", ("x",), lambda p, x: torch.tanh(x @ p["A"].T + p["b"]), ("A", "b")),
        Vertex("h2", ("h1",), lambda p, h: torch.sigmoid(h @ p["B"].T), ("B",)),
        Vertex("h3", ("h1", "h2"), lambda p, a, b: a * b),                 # multiplicative
        Vertex("h4", ("h3",), lambda p, h: torch.tanh(h @ p["B"].T), ("B",)),  # shared B
        Vertex("h5", ("h4", "h1"), lambda p, a, b: a + b),                 # residual
        Vertex("h6", ("h5", "x"), lambda p, h, x: torch.relu(h @ p["C"].T) + x[:, :4] ** 2,
               ("C",)),                                                    # branch from input
    )
    g = Graph(("x",), vertices, params)
    return g, {"x": r(3, 5)}, r(3, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("schedule", list(Schedule))
@pytest.mark.parametrize("loss", [Loss.MSE_SUM, Loss.CROSS_ENTROPY])
def test_random_graphs_converge_to_autograd(seed, algorithm, schedule, loss):
    g, inputs, target = _random_dag(seed)
    if loss is Loss.CROSS_ENTROPY:
        target = torch.softmax(target, dim=-1)
    gp, gi = autograd_gradients(g, inputs, target, loss)
    r = relax_graph(g, inputs, target, algorithm=algorithm, loss=loss, rate=0.5, steps=120,
                    schedule=schedule)
    for k, grad in gp.items():
        torch.testing.assert_close(r.updates[k], -grad, rtol=1e-6, atol=1e-10)
    sign = -1.0 if algorithm is Algorithm.PC else 1.0
    torch.testing.assert_close(sign * r.input_messages["x"], gi["x"], rtol=1e-6, atol=1e-10)


def test_reverse_gauss_seidel_at_rate_one_is_one_backward_sweep():
    g, inputs, target = _random_dag(4)
    gp, _ = autograd_gradients(g, inputs, target, Loss.MSE_SUM)
    r = relax_graph(g, inputs, target, rate=1.0, steps=1, schedule=Schedule.REVERSE_GAUSS_SEIDEL)
    for k, grad in gp.items():
        torch.testing.assert_close(r.updates[k], -grad, rtol=1e-12, atol=1e-12)


def test_pc_errors_are_minus_ar_activities_at_every_iteration():
    g, inputs, target = _random_dag(5)
    pc = relax_graph(g, inputs, target, algorithm=Algorithm.PC, rate=0.3, steps=15, record=True)
    ar = relax_graph(g, inputs, target, algorithm=Algorithm.AR, rate=0.3, steps=15, record=True)
    for s_pc, s_ar in zip(pc.history, ar.history):
        for k in s_pc:
            torch.testing.assert_close(s_pc[k], -s_ar[k], rtol=0, atol=1e-14)


def test_mlp_graph_matches_the_layered_pc_code():
    """The graph engine on the spec's MLP equals the hand-written layered rules under the
    fixed-prediction assumption (same weights, energy 1/2||eps||^2, same iterations)."""
    spec = PCSpec(sizes=(7, 6, 5, 4), activation=Activation.TANH, dtype="float64",
                  fixed_predictions=True, inference_rate=0.2, inference_steps=7,
                  use_bias=True, init_scale=0.4)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 7, generator=gen, dtype=F64)
    target = torch.rand(3, 4, generator=gen, dtype=F64)
    params = init_params(spec)
    rl = relax(params, spec, x0, target)
    up = weight_update(params, spec, rl.x, rl.forward)
    r = relax_graph(mlp_graph(spec), {"x": x0}, target, loss=Loss.MSE_HALF, rate=0.2, steps=7)
    for l in range(spec.n_layers):
        torch.testing.assert_close(r.updates[f"W{l}"], up.weights[l], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(r.updates[f"b{l}"], up.biases[l], rtol=1e-12, atol=1e-14)


def test_fidelity_instruments():
    g = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=F64)
    assert gradient_angle(-g, g) == pytest.approx(0.0, abs=1e-6)
    assert gradient_angle(g, g) == pytest.approx(180.0)
    assert gradient_angle(torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=F64), g) == pytest.approx(90.0)
    assert math.isnan(gradient_angle(torch.zeros(2, 2), g))
    f = compare({"W": -2 * g}, {"W": g})["W"]
    assert f.relative_error == pytest.approx(1.0) and f.squared_divergence == pytest.approx(1.0)


def test_graph_validation():
    with pytest.raises(ValueError, match="topological order"):
        Graph(("x",), (Vertex("b", ("a",), lambda p, a: a), Vertex("a", ("x",), lambda p, x: x)), {})
    with pytest.raises(ValueError, match="unknown parameters"):
        Graph(("x",), (Vertex("a", ("x",), lambda p, x: x, ("W",)),), {})
    with pytest.raises(ValueError, match="used twice"):
        Graph(("x",), (Vertex("x", ("x",), lambda p, x: x),), {})
    g = scalar_graph()
    with pytest.raises(ValueError, match="rate"):
        relax_graph(g, {"v0": torch.tensor(5.0, dtype=F64)}, torch.tensor(3.0, dtype=F64), rate=2.5)


def _inputs_rnn(graph: Graph, n_in: int, batch: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in graph.inputs:
        if name in ("h0", "c0"):
            continue
        out[name] = torch.randn(batch, n_in, generator=g, dtype=F64)
    return out


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_cnn_converges_to_autograd(algorithm):
    from algorithms.graph_models import cnn_graph

    g = cnn_graph(in_channels=2, image_size=10, conv_channels=(3, 4), kernel=3,
                  pool_after=(True, False), fc_sizes=(7,), n_classes=5, init_std=0.3,
                  dtype=F64, seed=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 10, 10, generator=gen, dtype=F64)
    target = torch.rand(3, 5, generator=gen, dtype=F64)
    gp, _ = autograd_gradients(g, {"x": x}, target, Loss.MSE_SUM)
    r = relax_graph(g, {"x": x}, target, algorithm=algorithm, rate=1.0, steps=len(g.vertices))
    for k, grad in gp.items():
        torch.testing.assert_close(r.updates[k], -grad, rtol=1e-9, atol=1e-12)
    r = relax_graph(g, {"x": x}, target, algorithm=algorithm, rate=0.2, steps=150)
    for k, grad in gp.items():
        torch.testing.assert_close(r.updates[k], -grad, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("schedule", [Schedule.JACOBI, Schedule.BLOCK_REVERSE])
def test_rnn_converges_to_autograd(schedule):
    from algorithms.graph_models import rnn_graph

    g = rnn_graph(4, 3, 5, 2, init_std=0.5, dtype=F64, seed=2)
    inputs = {"h0": torch.zeros(2, 5, dtype=F64), **_inputs_rnn(g, 3, 2, 1)}
    target = torch.rand(2, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    gp, _ = autograd_gradients(g, inputs, target, Loss.MSE_SUM)
    steps = 200 if schedule is Schedule.JACOBI else 60
    r = relax_graph(g, inputs, target, rate=0.3, steps=steps, schedule=schedule)
    for k, grad in gp.items():
        torch.testing.assert_close(r.updates[k], -grad, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("schedule", [Schedule.JACOBI, Schedule.BLOCK_REVERSE])
@pytest.mark.parametrize("sigmoid_readout", [False, True])
def test_lstm_converges_to_autograd(schedule, sigmoid_readout):
    from algorithms.graph_models import lstm_graph

    T, H, D, K = 4, 3, 2, 2
    g = lstm_graph(T, D, H, K, sigmoid_readout=sigmoid_readout, init_std=0.6, dtype=F64, seed=4)
    inputs = {"h0": torch.zeros(2, H, dtype=F64), "c0": torch.zeros(2, H, dtype=F64),
              **_inputs_rnn(g, D, 2, 5)}
    target = torch.rand(2, T, K, generator=torch.Generator().manual_seed(6), dtype=F64)
    gp, _ = autograd_gradients(g, inputs, target, Loss.MSE_SUM)
    # Jacobi needs ~5 hops per time step; the block schedule needs ~5 per block
    steps = 400 if schedule is Schedule.JACOBI else 80
    r = relax_graph(g, inputs, target, rate=0.5, steps=steps, schedule=schedule)
    fid = compare(r.updates, gp)
    for k, grad in gp.items():
        torch.testing.assert_close(r.updates[k], -grad, rtol=1e-6, atol=1e-10)
        assert fid[k].angle_degrees < 1e-3


def test_block_schedule_beats_jacobi_at_a_fixed_budget_on_long_sequences():
    """Information crosses one cell per block in the block schedule, but only one vertex per
    Jacobi iteration (ch6 spec 3.10.4, about 5 hops per cell): at 40 iterations over 12
    steps Jacobi is far from converged, the block schedule is not."""
    from algorithms.graph_models import lstm_graph

    T, H, D, K = 12, 3, 2, 2
    g = lstm_graph(T, D, H, K, init_std=0.6, dtype=F64, seed=4)
    inputs = {"h0": torch.zeros(1, H, dtype=F64), "c0": torch.zeros(1, H, dtype=F64),
              **_inputs_rnn(g, D, 1, 5)}
    target = torch.rand(1, T, K, generator=torch.Generator().manual_seed(6), dtype=F64)
    gp, _ = autograd_gradients(g, inputs, target, Loss.MSE_SUM)
    div = {}
    for schedule in (Schedule.JACOBI, Schedule.BLOCK_REVERSE):
        r = relax_graph(g, inputs, target, rate=0.5, steps=40, schedule=schedule)
        div[schedule] = sum(f.squared_divergence for f in compare(r.updates, gp).values())
    assert div[Schedule.BLOCK_REVERSE] < 1e-3 * div[Schedule.JACOBI]


def test_graph_model_pc_training_tracks_backprop_on_an_rnn():
    """Converged PC and the autograd twin take the same SGD steps on an unrolled RNN."""
    from algorithms.graph import GraphModel
    from algorithms.graph_models import rnn_graph

    models = {}
    for name, alg in (("pc", Algorithm.PC), ("bp", None)):
        g = rnn_graph(3, 4, 5, 3, init_std=0.5, dtype=F64, seed=8)
        models[name] = GraphModel(g, alg, learning_rate=0.05, rate=1.0, steps=1,
                                  schedule=Schedule.BLOCK_REVERSE)
    gen = torch.Generator().manual_seed(9)
    for _ in range(3):
        inputs = {"h0": torch.zeros(4, 5, dtype=F64),
                  **{f"x{t}": torch.randn(4, 4, generator=gen, dtype=F64) for t in (1, 2, 3)}}
        target = torch.rand(4, 3, generator=gen, dtype=F64)
        assert models["pc"].train_batch(inputs, target) == pytest.approx(
            models["bp"].train_batch(inputs, target), rel=1e-12)
    for k, w in models["bp"].graph.params.items():
        torch.testing.assert_close(models["pc"].graph.params[k], w, rtol=1e-10, atol=1e-13)


def _graphs_for_replay():
    from algorithms.graph_models import cnn_graph, lstm_graph

    g, inputs, _ = _random_dag(7)
    yield g, inputs
    c = cnn_graph(in_channels=2, image_size=10, conv_channels=(3, 4), kernel=3,
                  pool_after=(True, False), fc_sizes=(7,), n_classes=5, init_std=0.3,
                  dtype=F64, seed=1)
    yield c, {"x": torch.rand(3, 2, 10, 10, generator=torch.Generator().manual_seed(0),
                              dtype=F64)}
    lg = lstm_graph(3, 2, 3, 2, init_std=0.6, dtype=F64, seed=4)
    yield lg, {"h0": torch.zeros(2, 3, dtype=F64), "c0": torch.zeros(2, 3, dtype=F64),
               **_inputs_rnn(lg, 2, 2, 5)}
    spec = PCSpec(sizes=(9, 7, 5, 3), activation=Activation.RELU, use_bias=True)
    yield mlp_graph(spec), {"x": torch.rand(4, 9, generator=torch.Generator().manual_seed(1))}


@pytest.mark.parametrize("params", [False, True])
def test_replayed_vector_jacobian_products_equal_autograd_bitwise(params):
    """Repeated calls are replayed from recorded aten operations; every call must equal a
    fresh ``torch.autograd.grad`` through the same frozen graph, bit for bit."""
    from algorithms.graph import Linearisation

    gen = torch.Generator().manual_seed(11)
    for g, inputs in _graphs_for_replay():
        lin, values = Linearisation.of_forward(g, inputs)
        with torch.no_grad():
            ref = g.forward(inputs)
        for n, v in ref.items():
            assert torch.equal(values[n], v)
        names = [v.name for v in g.vertices]
        relaxing = lambda p: p not in g.inputs  # noqa: E731
        for _ in range(4):
            states = {n: torch.randn(values[n].shape, generator=gen, dtype=values[n].dtype)
                      for n in names}
            got = lin.vjps(names, states, relaxing, params=params)
            msgs, cot = got if params else (got, None)
            for v in g.vertices:
                out = lin._out[v.name]
                leaves = [x for p, x in zip(v.parents, lin._parents[v.name]) if relaxing(p)]
                theta = list(lin._params[v.name].values()) if params else []
                if not (leaves or theta) or not out.requires_grad:
                    continue
                want = torch.autograd.grad(out, leaves + theta, states[v.name],
                                           retain_graph=True, allow_unused=True)
                have = [m for _, m in msgs[v.name]] + (list(cot[v.name].values())
                                                       if params else [])
                for h, w in zip(have, want):
                    assert torch.equal(h, torch.zeros_like(h) if w is None else w)
        assert any(type(p).__name__ == "_Replay" for p in lin._replays.values())


def test_pc_input_messages_are_optional_and_the_model_loss_is_the_forward_loss():
    from algorithms.graph import GraphModel, loss_value

    g, inputs, target = _random_dag(3)
    full = relax_graph(g, inputs, target, rate=0.5, steps=30)
    lean = relax_graph(g, inputs, target, rate=0.5, steps=30, input_messages=False)
    assert lean.input_messages == {}
    for k, u in full.updates.items():
        assert torch.equal(lean.updates[k], u)
    before = {k: w.clone() for k, w in g.params.items()}
    value = GraphModel(g, Algorithm.PC, rate=0.5, steps=30, learning_rate=0.01).train_batch(
        inputs, target)
    with torch.no_grad():
        assert value == float(loss_value(Loss.MSE_SUM, _random_dag(3)[0].forward(inputs)["h6"],
                                         target))
    for k, u in full.updates.items():
        torch.testing.assert_close(g.params[k], before[k] + 0.01 * u, rtol=0, atol=1e-15)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_jacobi_in_place_iterates_equal_the_recorded_iterates(algorithm):
    """Without ``record``/``on_step`` the Jacobi iterates are updated in place; with identity
    (residual) edges a message is a state itself. Both paths equal the autograd gradient
    and each other bitwise; the last recorded iterate is the returned state."""
    g, inputs, target = _random_dag(6)
    plain = relax_graph(g, inputs, target, algorithm=algorithm, rate=0.4, steps=60)
    seen = []
    watched = relax_graph(g, inputs, target, algorithm=algorithm, rate=0.4, steps=60,
                          on_step=lambda k, s: seen.append(k))
    assert seen == list(range(61))
    for k, s in plain.state.items():
        assert torch.equal(s, watched.state[k])
    for k, u in plain.updates.items():
        assert torch.equal(u, watched.updates[k])
    gp, _ = autograd_gradients(g, inputs, target, Loss.MSE_SUM)
    for k, grad in gp.items():
        torch.testing.assert_close(plain.updates[k], -grad, rtol=1e-6, atol=1e-10)
