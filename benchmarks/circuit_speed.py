"""Per-sample training time of the PC neuron circuit against plain implementations, side by side.

    python -m benchmarks.circuit_speed [--samples 64] [--json results/benchmarks/circuit_speed.json]

Standard PC (tanh hidden, linear output, 100 relaxation steps at rate 0.1, predictions
recomputed every step, online learning: one Hebbian update per sample) on 784-100-10 and
784-300-100-10, on the same MNIST-sized random inputs and from the same weights, as:

* the Brian2 circuit with Brian2 synapses on the numpy and cython targets and on the C++
  standalone device (time measured inside the binary, build and compile excluded);
* the circuit with numba kernels for the dense pathways (numpy and cython targets);
* a plain numpy implementation of the same equations, one sample at a time;
* one numba call per sample (:func:`circuits.kernels.pc_train_sample`): the practical floor;
* the PyTorch backend at batch 1 (same online rule) and at batch 64 (batch-summed update, a
  different learning rule; time per sample).

Every runtime variant runs once on a few samples first (code generation, compilation and JIT
excluded). After timing, each implementation's weights are compared with the torch backend's
(float64) on the same samples, so the table only lists implementations that compute the same
thing. Ratios are to the numba floor, measured in the same process; absolute times are this
machine's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from algorithms.activations import Activation
from algorithms.pc import PCParams, PredictiveCodingNetwork, init_params
from algorithms.spec import PCSpec


def spec_for(sizes: tuple[int, ...], batch: int = 1) -> PCSpec:
    return PCSpec(sizes=sizes, activation=Activation.TANH, dtype="float64", batch_size=batch,
                  inference_steps=100, inference_rate=0.1, learning_rate=1e-3)


def data(n: int, spec: PCSpec, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, spec.sizes[0]))
    y = np.full((n, spec.sizes[-1]), 0.1)
    y[np.arange(n), rng.integers(0, spec.sizes[-1], n)] = 1.0
    return x, y


def numpy_pc(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, spec: PCSpec) -> None:
    """The same equations, plainly, one sample at a time (in place on ``weights``)."""
    L, rate, eta = len(weights), spec.inference_rate, spec.learning_rate
    for x0, t in zip(x, y):
        xs = [x0]
        for l, w in enumerate(weights):
            a = w @ xs[-1]
            xs.append(a if l == L - 1 else np.tanh(a))
        xs[L] = t
        first = weights[0] @ x0  # the clamped input's prediction: once per sample
        for it in range(spec.inference_steps + 1):
            pre = [first] + [w @ xs[l] for l, w in enumerate(weights) if l > 0]
            mu = [p if l == L - 1 else np.tanh(p) for l, p in enumerate(pre)]
            eps = [xs[l + 1] - mu[l] for l in range(L)]
            e = [eps[l] if l == L - 1 else (1 - mu[l] ** 2) * eps[l] for l in range(L)]
            if it == spec.inference_steps:
                break
            for l in range(1, L):
                xs[l] = xs[l] + rate * (weights[l].T @ e[l] - eps[l - 1])
        for l in range(L):
            weights[l] += eta * np.outer(e[l], xs[l])


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def max_dev(got: list[np.ndarray], want: PCParams) -> float:
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want.weights))


def bench(sizes: tuple[int, ...], n: int) -> list[dict[str, object]]:
    from circuits import kernels as kn
    from circuits.drive import Kernel, Target
    from circuits.pc import build_pc_circuit
    from circuits.standalone import run_standalone

    spec = spec_for(sizes)
    params = init_params(spec)
    x, y = data(n + 4, spec)
    xs, ys = x[4:], y[4:]
    rows: list[dict[str, object]] = []

    def reference(k: int) -> PCParams:
        net = PredictiveCodingNetwork(spec, params.clone())
        for i in range(k):
            net.train_batch(torch.from_numpy(xs[i:i + 1]), torch.from_numpy(ys[i:i + 1]))
        return net.params

    refs = {n: reference(n)}

    def add(name: str, seconds: float, k: int, weights: list[np.ndarray] | None,
            note: str = "") -> None:
        dev = max_dev(weights, refs[k]) if weights is not None else float("nan")
        rows.append({"sizes": "-".join(map(str, sizes)), "implementation": name,
                     "ms_per_sample": 1e3 * seconds / k, "samples": k,
                     "max_abs_weight_deviation_vs_torch": dev, "note": note})
        print(f"  {name:<44} {1e3 * seconds / k:9.2f} ms/sample  (dev {dev:.1e}) {note}",
              flush=True)

    # numba floor
    from numba.typed import List

    ws = List([w.double().numpy().copy() for w in params.weights])
    kn.pc_train_sample(List([w.copy() for w in ws]), x[0], y[0], 2, 0, 0.1, 100, 1e-3)
    t = timed(lambda: [kn.pc_train_sample(ws, xs[i], ys[i], 2, 0, spec.inference_rate,
                                          spec.inference_steps, spec.learning_rate)
                       for i in range(n)])
    add("numba, one call per sample (floor)", t, n, list(ws))
    # plain numpy
    wn = [w.double().numpy().copy() for w in params.weights]
    t = timed(lambda: numpy_pc(wn, xs[:n], ys[:n], spec))
    add("numpy, one sample at a time", t, n, wn)
    # torch
    for batch in (1, 64):
        s32 = spec_for(sizes, batch).replace(dtype="float32")
        net = PredictiveCodingNetwork(s32, init_params(s32))
        xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
        net.train_batch(xt[:4], yt[:4])
        torch.set_num_threads(1)
        k = n if batch == 1 else max(n, 64)
        xt2 = torch.from_numpy(data(k, spec, 1)[0]).float()
        yt2 = torch.from_numpy(data(k, spec, 1)[1]).float()
        t = timed(lambda: [net.train_batch(xt2[i:i + batch], yt2[i:i + batch])
                           for i in range(0, k, batch)])
        if batch == 1:
            add("torch float32, batch 1 (1 thread)", t, k, None, "same rule, float32")
        else:
            add("torch float32, batch 64 (1 thread)", t, k, None, "batch-summed rule")
    # circuits, runtime targets
    for target, kernel, k in ((Target.NUMPY, Kernel.BRIAN2, n),
                              (Target.CYTHON, Kernel.BRIAN2, n),
                              (Target.NUMPY, Kernel.NUMBA, n),
                              (Target.CYTHON, Kernel.NUMBA, n)):
        c = build_pc_circuit(spec, params, target=target, kernel=kernel,
                             name=f"bench{len(sizes)}")
        c.run(x[:k], y[:k])  # code generation / compilation (same sizes as the timed run)
        c.set_params(params)
        t = timed(lambda: c.run(xs[:k], ys[:k]))
        add(f"circuit, Brian2 {target.value}, {kernel.value} pathways", t, k,
            [w.numpy() for w in c.get_params().weights])
    # standalone: one build, time measured by the binary
    with tempfile.TemporaryDirectory() as d:
        t_build = time.perf_counter()
        res = run_standalone(spec, params, xs[:n], ys[:n], directory=d)
        t_build = time.perf_counter() - t_build
        secs = res.run_seconds
        add("circuit, Brian2 cpp_standalone, brian2 pathways", secs, n,
            [w.numpy() for w in res.params.weights],
            f"binary's own run time; build+compile+run {t_build:.0f} s")
    floor = rows[0]["ms_per_sample"]
    for r in rows:
        r["x_floor"] = float(r["ms_per_sample"]) / float(floor)  # type: ignore[arg-type]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=64, help="samples timed per variant")
    p.add_argument("--sizes", nargs="+", default=["784-100-10", "784-300-100-10"])
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    all_rows = []
    for s in args.sizes:
        sizes = tuple(int(v) for v in s.split("-"))
        print(f"{s}, 100 relaxation steps, standard PC (tanh), online learning:")
        all_rows += bench(sizes, args.samples)
    print()
    print(f"{'sizes':<16}{'implementation':<46}{'ms/sample':>10}{'x floor':>9}{'dev':>9}")
    for r in all_rows:
        print(f"{r['sizes']:<16}{r['implementation']:<46}{r['ms_per_sample']:>10.2f}"
              f"{r['x_floor']:>9.1f}{r['max_abs_weight_deviation_vs_torch']:>9.1e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python -m benchmarks.circuit_speed " + " ".join(argv or sys.argv[1:]),
            "platform": f"{platform.machine()} {platform.python_version()} "
                        f"torch {torch.__version__}", "rows": all_rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
