"""Activation relaxation vs backprop, and AR's relaxations (thesis 6.4, Figs 6.13-6.16).

    python -m demos.activation_relaxation                          # digits: backprop vs AR
    python -m demos.activation_relaxation --dataset mnist --variants all --epochs 10 \\
        --out results/activation_relaxation/mnist

Defaults follow the thesis (spec ch6 4.7): 784-300-300-100-10 (input and output widths follow
the data), relu hidden layers, linear output, MSE-sum loss on one-hot labels, weight lr 5e-4 on
batch-summed updates, batch 64, 100 relaxation iterations at rate 0.1, activities starting at
the forward pass. After every epoch the per-layer angle between each model's weight update and
the backprop gradient is measured on fixed probe batches (``probes.csv``). Writes
``curves.csv``, ``probes.csv``, ``summary.json`` and ``curves.png`` into ``--out``;
interrupted runs resume (checkpoints in ``<out>/checkpoints/``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from algorithms.activations import Activation
from algorithms.data import DatasetNotFoundError, DataError, dataset_names, smooth_targets
from algorithms.graph import Loss
from algorithms.spec import PCSpec, SpecError
from algorithms.variants import ARVariant

from ._runs import RunResult, prepare_out, run_all, run_meta

DEFAULT_EPOCHS = {"digits": 30, "mnist": 10, "fashion-mnist": 10}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demos.activation_relaxation",
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="digits", choices=dataset_names())
    p.add_argument("--activation", default="relu",
                   choices=[a.value for a in Activation if a is not Activation.LINEAR])
    p.add_argument("--variants", nargs="+", default=["backprop", "ar"],
                   choices=["all", *[v.value for v in ARVariant]], metavar="VARIANT",
                   help="any of: all, " + ", ".join(v.value for v in ARVariant))
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None,
                   help="default: 30 on digits, 10 on mnist/fashion-mnist")
    p.add_argument("--hidden", type=int, nargs="+", default=[300, 300, 100])
    p.add_argument("--inference-steps", type=int, default=100)
    p.add_argument("--inference-rate", type=float, default=0.1)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--update-clamp", type=float, default=None)
    p.add_argument("--split", default="full", choices=["full", "thesis"])
    p.add_argument("--probe-batches", type=int, default=4,
                   help="fixed training batches on which the gradient angle is measured")
    p.add_argument("--out", type=Path, default=Path("results/activation_relaxation/digits"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plot", action="store_true")
    return p


def angle_probe(data, spec: PCSpec, n_batches: int):
    """Per-layer gradient angle, relative error and divergence on fixed probe batches."""
    from algorithms.fidelity import layer_fidelity

    n = min(len(data.train_y), n_batches * spec.batch_size)
    batches = []
    for i in range(0, n, spec.batch_size):
        x = data.train_x[i:i + spec.batch_size].to(spec.torch_dtype)
        t = smooth_targets(data.train_y[i:i + spec.batch_size], spec.sizes[-1],
                           spec.label_smoothing, spec.torch_dtype)
        batches.append((x, t))

    def probe(model: Any) -> dict[str, float]:
        if not hasattr(model, "updates"):
            return {}
        per_batch = [layer_fidelity(model, x, t) for x, t in batches]
        out: dict[str, float] = {}
        for l in range(len(per_batch[0])):
            out[f"angle_W{l}"] = sum(b[l].angle_degrees for b in per_batch) / len(per_batch)
            out[f"relative_error_W{l}"] = sum(b[l].relative_error for b in per_batch) / len(per_batch)
        angles = [v for k, v in out.items() if k.startswith("angle_")]
        out["angle_mean"] = sum(angles) / len(angles)
        return out

    return probe


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.dataset]
    if epochs < 1 or args.seeds < 1:
        print("error: --epochs and --seeds must be >= 1", file=sys.stderr)
        return 2
    import torch

    from .relaxations import load_data

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    try:
        data = load_data(args)
    except (DatasetNotFoundError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        base = PCSpec(sizes=(data.n_features, *args.hidden, data.n_classes),
                      activation=Activation(args.activation),
                      inference_rate=args.inference_rate, inference_steps=args.inference_steps,
                      learning_rate=args.learning_rate, batch_size=args.batch_size,
                      label_smoothing=0.0, update_clamp=args.update_clamp)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    prepare_out(out, args.fresh)
    variants = (list(ARVariant) if "all" in args.variants
                else [ARVariant(v) for v in dict.fromkeys(args.variants)])
    results = [RunResult(data.name, args.activation, v, s) for v in variants
               for s in range(args.seeds)]
    meta = run_meta("demos.activation_relaxation", argv, data, epochs, base,
                    loss=Loss.MSE_SUM.value)
    print(f"{data.describe()}; sizes {base.sizes}; {args.activation}; {epochs} epochs; "
          f"{len(variants)} variants x {args.seeds} seed(s) -> {out}")
    t0 = time.perf_counter()
    rc = run_all(results, base, data, epochs, out, meta, split=args.split,
                 progress=not args.no_progress, loss=Loss.MSE_SUM,
                 probe=angle_probe(data, base, args.probe_batches))
    if rc:
        return rc
    if not args.no_plot:
        from ._plots import plot_curves

        plot_curves(results, out / "curves.png", probe_key="angle_mean",
                    title=f"{data.name}, {args.activation}, {'-'.join(map(str, base.sizes))}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; wrote {out}")
    from .relaxations import print_table

    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
