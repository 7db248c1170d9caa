"""Time per filter step and accuracy of the PC filter against the exact Kalman filter as the
state dimension grows, side by side in one run.

    python -m benchmarks.kalman_scaling --json results/benchmarks/kalman_scaling.json \\
        --plot results/benchmarks/kalman_scaling.png [--reps 3]

For each ``n`` (default 3 ... 1000): random stable dynamics ``A`` (spectral radius 0.95),
``B`` (n x 1), ``C ~ N(0, 1/n)`` (n x n, so the energy's Hessian stays bounded as n grows),
``Q = R = I``; one simulated run. The exact Kalman filter (covariance propagation, an
``n x n`` solve: O(n^3) per step) against the PC filter (``K`` gradient steps at a fixed rate:
O(K n^2) per step, ``PriorPrecision.PROCESS``) and, for reference, the same PC filter run to
convergence. Reported: milliseconds per filter step, and RMSE to the true state. All timings
single-threaded (BLAS and torch threads pinned to 1 before numpy loads), in one process:
after an untimed two-step warm-up of each filter, each of ``--reps`` repetitions runs the
exact and the PC filter once, the order alternating between repetitions (so load drift
reaches both alike); times are medians, KF/PC the median of the per-repetition ratios (the
estimates, hence the RMSEs, are the same in every repetition). The load average before and
after, torch version and threads, CPU count, commit and command are recorded in the header
and the JSON.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from algorithms.kalman import (Init, PCFilter, PCFilterOptions, StateSpace,  # noqa: E402
                               kalman_filter, simulate)

from .torch_speed import git_commit, loadavg  # noqa: E402


def system(n: int, rng: np.random.Generator) -> StateSpace:
    A = rng.standard_normal((n, n))
    A *= 0.95 / max(abs(np.linalg.eigvals(A)))
    return StateSpace(A, rng.standard_normal((n, 1)), rng.standard_normal((n, n)) / np.sqrt(n),
                      np.eye(n), np.eye(n))


def rotated(items: list[Any], r: int) -> list[Any]:
    """``items`` starting at position ``r`` (mod its length): repetition ``r``'s order."""
    k = r % len(items)
    return items[k:] + items[:k]


def bench(n: int, T: int, K: int, rate: float, reps: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    model = system(n, rng)
    run = simulate(model, np.sin(0.05 * np.arange(T))[:, None], rng=rng)
    truth = run.x[1:]

    def rmse(mu: np.ndarray) -> float:
        return float(np.sqrt(((mu - truth) ** 2).mean()))

    def pc_filter() -> PCFilter:  # stateful: a fresh one per run, built untimed
        return PCFilter(model, PCFilterOptions(steps=K, rate=rate, init=Init.PROJECTION))

    filters = {"kalman": lambda: (lambda: kalman_filter(model, run.y, run.u).mu),
               "pc": lambda: (lambda pc=pc_filter(): pc.run(run.y, run.u).mu)}
    # warm-up (first-call paths), untimed: two filter steps of each
    kalman_filter(model, run.y[:2], run.u[:2])
    pc_filter().run(run.y[:2], run.u[:2])
    times: dict[str, list[float]] = {k: [] for k in filters}
    mus: dict[str, np.ndarray] = {}
    for r in range(reps):
        for name in rotated(list(filters), r):
            go = filters[name]()
            t0 = time.perf_counter()
            mu = go()
            times[name].append((time.perf_counter() - t0) / T)
            if name in mus and not np.array_equal(mus[name], mu):
                print(f"  warning: n={n} {name}: repetitions gave different estimates",
                      file=sys.stderr)
            mus[name] = mu
    conv = PCFilter(model, PCFilterOptions(steps=400, rate=rate, init=Init.PROJECTION))
    res_conv = conv.run(run.y[: min(T, 10)], run.u[: min(T, 10)])
    t_kf, t_pc = statistics.median(times["kalman"]), statistics.median(times["pc"])
    return {"n": n, "steps_T": T, "kalman_ms_per_step": 1e3 * t_kf,
            "pc_ms_per_step": 1e3 * t_pc,
            "speedup_pc_over_kalman": statistics.median(
                [a / b for a, b in zip(times["kalman"], times["pc"])]),
            "kalman_ms_per_step_reps": [1e3 * t for t in times["kalman"]],
            "pc_ms_per_step_reps": [1e3 * t for t in times["pc"]],
            "kalman_rmse": rmse(mus["kalman"]), "pc_rmse": rmse(mus["pc"]),
            "pc_converged_rmse_first10": float(np.sqrt(((res_conv.mu - truth[:len(res_conv.mu)])
                                                        ** 2).mean())),
            "kalman_rmse_first10": float(np.sqrt(((mus["kalman"][:10] - truth[:10]) ** 2)
                                                 .mean()))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[3, 10, 30, 100, 300, 1000])
    p.add_argument("--steps-t", type=int, default=40, help="filter steps per size")
    p.add_argument("--inference-steps", type=int, default=20, help="PC steps K per filter step")
    p.add_argument("--rate", type=float, default=0.3)
    p.add_argument("--reps", type=int, default=3,
                   help="interleaved repetitions (median; at least 3)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None)
    args = p.parse_args(argv)
    if args.reps < 3:
        p.error("--reps must be at least 3 (medians of interleaved repetitions)")
    torch.set_num_threads(1)
    meta: dict[str, Any] = {
        "command": "python -m benchmarks.kalman_scaling "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "git_commit": git_commit(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "numpy": np.__version__,
        "blas_thread_env": {k: os.environ.get(k) for k in
                            ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        "reps": args.reps, "loadavg_before": loadavg()}
    print(f"torch {torch.__version__}, {meta['threads']} thread(s), load "
          f"{meta['loadavg_before']}, {args.reps} interleaved repetitions", file=sys.stderr,
          flush=True)
    rows = []
    for n in args.sizes:
        r = bench(n, args.steps_t, args.inference_steps, args.rate, args.reps)
        rows.append(r)
        print(f"  n={n}: KF {r['kalman_ms_per_step']:.3f} ms/step, PC {r['pc_ms_per_step']:.3f}",
              file=sys.stderr, flush=True)
    meta["loadavg_after"] = loadavg()
    meta.update({"inference_steps": args.inference_steps, "rate": args.rate, "rows": rows})
    print(f"torch {meta['torch']}, {meta['threads']} thread(s) (BLAS: OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}), "
          f"{meta['cpus']} CPUs, {meta['machine']}, numpy {np.__version__}, commit "
          f"{meta['git_commit']}; load average before {meta['loadavg_before']}, after "
          f"{meta['loadavg_after']}")
    print(f"medians of {args.reps} interleaved repetitions, {args.steps_t} filter steps each; "
          f"command: {meta['command']}")
    print()
    print(f"{'n':>6}{'KF ms/step':>12}{'PC ms/step':>12}{'KF/PC':>8}{'KF rmse':>10}"
          f"{'PC rmse':>10}{'PC conv.*':>10}")
    for r in rows:
        print(f"{r['n']:>6}{r['kalman_ms_per_step']:>12.3f}{r['pc_ms_per_step']:>12.3f}"
              f"{r['speedup_pc_over_kalman']:>8.2f}{r['kalman_rmse']:>10.3f}{r['pc_rmse']:>10.3f}"
              f"{r['pc_converged_rmse_first10']:>10.3f}")
    print("* PC conv.: the PC filter run to convergence (400 steps), first 10 filter steps only")
    print("KF/PC: median of the per-repetition ratios")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(meta, indent=2) + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ns = [r["n"] for r in rows]
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
        ax[0].loglog(ns, [r["kalman_ms_per_step"] for r in rows], "o-", label="exact Kalman")
        ax[0].loglog(ns, [r["pc_ms_per_step"] for r in rows], "s-",
                     label=f"PC filter, {args.inference_steps} steps")
        ax[0].set_xlabel("state dimension n")
        ax[0].set_ylabel("ms per filter step (1 thread)")
        ax[0].legend()
        ax[0].grid(alpha=0.3, which="both")
        ax[1].semilogx(ns, [r["kalman_rmse"] for r in rows], "o-", label="exact Kalman")
        ax[1].semilogx(ns, [r["pc_rmse"] for r in rows], "s-", label="PC filter")
        ax[1].set_xlabel("state dimension n")
        ax[1].set_ylabel("RMSE to the true state")
        ax[1].legend()
        ax[1].grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
