"""Train a predictive-coding neuron circuit (Brian2) next to its PyTorch twin, and show it at work.

    python -m demos.circuit                       # fully relaxed PC, tanh, digits
    python -m demos.circuit --variant pc --dataset mnist --train-subset 10000 \\
        --hidden 300 100 --epochs 5 --out results/circuit/mnist-pc

Both backends start from the same weights (``init_params`` of the same spec) and see the same
minibatches; the circuit relaxes every sample as explicit value and error populations and
learns with the Hebbian rules written in its synapse models, the twin does the same
arithmetic batched in torch (float64). Writes, under ``--out``:

* ``circuit/`` and ``torch/``: ``curves.csv``, ``summary.json``, per-epoch checkpoints (reruns
  resume; a larger ``--epochs`` extends);
* ``curves.png``: train/test accuracy per epoch of both, and ``comparison.json``;
* ``circuit_at_work.png``: for one test sample with the trained weights, the rates of every
  value and error population through settle, relaxation and hold, and the weight change of
  every plastic pathway after that one sample.

The default is the fully relaxed circuit (learned backward weights, no ``f'`` in inference,
learned dense error connections on the prediction) with ``psi`` starting at the identity (so
the errors in ``circuit_at_work.png`` read as ``v - f(a)``) and, as for every variant with
learned error connections, fixed predictions (``--predictions auto``; the authors' runs).
Writes into ``runs/circuit/digits`` (git-ignored) unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from algorithms.activations import Activation
from algorithms.data import DataError, DatasetNotFoundError, dataset_names, smooth_targets
from algorithms.spec import PCSpec, PsiInit, SpecError
from algorithms.variants import Variant, variant_spec

from ._runs import RunResult, atomic_write_text, prepare_out, run_all, run_meta
from .relaxations import fixed_predictions


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demos.circuit", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--variant", default="fully-relaxed",
                   choices=[v.value for v in Variant if v is not Variant.BACKPROP])
    p.add_argument("--dataset", default="digits", choices=dataset_names())
    p.add_argument("--activation", default="tanh",
                   choices=[a.value for a in Activation if a is not Activation.LINEAR])
    p.add_argument("--hidden", type=int, nargs="+", default=[100, 50])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--inference-steps", type=int, default=100)
    p.add_argument("--inference-rate", type=float, default=0.1)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--psi-init", default="identity", choices=[p.value for p in PsiInit])
    p.add_argument("--predictions", default="auto", choices=["auto", "fixed", "recomputed"],
                   help="as in demos.relaxations: auto = fixed for the variants with learned "
                        "error connections (learned-error, fully-relaxed), recomputed otherwise")
    p.add_argument("--fixed-predictions", action="store_true", help="= --predictions fixed")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on the first N training samples (both backends)")
    p.add_argument("--split", default="thesis", choices=["thesis", "full"])
    p.add_argument("--target", default="cython", choices=["cython", "numpy"],
                   help="Brian2 code-generation target")
    p.add_argument("--kernel", default="numba", choices=["numba", "brian2"],
                   help="dense pathways as numba kernels or as Brian2 synapses")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=Path("runs/circuit/digits"),
                   help="output folder (the default is git-ignored)")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from circuits.drive import Kernel, Target

    from .relaxations import circuit_factory, load_data

    torch.set_num_threads(args.threads)
    try:
        args.no_download = False
        data = load_data(args)
    except (DatasetNotFoundError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.train_subset is not None:
        data = dataclasses.replace(data, train_x=data.train_x[:args.train_subset],
                                   train_y=data.train_y[:args.train_subset])
    try:
        base = PCSpec(sizes=(data.n_features, *args.hidden, data.n_classes),
                      activation=Activation(args.activation),
                      inference_rate=args.inference_rate, inference_steps=args.inference_steps,
                      learning_rate=args.learning_rate, batch_size=args.batch_size,
                      psi_init=PsiInit(args.psi_init),
                      fixed_predictions=fixed_predictions(
                          "fixed" if args.fixed_predictions else args.predictions,
                          Variant(args.variant)),
                      dtype="float64")
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    variant = Variant(args.variant)
    prepare_out(args.out, args.fresh)
    meta = run_meta("demos.circuit", argv, data, args.epochs, base, split=args.split,
                    circuit=f"Brian2 {args.target}, {args.kernel} kernels")
    mode = "fixed" if base.fixed_predictions else "recomputed"
    print(f"{data.describe()}; {variant.label} [{mode} pred.]; sizes {base.sizes}; {args.activation}; "
          f"{args.epochs} epochs -> {args.out}")
    runs: dict[str, RunResult] = {}
    t0 = time.perf_counter()
    for backend in ("torch", "circuit"):
        out = args.out / backend
        prepare_out(out, args.fresh)
        res = RunResult(data.name, args.activation, variant, 0)
        make = circuit_factory(args.target, args.kernel) if backend == "circuit" else None
        rc = run_all([res], base, data, args.epochs, out, {**meta, "backend": backend},
                     split=args.split, progress=not args.no_progress, make_model=make)
        if rc:
            return rc
        runs[backend] = res
    comparison = compare(runs)
    atomic_write_text(args.out / "comparison.json",
                      json.dumps({**meta, "comparison": comparison}, indent=2) + "\n")
    plot_comparison(runs, args.out / "curves.png",
                    f"{data.name}: {variant.label} [{mode} pred.], {'-'.join(map(str, base.sizes))}, "
                    f"{args.activation}")
    spec = variant_spec(variant, base)
    at_work(spec, runs["circuit"], data, args.out, Target(args.target), Kernel(args.kernel))
    print(f"done in {time.perf_counter() - t0:.0f} s; wrote {args.out}/curves.png, "
          "comparison.json, circuit_at_work.png")
    for k, v in comparison.items():
        print(f"  {k}: {v}")
    return 0


def backend_summary(runs: dict[str, RunResult]) -> dict[str, Any]:
    """Status, final test accuracy and mean epoch time of every backend's run."""
    out: dict[str, Any] = {}
    for backend, res in runs.items():
        out[f"{backend}_status"] = res.status
        if res.records:
            out[f"{backend}_final_test_accuracy"] = res.records[-1].test_accuracy
            out[f"{backend}_mean_epoch_seconds"] = (sum(r.wall_seconds for r in res.records)
                                                    / len(res.records))
    return out


def compare(runs: dict[str, RunResult]) -> dict[str, Any]:
    out = backend_summary(runs)
    a, b = runs["circuit"].records, runs["torch"].records
    if a and b:
        n = min(len(a), len(b))
        out["max_abs_test_accuracy_gap_points"] = 100 * max(
            abs(a[i].test_accuracy - b[i].test_accuracy) for i in range(n))
    return out


def plot_comparison(runs: dict[str, RunResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {"torch": dict(color="tab:blue", lw=3, alpha=0.5),
              "circuit": dict(color="tab:red", lw=1.3, marker="o", ms=3)}
    for backend, res in runs.items():
        ep = [r.epoch for r in res.records]
        ax.plot(ep, [100 * r.test_accuracy for r in res.records],
                label=f"{backend} test", **styles[backend])
        ax.plot(ep, [100 * r.train_accuracy for r in res.records], ls="--",
                label=f"{backend} train", **{k: v for k, v in styles[backend].items()
                                             if k != "marker"})
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def at_work(spec: PCSpec, res: RunResult, data: Any, out: Path, target: Any, kernel: Any) -> None:
    """One test sample through the trained circuit: population rates and weight changes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from algorithms.pc import init_params, load_named_tensors
    from circuits.pc import build_pc_circuit

    state = torch.load(out / "circuit" / "checkpoints" / f"{res.key}.pt", weights_only=True)
    params = init_params(spec)
    load_named_tensors(params, {k: v.double() for k, v in state["model"]["params"].items()})
    c = build_pc_circuit(spec.replace(batch_size=1), params, target=target, kernel=kernel,
                         name="pcwork")
    L = spec.n_layers
    x = data.test_x[:1].double()
    y = smooth_targets(data.test_y[:1], spec.sizes[-1], spec.label_smoothing, torch.float64)
    want = {f"V{l}": ("v",) for l in range(1, L)}
    want.update({f"E{l}": ("eps",) for l in range(1, L + 1)})
    mons = c.step_monitors(want)
    before = c.get_params().tensors()
    c.run(x, y, monitors=mons)
    after = c.get_params().tensors()
    steps = np.arange(c.phases.period + 1)
    settle, relax = c.phases.settle, c.phases.relax
    rng = np.random.default_rng(0)
    fig = plt.figure(figsize=(3.2 * (L + 1), 7.0))
    gs = fig.add_gridspec(3, L + 1)
    for l in range(1, L + 1):
        rows = [("V", "v", 0)] if l < L else []
        rows.append(("E", "eps", 1))
        for pop, var, r in rows:
            ax = fig.add_subplot(gs[r, l - 1])
            trace = np.asarray(getattr(mons[f"{pop}{l}"], var))
            pick = rng.choice(trace.shape[0], size=min(12, trace.shape[0]), replace=False)
            ax.plot(steps, trace[pick].T, lw=0.9)
            ax.axvspan(-0.5, settle - 0.5, color="0.85", lw=0)
            ax.axvspan(settle + relax - 0.5, settle + relax + 0.5, color="0.92", lw=0)
            ax.set_title(f"{'value' if pop == 'V' else 'error'} neurons {pop}{l}"
                         f" ({len(pick)} of {trace.shape[0]})", fontsize=8)
            ax.set_xlabel("step (grey: settle | relax | hold)", fontsize=7)
            ax.tick_params(labelsize=7)
    ax = fig.add_subplot(gs[0, L])
    energy = sum(0.5 * (np.asarray(mons[f"E{l}"].eps) ** 2).sum(0) for l in range(1, L + 1))
    ax.semilogy(steps, energy, color="k")
    ax.axvspan(-0.5, settle - 0.5, color="0.85", lw=0)
    ax.set_title(f"energy 1/2 sum ||eps||^2 (label {int(data.test_y[0])})", fontsize=8)
    ax.set_xlabel("step", fontsize=7)
    ax.tick_params(labelsize=7)
    changed = {k: (after[k] - before[k]).numpy() for k in before if k[0] != "b"}
    ax = fig.add_subplot(gs[1, L])
    ax.bar(range(len(changed)), [float(np.linalg.norm(d)) for d in changed.values()],
           color="tab:purple")
    ax.set_xticks(range(len(changed)), list(changed), fontsize=7, rotation=45)
    ax.set_title("||weight change|| per pathway", fontsize=8)
    ax.tick_params(labelsize=7)
    top = [k for k in changed if k.endswith(str(L - 1)) or k == f"W{L - 1}"][: L + 1]
    for i, k in enumerate(dict.fromkeys([*top, *changed])):
        if i > L:
            break
        d = changed[k]
        ax = fig.add_subplot(gs[2, i])
        lim = float(np.abs(d).max()) or 1.0
        im = ax.imshow(d, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto",
                       interpolation="nearest")
        ax.set_title(f"weight change {k} ({d.shape[0]}x{d.shape[1]})", fontsize=8)
        ax.tick_params(labelsize=6)
        cb = fig.colorbar(im, ax=ax, fraction=0.046)
        cb.ax.tick_params(labelsize=6)
        cb.formatter.set_powerlimits((-2, 2))
    fig.suptitle("the circuit at work: one test sample through the trained circuit",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "circuit_at_work.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
