"""Speed of the torch backend against minimal eager references and (optionally) PCX.

    python -m benchmarks.torch_speed --data-dir ../shared/datasets \
        [--json results/benchmarks/torch_speed.json] [--pcx-epochs 3] [--skip-pcx]

Part 1, overhead: the library's ``train_batch`` against a minimal eager implementation of
the same update (``benchmarks/_lean.py``) on MNIST 784-300-100-10, tanh, batch 64: the
backprop twin vs plain autograd SGD, PC with recomputed and with fixed predictions at T=20
and T=100, AR at T=100, and the computation-graph engine's PC at T=100 vs the backprop twin.
Both sides start from the same weights and see the same batches; their first updates are
checked to agree. Each repetition times ``--batches`` batches of one side, then of the
other, alternating which goes first; the table gives medians over ``--reps`` repetitions
and the median of the per-repetition ratios.

Part 2, PCX's MNIST MLP benchmark (784-128-128-128-10, tanh, batch 128, T=5 and 8): one
epoch of our PC (fixed predictions, SGD) and of our backprop twin, timed alternately over
``--pcx-epochs`` epochs; test accuracy after them; and, when ``pcx`` is importable, PCX's PC
and BP in the same process on the same data (``benchmarks/pcx_reference.py``).

Everything runs on ``--threads`` torch threads (default 1); the machine's load average is
recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from algorithms.ar import ActivationRelaxationNetwork
from algorithms.backprop import BackpropNetwork
from algorithms.data import Dataset, load_dataset, smooth_targets
from algorithms.graph import Algorithm, GraphModel, Loss
from algorithms.graph_models import mlp_graph
from algorithms.pc import PredictiveCodingNetwork, init_params
from algorithms.spec import Activation, PCSpec
from algorithms.training import accuracy, train_epoch

from . import _lean

Step = Callable[[torch.Tensor, torch.Tensor], float]


def loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def batches(data: Dataset, spec: PCSpec, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data.train_y), generator=g)
    out = []
    for b in range(n):
        idx = order[b * spec.batch_size:(b + 1) * spec.batch_size]
        out.append((data.train_x[idx].to(spec.torch_dtype).contiguous(),
                    smooth_targets(data.train_y[idx], spec.sizes[-1], spec.label_smoothing,
                                   spec.torch_dtype)))
    return out


def timed(step: Step, work: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds per batch over ``work``."""
    t0 = time.perf_counter()
    for x, t in work:
        step(x, t)
    return (time.perf_counter() - t0) / len(work)


def interleaved(ours: Step, ref: Step, work: list[tuple[torch.Tensor, torch.Tensor]],
                reps: int) -> dict[str, Any]:
    ours(*work[0]), ref(*work[0])  # warm-up (allocator, first-call paths)
    t_ours, t_ref, ratios = [], [], []
    for r in range(reps):
        if r % 2 == 0:
            a, b = timed(ours, work), timed(ref, work)
        else:
            b, a = timed(ref, work), timed(ours, work)
        t_ours.append(a)
        t_ref.append(b)
        ratios.append(a / b)
    return {"ours_ms": 1e3 * statistics.median(t_ours), "ref_ms": 1e3 * statistics.median(t_ref),
            "ratio": statistics.median(ratios), "ratios": ratios}


def first_update_gap(ours_model: Any, ref_step: Callable[..., float],
                     ref_ws: list[torch.Tensor], x: torch.Tensor, t: torch.Tensor) -> float:
    """Largest relative difference between the two sides' weight changes on one batch."""
    before = [w.detach().clone() for w in ref_ws]
    mine = [w.detach().clone() for w in ours_model.params.weights]
    ours_model.train_batch(x, t)
    ref_step(x, t)
    gap = 0.0
    for b, m, w_ours, w_ref in zip(before, mine, ours_model.params.weights, ref_ws):
        d_ours, d_ref = w_ours.detach() - m, w_ref.detach() - b
        gap = max(gap, float((d_ours - d_ref).abs().max() / d_ref.abs().max()))
    return gap


def overhead_rows(data: Dataset, reps: int, n_batches: int) -> list[dict[str, Any]]:
    base = PCSpec(sizes=(784, 300, 100, 10), activation=Activation.TANH, batch_size=64)
    work = batches(data, base, n_batches)
    rows = []

    def row(name: str, spec: PCSpec, make: Callable[[PCSpec], Any],
            ref: Callable[..., float], ref_kw: dict[str, Any], grad: bool = False) -> None:
        ws = [w.clone().requires_grad_(grad) for w in init_params(spec).weights]
        model = make(spec)

        def ref_step(x: torch.Tensor, t: torch.Tensor) -> float:
            return ref(ws, x, t, spec.learning_rate, **ref_kw)

        gap = first_update_gap(model, ref_step, ws, *work[0])
        m = interleaved(model.train_batch, ref_step, work, reps)
        rows.append({"what": name, "reference": ref.__name__, "first_update_rel_gap": gap,
                     "inference_steps": spec.inference_steps, **m})
        print(f"  {name:<36} ours {m['ours_ms']:7.2f} ms  ref {m['ref_ms']:7.2f} ms  "
              f"ratio {m['ratio']:.3f}  (update gap {gap:.1e})", file=sys.stderr, flush=True)

    row("backprop twin", base, BackpropNetwork, _lean.backprop_step, {}, grad=True)
    for T in (20, 100):
        for fixed in (False, True):
            spec = base.replace(inference_steps=T, fixed_predictions=fixed)
            ref = _lean.pc_fixed_step if fixed else _lean.pc_recomputed_step
            row(f"PC {'fixed' if fixed else 'recomputed'} T={T}", spec,
                PredictiveCodingNetwork, ref, {"rate": spec.inference_rate, "steps": T})
    spec = base.replace(inference_steps=100)
    row("AR T=100", spec, lambda s: ActivationRelaxationNetwork(s, loss=Loss.MSE_SUM),
        _lean.ar_step, {"rate": spec.inference_rate, "steps": 100})

    # the graph engine against the backprop twin (not an overhead ratio: a cost ratio)
    graph = GraphModel(mlp_graph(spec), Algorithm.PC, loss=Loss.MSE_HALF,
                       learning_rate=spec.learning_rate, rate=0.1, steps=100)
    bp = BackpropNetwork(spec)
    few = work[: max(4, n_batches // 4)]
    m = interleaved(lambda x, t: graph.train_batch({"x": x}, t), bp.train_batch, few, reps)
    rows.append({"what": "graph engine PC T=100 vs backprop twin", "reference": "backprop twin",
                 "first_update_rel_gap": None, "inference_steps": 100, **m})
    print(f"  graph engine PC T=100 vs BP          ratio {m['ratio']:.2f}", file=sys.stderr)
    # the floor of that ratio: the minimal eager PC (fixed predictions, T=100) itself
    ws = [w.clone() for w in init_params(spec).weights]
    lean = (lambda x, t: _lean.pc_fixed_step(ws, x, t, spec.learning_rate, 0.1, 100))
    m = interleaved(lean, bp.train_batch, few, reps)
    rows.append({"what": "minimal eager PC fixed T=100 vs backprop twin",
                 "reference": "backprop twin", "first_update_rel_gap": None,
                 "inference_steps": 100, **m})
    print(f"  minimal eager PC T=100 vs BP         ratio {m['ratio']:.2f}", file=sys.stderr)
    return rows


#: Our side of PCX's benchmark: (T, inference rate) pairs. Under fixed predictions, rate 1.0
#: makes the update exactly backprop's after depth-many steps (T=5 >= 3 hidden layers); rate
#: 0.5 is a genuinely approximate relaxation. Both cost the same arithmetic per step.
PCX_SETTING_RUNS: tuple[tuple[int, float], ...] = ((5, 1.0), (5, 0.5), (8, 0.5))


def pcx_setting_rows(data: Dataset, epochs: int, learning_rate: float,
                     runs: tuple[tuple[int, float], ...] = PCX_SETTING_RUNS
                     ) -> list[dict[str, Any]]:
    """PCX's MLP benchmark setting (784-128x3-10, batch 128, T=5 and 8; tanh for both, since
    our side has no GELU): our PC (fixed predictions, SGD on batch-summed updates, one-hot
    targets) and our backprop twin, epochs alternating, per-sample times from the median
    epoch; then PCX's PC and BP in the same process when ``pcx`` is importable."""
    from . import pcx_reference

    rows = []
    n = len(data.train_y)
    base = PCSpec(sizes=(784, 128, 128, 128, 10), activation=Activation.TANH, batch_size=128,
                  fixed_predictions=True, label_smoothing=0.0, learning_rate=learning_rate)
    for T, rate in runs:
        spec = base.replace(inference_steps=T, inference_rate=rate)
        pc, bp = PredictiveCodingNetwork(spec), BackpropNetwork(spec)
        t_pc, t_bp = [], []
        for e in range(1, epochs + 1):
            for model, times in ((pc, t_pc), (bp, t_bp)) if e % 2 else ((bp, t_bp), (pc, t_pc)):
                t0 = time.perf_counter()
                train_epoch(model, data, e, progress=False)
                times.append(time.perf_counter() - t0)
        acc_pc = accuracy(pc, data.test_x, data.test_y)
        acc_bp = accuracy(bp, data.test_x, data.test_y)
        rows.append({"impl": "predictive-circuits", "inference_steps": T, "inference_rate": rate,
                     "pc_us_per_sample": 1e6 * statistics.median(t_pc) / n,
                     "bp_us_per_sample": 1e6 * statistics.median(t_bp) / n,
                     "pc_over_bp": statistics.median([a / b for a, b in zip(t_pc, t_bp)]),
                     "epochs": epochs, "pc_test_accuracy": acc_pc, "bp_test_accuracy": acc_bp,
                     "pc_epoch_seconds": t_pc, "bp_epoch_seconds": t_bp,
                     "settings": "fixed predictions, SGD lr %g on batch-summed updates, "
                                 "one-hot targets, pixels in [0, 1]" % learning_rate})
        r = rows[-1]
        print(f"  ours T={T} rate {rate}: PC {r['pc_us_per_sample']:.1f} us/sample, BP "
              f"{r['bp_us_per_sample']:.1f}, PC/BP {r['pc_over_bp']:.2f}, test acc PC "
              f"{acc_pc:.4f} BP {acc_bp:.4f}", file=sys.stderr, flush=True)
    if not pcx_reference.available():
        print("  pcx is not installed: PCX side skipped (see benchmarks/pcx_reference.py)",
              file=sys.stderr)
        return rows
    for T in sorted({T for T, _ in runs}):
        res = pcx_reference.run_pcx_mlp(
            data.train_x.numpy(), data.train_y.numpy(), data.test_x.numpy(),
            data.test_y.numpy(), steps=T, batch_size=128, epochs=epochs, activation="tanh",
            bp="both")
        m = res["models"]
        for bp_name in ("bp_pcx", "bp_jax"):
            rows.append({"impl": f"pcx {res['versions']['pcx']} (BP: "
                                 f"{'pcx modules' if bp_name == 'bp_pcx' else 'plain jax'})",
                         "inference_steps": T, "inference_rate": None,
                         "pc_us_per_sample": m["pc"]["us_per_sample"],
                         "bp_us_per_sample": m[bp_name]["us_per_sample"],
                         "pc_over_bp": res["pc_bp_ratio"][bp_name], "epochs": epochs,
                         "pc_test_accuracy": m["pc"]["test_accuracy"][-1],
                         "bp_test_accuracy": m[bp_name]["test_accuracy"][-1],
                         "pcx_run": res if bp_name == "bp_pcx" else "see the row above"})
        print(f"  pcx T={T}: PC {m['pc']['us_per_sample']:.1f} us/sample, PC/BP "
              f"{res['pc_bp_ratio']}", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions (median)")
    p.add_argument("--batches", type=int, default=40, help="batches per timed repetition")
    p.add_argument("--pcx-epochs", type=int, default=6, help="epochs in PCX's setting (PCX: 6)")
    p.add_argument("--pcx-learning-rate", type=float, default=5e-3,
                   help="our SGD learning rate in PCX's setting (batch-summed updates)")
    p.add_argument("--skip-pcx", action="store_true", help="skip part 2 (PCX's benchmark)")
    p.add_argument("--skip-overhead", action="store_true", help="skip part 1")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.reps < 3:
        p.error("--reps must be at least 3 (medians of interleaved repetitions)")
    pinned = None
    if not args.skip_pcx and args.threads == 1:
        from . import pcx_reference
        if pcx_reference.available():
            pinned = pcx_reference.configure_single_thread()  # before jax is imported
            print(f"one thread for JAX and torch: {pinned}", file=sys.stderr)
    torch.set_num_threads(args.threads)
    meta = {"command": "python -m benchmarks.torch_speed "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "git_commit": git_commit(), "torch": torch.__version__, "threads": args.threads,
            "cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "thread_limit": pinned,
            "loadavg_before": loadavg()}
    print(f"torch {torch.__version__}, {args.threads} thread(s), load {meta['loadavg_before']}",
          file=sys.stderr)
    out: dict[str, Any] = {**meta}
    if not args.skip_overhead:
        mnist = load_dataset("mnist", args.data_dir, split="thesis")
        out["overhead"] = overhead_rows(mnist, args.reps, args.batches)
    if not args.skip_pcx:
        mnist_full = load_dataset("mnist", args.data_dir)
        out["pcx_benchmark"] = pcx_setting_rows(mnist_full, args.pcx_epochs,
                                                args.pcx_learning_rate)
    out["loadavg_after"] = loadavg()
    print(render(out))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def render(out: dict[str, Any]) -> str:
    lines = [f"torch {out['torch']}, {out['threads']} thread(s), {out['machine']}, commit "
             f"{out['git_commit']}; load average before {out['loadavg_before']}, after "
             f"{out.get('loadavg_after')}"]
    if "overhead" in out:
        lines += ["", f"{'train_batch':<42}{'ours ms':>9}{'ref ms':>9}{'ratio':>8}  reference",
                  "-" * 90]
        for r in out["overhead"]:
            lines.append(f"{r['what']:<42}{r['ours_ms']:>9.2f}{r['ref_ms']:>9.2f}"
                         f"{r['ratio']:>8.3f}  {r['reference']} (ratio range "
                         f"{min(r['ratios']):.3f}-{max(r['ratios']):.3f})")
    if "pcx_benchmark" in out:
        lines += ["", f"{'PCX MLP benchmark (tanh)':<34}{'T':>3}{'rate':>6}{'PC us/sample':>14}"
                  f"{'BP us/sample':>14}{'PC/BP':>7}{'PC acc':>8}{'BP acc':>8}", "-" * 94]
        for r in out["pcx_benchmark"]:
            rate = "" if r["inference_rate"] is None else f"{r['inference_rate']:g}"
            lines.append(f"{r['impl']:<34}{r['inference_steps']:>3}{rate:>6}"
                         f"{r['pc_us_per_sample']:>14.1f}{r['bp_us_per_sample']:>14.1f}"
                         f"{r['pc_over_bp']:>7.2f}{100 * r['pc_test_accuracy']:>8.2f}"
                         f"{100 * r['bp_test_accuracy']:>8.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
