"""Speed of the spiking PC circuit on Brian2's cython target and C++ standalone device, next to
the rate circuit, measured side by side in one run.

    python -m benchmarks.spiking_speed [--samples 32] [--json results/benchmarks/spiking_speed.json]

Standard PC, 784-100-10, tanh, online learning (batch 1), MNIST-sized random inputs in
[0, 1], the same weights for every implementation. The spiking circuit uses the default
:class:`~circuits.spiking.SpikeCoding` (LIF ON/OFF pairs up to 500 Hz, 0.2 ms steps, 15 ms
settle + 30 ms relax + 20 ms hold = 65 ms of simulated time per sample); the rate circuit
uses its rate twin (``SpikeCoding.rate_spec``: the same relaxation ODE, 150 Jacobi steps of
rate 0.02), Brian2 synapses (cython, standalone) or numba kernels.

Reported per implementation: wall seconds per sample and, for the spiking circuit,
simulated seconds per wall second (1.0 = real time). Each runtime variant runs once first
(code generation and compilation excluded); standalone times are measured inside the binary
(build and compile excluded). Absolute times are this machine's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from algorithms.activations import Activation
from algorithms.pc import init_params
from algorithms.spec import PCSpec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.spiking_speed",
                                description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--sizes", type=int, nargs="+", default=[784, 100, 10])
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from circuits.drive import Kernel, Target
    from circuits.pc import build_pc_circuit
    from circuits.spiking import SpikeCoding
    from circuits.standalone import run_standalone

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
    rows: list[dict[str, object]] = []

    def runtime(label: str, **kw: object) -> None:
        c = build_pc_circuit(spec, params, **kw)  # type: ignore[arg-type]
        c.run(x, y)  # compile (the same number of samples: TimedArray sizes are in the code)
        c.set_params(params)
        t0 = time.perf_counter()
        c.run(x, y)
        wall = (time.perf_counter() - t0) / n
        rows.append({"implementation": label, "seconds_per_sample": wall,
                     "simulated_per_wall": sample_seconds / wall
                     if "coding" in kw else None})
        print(f"  {label:<44} {1e3 * wall:9.1f} ms/sample", flush=True)

    def standalone(label: str, coding_: SpikeCoding | None) -> None:
        with tempfile.TemporaryDirectory() as d:
            res = run_standalone(spec, params, x, y, directory=d, coding=coding_)
        wall = res.run_seconds / n
        rows.append({"implementation": label, "seconds_per_sample": wall,
                     "simulated_per_wall": sample_seconds / wall if coding_ else None})
        print(f"  {label:<44} {1e3 * wall:9.1f} ms/sample", flush=True)

    print(f"PC {'-'.join(map(str, spec.sizes))}, {n} samples, online learning; spiking sample "
          f"= {1e3 * sample_seconds:.0f} ms simulated")
    runtime("rate circuit, cython, numba kernels", target=Target.CYTHON, kernel=Kernel.NUMBA,
            name="bench_rate_numba")
    runtime("rate circuit, cython, Brian2 synapses", target=Target.CYTHON,
            name="bench_rate_b2")
    standalone("rate circuit, C++ standalone", None)
    runtime("spiking circuit, cython", target=Target.CYTHON, coding=coding,
            name="bench_spiking")
    standalone("spiking circuit, C++ standalone", coding)
    base = {r["implementation"]: r["seconds_per_sample"] for r in rows}
    print()
    print(f"{'implementation':<44}{'ms/sample':>11}{'sim s / wall s':>16}")
    for r in rows:
        sim = r["simulated_per_wall"]
        print(f"{r['implementation']:<44}{1e3 * float(r['seconds_per_sample']):>11.1f}"  # type: ignore[arg-type]
              f"{'' if sim is None else f'{sim:16.3f}'}")
    ratio = base["spiking circuit, cython"] / base["spiking circuit, C++ standalone"]
    print(f"\nspiking: standalone is {ratio:.1f}x faster than cython; spiking cython / rate "
          f"cython (numba) = {base['spiking circuit, cython'] / base['rate circuit, cython, numba kernels']:.1f}x")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python -m benchmarks.spiking_speed " + " ".join(argv or sys.argv[1:]),
            "sizes": list(spec.sizes), "samples": n, "sample_simulated_seconds": sample_seconds,
            "rows": rows, "platform": f"{platform.machine()} {platform.python_version()}"},
            indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
