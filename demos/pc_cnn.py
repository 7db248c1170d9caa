"""Figs 6.3-6.4: a CNN trained by predictive coding vs backprop, and PC's gradient divergence.

    python -m demos.pc_cnn --dataset mnist --train-subset 5000 --epochs 5 \\
        --out results/pc_cnn/mnist

The thesis's PC-CNN (spec ch6 3.8): conv 6@5x5 (relu) -> 2x2 max-pool -> conv 16@5x5 (relu)
-> 200 -> 150 -> 10 (linear), no biases, init N(0, 0.05^2), SGD at ``--learning-rate`` on
batch-summed updates clamped to +-50, MSE-sum loss (or ``--loss cross_entropy``). PC runs the
graph engine (fixed-prediction assumption, Jacobi, ``--steps`` iterations at ``--rate``).
CIFAR-10 and SVHN (3x32x32) are used when their files are present; MNIST and Fashion-MNIST
are zero-padded to 32x32 (one channel). Both models start from the same weights and see the
same batches (one run each per seed, through the sweep runner, ``demos/runner.py``). Every
``--probe-every`` batches the per-layer squared divergence, relative error and angle between
PC's update and the autograd gradient are measured on a fixed batch (Fig 6.3; in
``probes.csv`` for every seed, ``divergence.csv`` for the first). Writes ``curves.csv``,
``epochs.csv``, ``divergence.csv``, ``summary.json``, ``curves.png``; reruns resume at epoch
boundaries.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from algorithms.data import Dataset, dataset_names, load_dataset

from ._runs import (add_device_argument, atomic_write_text, device_from,
                    prepare_runs)
from .runner import Task, add_sweep_arguments, load_runs, provenance, run_sweep_cli, seeds_from

LAYERS = {"K1": "conv1", "K2": "conv2", "F1": "fc1", "F2": "fc2", "F3": "fc3"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=[n for n in dataset_names() if n != "digits"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--train-subset", type=int, default=None, help="first N training images")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--loss", default="mse_sum", choices=["mse_sum", "cross_entropy"])
    p.add_argument("--probe-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--out", type=Path, default=Path("runs/pc_cnn/mnist"))
    p.add_argument("--fresh", action="store_true", help="discard this sweep's runs first")
    add_device_argument(p)
    add_sweep_arguments(p)
    args = p.parse_args(argv)
    try:
        device = device_from(args)
        seeds = seeds_from(args.seeds)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data: Dataset = load_dataset(args.dataset, args.data_dir)
    n_train = len(data.train_y) if args.train_subset is None else min(args.train_subset,
                                                                       len(data.train_y))
    command = "python -m demos.pc_cnn " + shlex.join(argv if argv is not None else sys.argv[1:])
    prov = provenance(command)
    options = {"loss": args.loss, "learning_rate": args.learning_rate, "rate": args.rate,
               "steps": args.steps, "update_clamp": 50.0, "batch_size": args.batch_size,
               "probe_every": args.probe_every}
    tasks = [Task("cnn", variant, data.name, "relu", seed, args.epochs, {},
                  data_dir=args.data_dir, split="full", train_subset=args.train_subset,
                  device=str(device), threads=args.threads, options=options, provenance=prov)
             for variant in ("pc", "backprop") for seed in seeds]
    prepare_runs(args.out, [t.key for t in tasks], args.fresh)
    meta = {"command": command, "dataset": data.describe(), "train_images_used": n_train,
            "epochs": args.epochs, "seeds": seeds, "options": options, "device": str(device)}
    print(f"{data.describe()}; PC-CNN vs backprop on {n_train} training images, {args.epochs} "
          f"epochs, {len(seeds)} seed(s) -> {args.out} (scheduler {args.scheduler})", flush=True)
    rc = run_sweep_cli(tasks, args.out, meta, args)
    if rc:
        return rc
    results = load_runs(args.out, [t.key for t in tasks])
    pc_probes = [p for r in results if r.variant.value == "pc" and r.seed == seeds[0]
                 for p in r.probes]
    if pc_probes:
        cols = list(pc_probes[0])
        atomic_write_text(args.out / "divergence.csv", "\n".join(
            [",".join(cols)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                                          for c in cols) for r in pc_probes]) + "\n")
    plot(results, pc_probes, args.out / "curves.png", data.name)
    print(f"wrote {args.out}/curves.csv, epochs.csv, divergence.csv, summary.json, curves.png")
    return 0


def plot(results: list, divergence: list[dict], path: Path, name: str) -> None:
    """Test accuracy and training loss per epoch (mean +- std over seeds, shaded), and PC's
    per-layer squared divergence from the autograd gradient (first seed)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for variant in ("pc", "backprop"):
        runs = [r for r in results if r.variant.value == variant and r.records]
        if not runs:
            continue
        style = dict(ls="--", color="black") if variant == "backprop" else dict(color="tab:blue")
        n = min(len(r.records) for r in runs)
        ep = np.arange(1, n + 1)
        for ax, key, scale in ((axes[0], "test_accuracy", 100.0), (axes[1], "energy", 1.0)):
            vals = np.array([[getattr(x, key) for x in r.records[:n]] for r in runs]) * scale
            mean, std = vals.mean(0), vals.std(0)
            ax.plot(ep, mean, marker="o", label=f"{variant} ({len(runs)} seed(s))", **style)
            if len(runs) > 1:
                ax.fill_between(ep, mean - std, mean + std, alpha=0.2, color=style["color"])
    x = range(len(divergence))
    for key, layer in LAYERS.items():
        col = f"{key}_squared_divergence"
        if divergence and col in divergence[0]:
            axes[2].plot(x, [max(r[col], 1e-30) for r in divergence], label=layer)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].set_ylabel("training loss per sample")
    axes[2].set_ylabel("sum (dW_PC - dW_BP)^2")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("probe (every --probe-every batches)")
    for ax in axes[:2]:
        ax.set_xlabel("epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"PC-CNN vs backprop on {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
