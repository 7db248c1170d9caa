"""The main job: backprop vs predictive coding and its biological relaxations (thesis 3.5).

    python -m demos.relaxations                                   # digits, relu, all variants
    python -m demos.relaxations --dataset mnist --activation tanh --epochs 10 --out results/x

Writes ``curves.csv``, ``summary.json`` and ``curves.png`` into ``--out`` (default
``runs/relaxations``, git-ignored) and prints a final table. Interrupt it at any time: rerunning the same command resumes every run from its last
finished epoch (checkpoints in ``<out>/checkpoints/``) and gives the same curves.

Prediction mode (``--predictions``): ``auto`` (default) runs the variants with learned error
connections (``learned-error``, ``fully-relaxed``; psi on the prediction, as in the authors'
code) with fixed predictions, as the authors did, and every other PC variant with recomputed
predictions (the thesis text); ``fixed`` and ``recomputed`` force one mode for all. The mode
is part of each variant's label in the table, ``summary.json`` and the figure legend.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from algorithms.activations import Activation
from algorithms.data import DatasetNotFoundError, DataError, dataset_names, load_dataset
from algorithms.spec import PCSpec, PsiInit, SpecError
from algorithms.variants import PSI_VARIANTS, THESIS_VARIANTS, Variant

from ._runs import (RunResult, add_device_argument, device_from, prepare_runs,
                    run_meta, summarise)
from .runner import (Task, add_sweep_arguments, load_runs, provenance, run_sweep_cli,
                     seeds_from)

DEFAULT_EPOCHS = {"digits": 30, "mnist": 10, "fashion-mnist": 10}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m demos.relaxations",
        description="Compare backprop, standard predictive coding and its biological "
                    "relaxations on one dataset and activation.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default="digits", choices=dataset_names(),
                   help="digits is embedded; mnist/fashion-mnist are read from --data-dir")
    p.add_argument("--activation", default="relu",
                   choices=[a.value for a in Activation if a is not Activation.LINEAR],
                   help="hidden-layer nonlinearity (the output layer is linear)")
    p.add_argument("--variants", nargs="+", default=["all"],
                   choices=["all", *[v.value for v in Variant]], metavar="VARIANT",
                   help="any of: all (the thesis comparison), " + ", ".join(v.value for v in Variant)
                        + " (psi-value is beyond the thesis: pair it with --psi-init "
                          "identity_noise)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: 30 on digits, 10 on mnist/fashion-mnist)")
    p.add_argument("--inference-steps", type=int, default=100,
                   help="relaxation iterations per minibatch")
    p.add_argument("--inference-rate", type=float, default=0.1, help="Euler step gamma")
    p.add_argument("--learning-rate", type=float, default=1e-3,
                   help="weight learning rate (on batch-summed updates)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, nargs="+", default=[300, 100],
                   help="hidden layer widths")
    p.add_argument("--update-clamp", type=float, default=None,
                   help="clamp each update elementwise to +-C (reference code: 50)")
    p.add_argument("--predictions", default="auto", choices=["auto", "fixed", "recomputed"],
                   help="PC prediction mode. fixed: freeze predictions, gains and presynaptic "
                        "values at the forward pass (the authors' runs); recomputed: the thesis "
                        "text's dynamics; auto: fixed for the variants with learned error "
                        "connections on the prediction (learned-error, fully-relaxed: under "
                        "recomputed predictions they diverge, in the authors' code too), "
                        "recomputed for the others")
    p.add_argument("--fixed-predictions", action="store_true",
                   help="same as --predictions fixed")
    p.add_argument("--psi-init", default="abs_normal", choices=[q.value for q in PsiInit],
                   help="initial error connections psi (abs_normal: the authors' |N(0, s^2)|; "
                        "identity_noise: I + N(0, s^2), for psi-value)")
    p.add_argument("--output-precision", type=float, default=1.0,
                   help="precision pi of the output error (< 1: weak output clamping; PC's "
                        "update approaches the backprop gradient as pi -> 0)")
    p.add_argument("--split", default="thesis", choices=["thesis", "full"],
                   help="thesis: train on the first 50,000 training images; full: all 60,000")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--backend", default="torch", choices=["torch", "circuit"],
                   help="circuit: train the PC variants as Brian2 neuron circuits (float64; "
                        "backprop stays torch as the reference)")
    p.add_argument("--circuit-target", default="cython", choices=["cython", "numpy"],
                   help="Brian2 code-generation target of the circuit backend")
    p.add_argument("--kernel", default="numba", choices=["numba", "brian2"],
                   help="circuit backend: dense pathways as numba kernels or Brian2 synapses")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on the first N training samples (after the split)")
    p.add_argument("--out", default="runs/relaxations", type=Path,
                   help="output folder for curves.csv, summary.json, curves.png, checkpoints "
                        "(the default is git-ignored: committed results live in results/)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding <dataset>/ IDX files (default $PREDICTIVE_CIRCUITS_DATA)")
    p.add_argument("--no-download", action="store_true",
                   help="never try to download missing data files")
    p.add_argument("--fresh", action="store_true",
                   help="discard existing checkpoints in --out instead of resuming")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default 1: runs go in parallel instead)")
    add_sweep_arguments(p)
    add_device_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plot", action="store_true", help="skip curves.png")
    return p


def circuit_factory(target: str, kernel: str) -> Any:
    """``make_model`` for :func:`demos._runs.run_all`: the Brian2 circuit twin of every PC
    variant; backprop (``None``) stays on torch."""
    from circuits.drive import Kernel, Target
    from circuits.model import build_circuit_model

    def make(variant: Variant, spec: PCSpec) -> Any:
        if variant is Variant.BACKPROP:
            return None
        return build_circuit_model(variant, spec, target=Target(target), kernel=Kernel(kernel))

    make.backend = "circuit"  # type: ignore[attr-defined]
    return make


AUTO_FIXED: frozenset[Variant] = PSI_VARIANTS - {Variant.PSI_ON_VALUE}
"""The variants ``--predictions auto`` runs with fixed predictions."""


def fixed_predictions(mode: str, variant: Variant) -> bool:
    """The prediction mode of ``variant`` under ``--predictions mode``."""
    if mode == "auto":
        return variant in AUTO_FIXED
    return mode == "fixed"


def psi_probe(model: Any) -> dict[str, float]:
    """How far each learned ``psi_l`` is from the identity, ``||psi_l - I||_F / sqrt(n_l)``
    (``probes.csv``; empty for models without ``psi``)."""
    import torch

    params = getattr(model, "params", None)
    out: dict[str, float] = {}
    for l, psi in enumerate(getattr(params, "psi", None) or []):
        if psi is not None:
            eye = torch.eye(psi.shape[0], dtype=psi.dtype)
            out[f"psi_drift_{l}"] = float((psi - eye).norm() / psi.shape[0] ** 0.5)
    return out


def selected_variants(names: list[str]) -> list[Variant]:
    if "all" in names:
        return list(THESIS_VARIANTS)
    return [Variant(n) for n in dict.fromkeys(names)]


def load_data(args: argparse.Namespace):
    try:
        return load_dataset(args.dataset, args.data_dir, split=args.split)
    except DatasetNotFoundError:
        if args.dataset == "digits" or args.no_download:
            raise
        from .download import default_data_dir, download

        folder = default_data_dir(args.data_dir)
        print(f"{args.dataset} not found; downloading into {folder}")
        download(args.dataset, folder)
        args.data_dir = str(folder)  # the runs read it from there too
        return load_dataset(args.dataset, folder, split=args.split)


def print_run(doc: dict[str, Any]) -> None:
    """One line per finished run (the runner's ``report``)."""
    records = doc.get("records") or []
    tail = f"test {100 * records[-1]['test_accuracy']:.2f}%" if records else "no epoch finished"
    message = f"  ({doc.get('message')})" if doc.get("status") == "diverged" else ""
    print(f"  {doc.get('label', doc.get('key')):<44} seed {doc.get('seed')}: "
          f"{doc.get('status'):<9} {tail}{message}", flush=True)


def print_table(results: list[RunResult], file: Any = None) -> None:
    file = sys.stdout if file is None else file
    summary = summarise(results, {})["variants"]
    head = f"{'variant':<46}{'test acc (final)':>18}{'best':>8}{'train':>8}{'s/epoch':>9}  status"
    print(head, file=file)
    print("-" * len(head), file=file)
    for s in summary.values():
        statuses = sorted({r["status"] for r in s["runs"]})
        if s["final_test_accuracy_mean"] is None:
            print(f"{s['label']:<46}{'-':>18}{'-':>8}{'-':>8}{'-':>9}  {','.join(statuses)}",
                  file=file)
            continue
        acc = f"{100 * s['final_test_accuracy_mean']:.2f} ± {100 * s['final_test_accuracy_std']:.2f}"
        print(f"{s['label']:<46}{acc:>18}{100 * s['best_test_accuracy_mean']:>8.2f}"
              f"{100 * s['final_train_accuracy_mean']:>8.2f}{s['mean_epoch_seconds']:>9.2f}  "
              f"{','.join(statuses)}", file=file)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.fixed_predictions:
        if args.predictions not in ("auto", "fixed"):
            print("error: --fixed-predictions contradicts --predictions "
                  f"{args.predictions}", file=sys.stderr)
            return 2
        args.predictions = "fixed"
    try:
        seeds = seeds_from(args.seeds)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.dataset]
    if epochs < 1:
        print("error: --epochs must be >= 1", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads or 1)
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
    n_classes = data.n_classes
    try:
        base = PCSpec(
            sizes=(data.n_features, *args.hidden, n_classes),
            activation=Activation(args.activation),
            inference_rate=args.inference_rate,
            inference_steps=args.inference_steps,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            update_clamp=args.update_clamp,
            fixed_predictions=args.predictions == "fixed",
            psi_init=PsiInit(args.psi_init),
            output_precision=args.output_precision,
            dtype=args.dtype,
        )
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.train_subset is not None:
        if args.train_subset < 1:
            print("error: --train-subset must be >= 1", file=sys.stderr)
            return 2
        data = dataclasses.replace(data, train_x=data.train_x[:args.train_subset],
                                   train_y=data.train_y[:args.train_subset])
    out: Path = args.out
    variants = selected_variants(args.variants)
    backend = ({"backend": "torch"} if args.backend == "torch" else
               {"backend": f"circuit (Brian2 {args.circuit_target}, {args.kernel} kernels, "
                           "float64); backprop on torch"})
    meta = run_meta("demos.relaxations", argv, data, epochs, base,
                    split=args.split if data.name != "digits" else "fixed 80/20 (seed 0)",
                    device=str(device), seeds=seeds, scheduler=args.scheduler, **backend)
    prov = provenance(meta["command"])
    probe = "psi" if PSI_VARIANTS & set(variants) else None
    tasks = [Task("pc", v.value, data.name, args.activation, seed, epochs, base.to_dict(),
                  split=args.split, data_dir=args.data_dir, train_subset=args.train_subset,
                  fixed_predictions=fixed_predictions(args.predictions, v),
                  backend=args.backend, circuit_target=args.circuit_target,
                  kernel=args.kernel, probe=probe, device=str(device),
                  threads=args.threads or 1, provenance=prov)
             for v in variants for seed in seeds]
    prepare_runs(out, [t.key for t in tasks], args.fresh)
    print(f"{data.describe()}; sizes {base.sizes}; {args.activation}; {epochs} epochs; "
          f"{len(variants)} variants x {len(seeds)} seed(s) -> {out} "
          f"(scheduler {args.scheduler})", flush=True)
    t0 = time.perf_counter()
    rc = run_sweep_cli(tasks, out, meta, args)
    if rc:
        return rc
    results = load_runs(out, [t.key for t in tasks])
    if not args.no_plot:
        from ._plots import plot_curves

        plot_curves(results, out / "curves.png",
                    title=f"{data.name}, {args.activation}, {'-'.join(map(str, base.sizes))}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; wrote {out}/curves.csv, summary.json"
          + ("" if args.no_plot else ", curves.png"))
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
