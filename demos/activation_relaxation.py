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

``--relax-input`` trains the AR variants with the input layer relaxing too, as in the authors'
code (:class:`algorithms.ar.ActivationRelaxationNetwork`'s ``relax_input``; default off, the
thesis text). ``--angles`` trains nothing: on ``--probe-batches`` fixed batches it measures, for
relu and tanh, a fresh network and one trained by backprop for ``--angle-train-batches``
batches, the angle between each of AR and R5-R8's updates and the exact gradient, and ``f'`` at
the relaxed activity against ``f'`` at the forward pass; it writes ``<out>/angles.json``::

    python -m demos.activation_relaxation --dataset mnist --angles \
        --out results/activation_relaxation/angles
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
from algorithms.spec import BackwardPathway, PCSpec, SpecError
from algorithms.variants import ARVariant

from ._runs import add_device_argument, device_from, prepare_runs, run_meta
from .runner import (Task, add_sweep_arguments, load_runs, provenance, run_sweep_cli,
                     seeds_from)

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
    p.add_argument("--out", type=Path, default=Path("runs/activation_relaxation/digits"),
                   help="output folder (the default is git-ignored; committed results live "
                        "in results/)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default 1: runs go in parallel instead)")
    add_sweep_arguments(p)
    add_device_argument(p)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--relax-input", action="store_true",
                   help="AR variants also relax the input layer (the authors' code)")
    p.add_argument("--angles", action="store_true",
                   help="measure R5-R8's update angles and f' statistics, write angles.json")
    p.add_argument("--angle-train-batches", type=int, default=500,
                   help="backprop batches before the 'trained' angle measurement")
    return p


ANGLE_VARIANTS = [ARVariant.AR, ARVariant.UNFROZEN_RELAXATION_GAIN, ARVariant.UNFROZEN_UPDATE_GAIN,
                  ARVariant.UNFROZEN_GAINS, ARVariant.RELAXED_PRESYNAPTIC]


def measure_angles(data, base: PCSpec, n_batches: int, train_batches: int) -> dict[str, Any]:
    """For relu and tanh, at a fresh and a backprop-trained network, on fixed batches: each
    variant's per-layer angle to the exact gradient (and the cosine of all weights together),
    and, per layer that applies a gain, ``f'`` at the variant's relaxed activity vs at the
    forward pass (float64)."""
    import math

    import torch

    from algorithms.ar import ar_relax, ar_update
    from algorithms.backprop import BackpropNetwork, gradients
    from algorithms.fidelity import gradient_angle
    from algorithms.variants import variant_spec

    spec0 = base.replace(dtype="float64")
    n = min(len(data.train_y), n_batches * spec0.batch_size)
    batches = [(data.train_x[i:i + spec0.batch_size].double(),
                smooth_targets(data.train_y[i:i + spec0.batch_size], spec0.sizes[-1], 0.0,
                               torch.float64)) for i in range(0, n, spec0.batch_size)]
    out: dict[str, Any] = {}
    for act in (Activation.RELU, Activation.TANH):
        spec = spec0.replace(activation=act)
        bp = BackpropNetwork(spec, loss=Loss.MSE_SUM)
        states = {"fresh": bp.params.clone()}
        g = torch.Generator().manual_seed(1)
        for _ in range(train_batches):
            idx = torch.randint(len(data.train_y), (spec.batch_size,), generator=g)
            bp.train_batch(data.train_x[idx].double(),
                           smooth_targets(data.train_y[idx], spec.sizes[-1], 0.0, torch.float64))
        states[f"backprop_{train_batches}_batches"] = bp.params.clone()
        for state, params in states.items():
            rows: dict[str, Any] = {}
            for variant in ANGLE_VARIANTS:
                for relax_input in (False, True):
                    if relax_input and variant in (ARVariant.AR, ARVariant.UNFROZEN_RELAXATION_GAIN):
                        continue  # x_0 enters no update: identical to relax_input off
                    vs = variant_spec(variant, spec)
                    acc: dict[str, list[float]] = {}
                    for x0, t in batches:
                        r = ar_relax(params, vs, x0, t, loss=Loss.MSE_SUM, relax_input=relax_input)
                        up = ar_update(params, vs, r.x, r.forward, relax_input=relax_input)
                        gr = gradients(params, vs, x0, t, Loss.MSE_SUM)
                        u = torch.cat([w.flatten() for w in up.weights])
                        gv = torch.cat([w.flatten() for w in gr.weights])
                        vals = {"cosine_all": float(u @ -gv / (u.norm() * gv.norm()))}
                        for l in range(vs.n_layers):
                            vals[f"angle_W{l}"] = gradient_angle(up.weights[l], gr.weights[l])
                        for l in range(1, vs.n_layers):  # gains of the hidden layers
                            below = r.x[l - 1] if (l > 1 or relax_input) else x0
                            fwd_d = act.df(r.forward.pre[l])
                            cur_d = act.df(below @ params.weights[l - 1].T)
                            vals[f"fprime_forward_mean_h{l}"] = float(fwd_d.mean())
                            vals[f"fprime_relaxed_mean_h{l}"] = float(cur_d.mean())
                            vals[f"fprime_abs_diff_mean_h{l}"] = float((cur_d - fwd_d).abs().mean())
                            vals[f"rms_forward_activity_h{l}"] = float(
                                r.forward.values[l].pow(2).mean().sqrt())
                            vals[f"rms_relaxed_activity_h{l}"] = float(r.x[l].pow(2).mean().sqrt())
                        for k, v in vals.items():
                            acc.setdefault(k, []).append(v)
                    row = {k: sum(v) / len(v) for k, v in acc.items()}
                    row["angle_all"] = math.degrees(math.acos(max(-1.0, min(1.0, row["cosine_all"]))))
                    rows[variant.value + ("+relax-input" if relax_input else "")] = row
            out[f"{act.value}/{state}"] = rows
    return out


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
    try:
        seeds = seeds_from(args.seeds)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if epochs < 1:
        print("error: --epochs must be >= 1", file=sys.stderr)
        return 2
    import torch

    from .relaxations import load_data

    torch.set_num_threads(args.threads or os.cpu_count() or 1)  # --angles runs here
    try:
        device = device_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        data = load_data(args)
    except (DatasetNotFoundError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.angles:
        return angles_main(args, argv, data)
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
    variants = (list(ARVariant) if "all" in args.variants
                else [ARVariant(v) for v in dict.fromkeys(args.variants)])
    if args.relax_input:
        from algorithms.variants import variant_spec

        bad = [v.value for v in variants
               if v is not ARVariant.BACKPROP
               and variant_spec(v, base).relaxations.backward is not BackwardPathway.TRANSPOSE]
        if bad:
            print(f"error: --relax-input needs weight-transport feedback; not {', '.join(bad)}",
                  file=sys.stderr)
            return 2
    meta = run_meta("demos.activation_relaxation", argv, data, epochs, base,
                    loss=Loss.MSE_SUM.value, relax_input=args.relax_input, device=str(device),
                    seeds=seeds, scheduler=args.scheduler)
    prov = provenance(meta["command"])
    tasks = [Task("ar", v.value, data.name, args.activation, s, epochs, base.to_dict(),
                  split=args.split, data_dir=args.data_dir, loss=Loss.MSE_SUM.value,
                  relax_input=args.relax_input, probe="angles",
                  probe_batches=args.probe_batches, device=str(device),
                  threads=args.threads or 1, provenance=prov)
             for v in variants for s in seeds]
    prepare_runs(out, [t.key for t in tasks], args.fresh)
    print(f"{data.describe()}; sizes {base.sizes}; {args.activation}; {epochs} epochs; "
          f"{len(variants)} variants x {len(seeds)} seed(s) -> {out} "
          f"(scheduler {args.scheduler})", flush=True)
    t0 = time.perf_counter()
    from .relaxations import print_table

    rc = run_sweep_cli(tasks, out, meta, args)
    if rc:
        return rc
    results = load_runs(out, [t.key for t in tasks])
    if not args.no_plot:
        from ._plots import plot_curves

        plot_curves(results, out / "curves.png", probe_key="angle_mean",
                    title=f"{data.name}, {args.activation}, {'-'.join(map(str, base.sizes))}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; wrote {out}")
    print_table(results)
    return 0


def angles_main(args: argparse.Namespace, argv: list[str] | None, data) -> int:
    """``--angles``: write ``<out>/angles.json`` (no training runs)."""
    import json

    from ._runs import atomic_write_text

    base = PCSpec(sizes=(data.n_features, *args.hidden, data.n_classes),
                  inference_rate=args.inference_rate, inference_steps=args.inference_steps,
                  learning_rate=args.learning_rate, batch_size=args.batch_size,
                  label_smoothing=0.0)
    t0 = time.perf_counter()
    angles = measure_angles(data, base, args.probe_batches, args.angle_train_batches)
    meta = run_meta("demos.activation_relaxation", argv, data, 0, base.replace(dtype="float64"),
                    loss=Loss.MSE_SUM.value, probe_batches=args.probe_batches,
                    angle_train_batches=args.angle_train_batches)
    meta["note"] = ("angle_W{l}: degrees between the variant's update of W_l and -dL/dW_l "
                    "(autograd), mean over the probe batches; angle_all/cosine_all: all "
                    "weights together. fprime_*_h{l}: f' of hidden layer l at the forward "
                    "pre-activation vs at the variant's relaxed activity of layer l-1 "
                    "(x_{l-1} W^T, what R5-R7 use); rms_*: activity size. +relax-input: the "
                    "input layer relaxes too (authors' code).")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "angles.json", json.dumps({**meta, "angles": angles}, indent=2)
                      + "\n")
    for cond, rows in angles.items():
        print(cond)
        for name, row in rows.items():
            layers = " ".join(f"{row[k]:6.1f}" for k in sorted(row) if k.startswith("angle_W"))
            print(f"  {name:<20} all {row['angle_all']:6.1f} deg  per layer {layers}")
    print(f"wrote {args.out / 'angles.json'} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
