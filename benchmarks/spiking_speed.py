"""Speed of the spiking PC circuit on Brian2's cython target and C++ standalone device, next to
the rate circuit, measured side by side in one run.

    python -m benchmarks.spiking_speed [--samples 32] [--reps 3] \
        [--json results/benchmarks/spiking_speed.json]

Standard PC, 784-100-10, tanh, online learning (batch 1), MNIST-sized random inputs in
[0, 1], the same weights for every implementation. The spiking circuit uses the default
:class:`~circuits.spiking.SpikeCoding` (LIF ON/OFF pairs up to 500 Hz, 0.2 ms steps, 15 ms
settle + 30 ms relax + 20 ms hold = 65 ms of simulated time per sample); the rate circuit
uses its rate twin (``SpikeCoding.rate_spec``: the same relaxation ODE, 150 Jacobi steps of
rate 0.02), Brian2 synapses (cython, standalone) or numba kernels.

Reported per implementation: wall seconds per sample and, for the spiking circuit,
simulated seconds per wall second (1.0 = real time), as medians over ``--reps``
repetitions, each of which times every implementation once in an order rotated by one
between repetitions (so load drift reaches all alike). Each runtime variant runs once first
(code generation and compilation excluded); standalone times are measured inside the binary
(build and compile excluded; each standalone circuit is rebuilt in its own directory every
repetition, which recompiles only what changed). The load average before and after, torch
version and threads, CPU count, commit and command are recorded in the header and the JSON.
Absolute times are this machine's.
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from algorithms.activations import Activation
from algorithms.pc import init_params
from algorithms.spec import PCSpec

from .torch_speed import git_commit, loadavg


def rotated(items: list[Any], r: int) -> list[Any]:
    """``items`` starting at position ``r`` (mod its length): repetition ``r``'s order."""
    k = r % len(items)
    return items[k:] + items[:k]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.spiking_speed",
                                description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--sizes", type=int, nargs="+", default=[784, 100, 10])
    p.add_argument("--reps", type=int, default=3,
                   help="interleaved repetitions (median; at least 3)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.reps < 3:
        p.error("--reps must be at least 3 (medians of interleaved repetitions)")

    from circuits.drive import Kernel, Target
    from circuits.pc import build_pc_circuit
    from circuits.spiking import SpikeCoding
    from circuits.standalone import run_standalone

    meta: dict[str, Any] = {
        "command": "python -m benchmarks.spiking_speed "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "git_commit": git_commit(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "reps": args.reps, "loadavg_before": loadavg()}
    coding = SpikeCoding()
    spec = coding.rate_spec(PCSpec(sizes=tuple(args.sizes), activation=Activation.TANH,
                                   dtype="float64", batch_size=1, learning_rate=1e-3,
                                   init_scale=0.1))
    params = init_params(spec)
    rng = np.random.default_rng(0)
    n = args.samples
    x = rng.random((n, spec.sizes[0]))
    y = np.full((n, spec.sizes[-1]), 0.1)
    y[np.arange(n), rng.integers(0, spec.sizes[-1], n)] = 1.0
    sample_seconds = coding.phases(spec.n_layers).period * coding.dt
    #: implementation -> (spiking?, a timed run returning seconds per sample)
    impls: dict[str, tuple[bool, Callable[[], float]]] = {}
    tmp = tempfile.TemporaryDirectory()
    builds: dict[str, list[float]] = {}

    def runtime(label: str, **kw: Any) -> None:
        c = build_pc_circuit(spec, params, **kw)
        c.run(x, y)  # compile (the same number of samples: TimedArray sizes are in the code)

        def run() -> float:
            c.set_params(params)
            t0 = time.perf_counter()
            c.run(x, y)
            return (time.perf_counter() - t0) / n

        impls[label] = ("coding" in kw, run)

    def standalone(label: str, coding_: SpikeCoding | None) -> None:
        # one directory per circuit: later builds only rewrite what changed; the time is
        # the binary's own run time (build, compile and I/O excluded)
        d = Path(tmp.name) / ("spiking" if coding_ else "rate")

        def run() -> float:
            t0 = time.perf_counter()
            res = run_standalone(spec, params, x, y, directory=d, coding=coding_)
            builds.setdefault(label, []).append(time.perf_counter() - t0)
            return res.run_seconds / n

        impls[label] = (coding_ is not None, run)

    print(f"PC {'-'.join(map(str, spec.sizes))}, {n} samples, online learning; spiking sample "
          f"= {1e3 * sample_seconds:.0f} ms simulated; torch {torch.__version__}, load "
          f"{meta['loadavg_before']}, {args.reps} interleaved repetitions", flush=True)
    runtime("rate circuit, cython, numba kernels", target=Target.CYTHON, kernel=Kernel.NUMBA,
            name="bench_rate_numba")
    runtime("rate circuit, cython, Brian2 synapses", target=Target.CYTHON,
            name="bench_rate_b2")
    standalone("rate circuit, C++ standalone", None)
    runtime("spiking circuit, cython", target=Target.CYTHON, coding=coding,
            name="bench_spiking")
    standalone("spiking circuit, C++ standalone", coding)
    times: dict[str, list[float]] = {label: [] for label in impls}
    try:
        for r in range(args.reps):
            for label in rotated(list(impls), r):
                times[label].append(impls[label][1]())
                print(f"  rep {r + 1}: {label:<44} {1e3 * times[label][-1]:9.1f} ms/sample",
                      flush=True)
    finally:
        tmp.cleanup()
    meta["loadavg_after"] = loadavg()
    rows: list[dict[str, Any]] = []
    for label, (spiking, _) in impls.items():
        wall = statistics.median(times[label])
        rows.append({"implementation": label, "seconds_per_sample": wall,
                     "seconds_per_sample_reps": times[label],
                     "simulated_per_wall": sample_seconds / wall if spiking else None,
                     **({"build_compile_run_seconds": builds[label]} if label in builds
                        else {})})
    base = {r["implementation"]: r["seconds_per_sample"] for r in rows}
    print()
    print(f"torch {meta['torch']}, {meta['threads']} thread(s), {meta['cpus']} CPUs, "
          f"{meta['machine']}, commit {meta['git_commit']}; load average before "
          f"{meta['loadavg_before']}, after {meta['loadavg_after']}")
    print(f"medians of {args.reps} interleaved repetitions, {n} samples each; command: "
          f"{meta['command']}")
    print()
    print(f"{'implementation':<44}{'ms/sample':>11}{'sim s / wall s':>16}")
    for r in rows:
        sim = r["simulated_per_wall"]
        print(f"{r['implementation']:<44}{1e3 * float(r['seconds_per_sample']):>11.1f}"
              f"{'' if sim is None else f'{sim:16.3f}'}")
    ratio = base["spiking circuit, cython"] / base["spiking circuit, C++ standalone"]
    print(f"\nspiking: standalone is {ratio:.1f}x faster than cython; spiking cython / rate "
          f"cython (numba) = {base['spiking circuit, cython'] / base['rate circuit, cython, numba kernels']:.1f}x")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            **meta, "sizes": list(spec.sizes), "samples": n,
            "sample_simulated_seconds": sample_seconds, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
