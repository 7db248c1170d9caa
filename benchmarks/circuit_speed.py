"""Per-sample training time of the PC neuron circuit against plain implementations, side by side.

    python -m benchmarks.circuit_speed [--samples 64] [--reps 3] \
        [--json results/benchmarks/circuit_speed.json]

Standard PC (tanh hidden, linear output, 100 relaxation steps at rate 0.1, predictions
recomputed every step, online learning: one Hebbian update per sample) on 784-100-10 and
784-300-100-10, on the same MNIST-sized random inputs and from the same weights, as:

* the Brian2 circuit with Brian2 synapses on the numpy and cython targets and on the C++
  standalone device (time measured inside the binary, build and compile excluded);
* the circuit with numba kernels for the dense pathways (numpy and cython targets);
* a plain numpy implementation of the same equations, one sample at a time;
* one numba call per sample (:func:`circuits.kernels.pc_train_sample`): the practical floor;
* the PyTorch backend at batch 1 (same online rule) and at batch 64 (batch-summed update, a
  different learning rule; time per sample), float32, one thread.

Every runtime variant runs once first (code generation, compilation and JIT excluded). Then
each of ``--reps`` repetitions times every implementation once, from the same initial
weights, in an order rotated by one between repetitions (so load drift reaches all alike);
the table gives medians. After every timed run, each implementation's weights are compared
with the torch backend's (float64) on the same samples, so the table only lists
implementations that compute the same thing; the float32 torch rows are compared, relative
to the weights' scale, with the float64 torch backend at the same batch size on their own
samples. Ratios are to the numba floor, measured in the same process; absolute times are
this machine's. The load average before and after, torch version and threads, CPU count,
commit and command are recorded in the table header and the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from algorithms.activations import Activation
from algorithms.pc import PCParams, PredictiveCodingNetwork, init_params
from algorithms.spec import PCSpec

from .torch_speed import git_commit, loadavg


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


def max_dev(got: list[np.ndarray], want: PCParams) -> float:
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want.weights))


def rel_dev(got: list[torch.Tensor], want: PCParams) -> float:
    """Largest ``max |w32 - w64| / max |w64|`` over the layers (float32 against float64)."""
    return max(float((g.double() - w).abs().max() / w.abs().max())
               for g, w in zip(got, want.weights))


def cast(params: PCParams, dtype: torch.dtype) -> PCParams:
    def c(ts: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        return [None if t is None else t.to(dtype).clone() for t in ts]

    return PCParams([w.to(dtype).clone() for w in params.weights], c(params.biases),
                    c(params.backward), c(params.psi))


def rotated(items: list[Any], r: int) -> list[Any]:
    """``items`` starting at position ``r`` (mod its length): repetition ``r``'s order."""
    k = r % len(items)
    return items[k:] + items[:k]


@dataclass
class Variant:
    """One implementation: ``prepare`` (untimed: reset the weights) then ``run`` (timed;
    returns seconds, or ``None`` to use the wall time around it), ``weights`` after a run."""

    name: str
    samples: int
    prepare: Callable[[], None]
    run: Callable[[], float | None]
    weights: Callable[[], list[np.ndarray] | list[torch.Tensor]]
    deviation: Callable[[Any], float]
    note: str = ""
    seconds: list[float] = field(default_factory=list)
    devs: list[float] = field(default_factory=list)


def bench(sizes: tuple[int, ...], n: int, reps: int) -> list[dict[str, object]]:
    from numba.typed import List

    from circuits import kernels as kn
    from circuits.drive import Kernel, Target
    from circuits.pc import build_pc_circuit
    from circuits.standalone import run_standalone

    spec = spec_for(sizes)
    params = init_params(spec)
    x, y = data(n + 4, spec)
    xs, ys = x[4:], y[4:]
    w0 = [w.double().numpy().copy() for w in params.weights]

    def reference(k: int, batch: int, xr: np.ndarray, yr: np.ndarray) -> PCParams:
        """The torch backend, float64, ``k`` samples of ``xr``/``yr`` in batches of ``batch``."""
        net = PredictiveCodingNetwork(spec_for(sizes, batch), params.clone())
        for i in range(0, k, batch):
            net.train_batch(torch.from_numpy(xr[i:i + batch]), torch.from_numpy(yr[i:i + batch]))
        return net.params

    ref = reference(n, 1, xs, ys)

    def against_ref(w: list[np.ndarray]) -> float:
        return max_dev(w, ref)

    variants: list[Variant] = []
    # numba floor
    ws = List([w.copy() for w in w0])
    kn.pc_train_sample(List([w.copy() for w in w0]), x[0], y[0], 2, 0, 0.1, 100, 1e-3)

    def numba_reset() -> None:
        for w, w_init in zip(ws, w0):
            w[...] = w_init

    def numba_run() -> None:
        for i in range(n):
            kn.pc_train_sample(ws, xs[i], ys[i], 2, 0, spec.inference_rate,
                               spec.inference_steps, spec.learning_rate)

    variants.append(Variant("numba, one call per sample (floor)", n, numba_reset, numba_run,
                            lambda: list(ws), against_ref))
    # plain numpy
    wn = [w.copy() for w in w0]

    def numpy_reset() -> None:
        for w, w_init in zip(wn, w0):
            w[...] = w_init

    variants.append(Variant("numpy, one sample at a time", n, numpy_reset,
                            lambda: numpy_pc(wn, xs[:n], ys[:n], spec), lambda: wn,
                            against_ref))
    # torch, float32 from the same weights; deviation: relative, against float64 torch at the
    # same batch size on the same samples
    torch.set_num_threads(1)
    for batch in (1, 64):
        s32 = spec_for(sizes, batch).replace(dtype="float32")
        p32 = cast(params, torch.float32)
        net = PredictiveCodingNetwork(s32, cast(p32, torch.float32))
        xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
        net.train_batch(xt[:4], yt[:4])  # warm-up (first-call paths)
        k = n if batch == 1 else max(n, 64)
        x2, y2 = data(k, spec, 1)
        xt2, yt2 = torch.from_numpy(x2).float(), torch.from_numpy(y2).float()
        ref32 = reference(k, batch, x2, y2)

        def torch_reset(net: PredictiveCodingNetwork = net, p32: PCParams = p32) -> None:
            init = p32.tensors()
            with torch.no_grad():
                for key, t in net.params.tensors().items():
                    t.copy_(init[key])

        def torch_run(net: PredictiveCodingNetwork = net, k: int = k, batch: int = batch,
                      xt2: torch.Tensor = xt2, yt2: torch.Tensor = yt2) -> None:
            for i in range(0, k, batch):
                net.train_batch(xt2[i:i + batch], yt2[i:i + batch])

        variants.append(Variant(
            f"torch float32, batch {batch} (1 thread)", k, torch_reset, torch_run,
            lambda net=net: [w.detach() for w in net.params.weights],
            lambda w, ref32=ref32: rel_dev(w, ref32),
            "same rule, float32" if batch == 1 else "batch-summed rule, float32"))
    # circuits, runtime targets: built and run once first (code generation / compilation,
    # on the same number of samples as the timed runs)
    for target, kernel in ((Target.NUMPY, Kernel.BRIAN2), (Target.CYTHON, Kernel.BRIAN2),
                           (Target.NUMPY, Kernel.NUMBA), (Target.CYTHON, Kernel.NUMBA)):
        c = build_pc_circuit(spec, params, target=target, kernel=kernel,
                             name=f"bench{len(sizes)}")
        c.run(x[:n], y[:n])

        def circuit_run(c: Any = c) -> None:
            c.run(xs[:n], ys[:n])

        variants.append(Variant(
            f"circuit, Brian2 {target.value}, {kernel.value} pathways", n,
            lambda c=c: c.set_params(params), circuit_run,
            lambda c=c: [w.numpy() for w in c.get_params().weights], against_ref))
    # standalone: built in one directory (later builds only rewrite what changed), the time
    # is the binary's own run time (build, compile and I/O excluded)
    tmp = tempfile.TemporaryDirectory()
    builds: list[float] = []
    last: dict[str, Any] = {}

    def standalone() -> float:
        t0 = time.perf_counter()
        res = run_standalone(spec, params, xs[:n], ys[:n], directory=tmp.name)
        builds.append(time.perf_counter() - t0)
        last["weights"] = [w.numpy() for w in res.params.weights]
        return res.run_seconds

    variants.append(Variant("circuit, Brian2 cpp_standalone, brian2 pathways", n,
                            lambda: None, standalone, lambda: last["weights"], against_ref,
                            "binary's own run time"))
    try:
        for r in range(reps):
            for v in rotated(variants, r):
                v.prepare()
                t0 = time.perf_counter()
                got = v.run()
                wall = time.perf_counter() - t0
                v.seconds.append(wall if got is None else got)
                v.devs.append(v.deviation(v.weights()))
    finally:
        tmp.cleanup()
    rows: list[dict[str, object]] = []
    for v in variants:
        note = v.note
        if v.name.startswith("circuit, Brian2 cpp_standalone"):
            note += f"; build+compile+run {builds[0]:.0f} s first, {min(builds):.0f} s after"
        rows.append({"sizes": "-".join(map(str, sizes)), "implementation": v.name,
                     "ms_per_sample": 1e3 * statistics.median(v.seconds) / v.samples,
                     "ms_per_sample_reps": [1e3 * s / v.samples for s in v.seconds],
                     "samples": v.samples,
                     "max_abs_weight_deviation_vs_torch": None if v.name.startswith("torch")
                     else max(v.devs),
                     "rel_weight_deviation_vs_torch_float64": max(v.devs)
                     if v.name.startswith("torch") else None,
                     "note": note})
        r_ = rows[-1]
        print(f"  {v.name:<44} {r_['ms_per_sample']:9.2f} ms/sample  (dev {max(v.devs):.1e}"
              f"{' rel' if v.name.startswith('torch') else ''}) {note}", flush=True)
    floor = rows[0]["ms_per_sample"]
    for r_ in rows:
        r_["x_floor"] = float(r_["ms_per_sample"]) / float(floor)  # type: ignore[arg-type]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=64, help="samples timed per variant")
    p.add_argument("--sizes", nargs="+", default=["784-100-10", "784-300-100-10"])
    p.add_argument("--reps", type=int, default=3,
                   help="interleaved repetitions (median; at least 3)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.reps < 3:
        p.error("--reps must be at least 3 (medians of interleaved repetitions)")
    torch.set_num_threads(1)
    meta: dict[str, Any] = {
        "command": "python -m benchmarks.circuit_speed "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "git_commit": git_commit(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "reps": args.reps, "samples": args.samples, "loadavg_before": loadavg()}
    print(f"torch {torch.__version__}, {meta['threads']} thread(s), load "
          f"{meta['loadavg_before']}, {args.reps} interleaved repetitions", flush=True)
    all_rows = []
    for s in args.sizes:
        sizes = tuple(int(v) for v in s.split("-"))
        print(f"{s}, 100 relaxation steps, standard PC (tanh), online learning:", flush=True)
        all_rows += bench(sizes, args.samples, args.reps)
    meta["loadavg_after"] = loadavg()
    print()
    print(render(meta, all_rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**meta, "rows": all_rows}, indent=2) + "\n")
    return 0


def render(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [f"torch {meta['torch']}, {meta['threads']} thread(s), {meta['cpus']} CPUs, "
             f"{meta['machine']}, commit {meta['git_commit']}; load average before "
             f"{meta['loadavg_before']}, after {meta['loadavg_after']}",
             f"medians of {meta['reps']} interleaved repetitions, {meta['samples']} samples "
             f"each; command: {meta['command']}", "",
             f"{'sizes':<16}{'implementation':<46}{'ms/sample':>10}{'x floor':>9}{'dev':>9}"]
    for r in rows:
        rel = r["rel_weight_deviation_vs_torch_float64"]
        dev = (f"{r['max_abs_weight_deviation_vs_torch']:>9.1e}" if rel is None
               else f"{rel:>9.1e}*")
        lines.append(f"{r['sizes']:<16}{r['implementation']:<46}{r['ms_per_sample']:>10.2f}"
                     f"{r['x_floor']:>9.1f}{dev}")
    lines += ["", "dev: max |w - w_torch| after the same samples (torch backend, float64, "
              "batch 1);", "* float32 rows: max |w32 - w64| / max |w64| against the torch "
              "backend in float64 at the same batch size on the same samples"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
