"""Spiking predictive-coding circuits: learning next to the rate circuit and the torch twin,
correspondence with the rate circuit, and pictures of the spikes.

    python -m demos.spiking learn                        # standard PC, digits, 64-50-10
    python -m demos.spiking learn --variant learned-backward --out results/spiking/digits-learned-backward
    python -m demos.spiking learn --dataset mnist --train-subset 2000 --hidden 100 \\
        --epochs 5 --out results/spiking/mnist-pc
    python -m demos.spiking correspondence               # the error-vs-window curves

``learn`` trains three backends from the same initial weights on the same minibatches: the
PyTorch twin and the rate circuit (numba kernels), both with the rate spec whose iteration is
the spiking circuit's relaxation ODE (``SpikeCoding.rate_spec``), and the spiking circuit.
Writes under ``--out``: ``torch/``, ``rate/``, ``spiking/`` (``curves.csv``,
``summary.json``, checkpoints: reruns resume, a larger ``--epochs`` extends),
``curves.png``, ``comparison.json``, ``rasters.png`` (one test sample through the trained
spiking circuit: the spikes of every ON/OFF population and the decoded rates) and
``weights.png`` (every weight matrix before and after learning).

``correspondence`` measures, for the same weights and inputs, the spiking circuit against
its rate twin as the hold (counting and plasticity) window and the maximum rate grow, for LIF
and Poisson cells: ``correspondence.csv``, ``correspondence.json`` and
``correspondence.png``.
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
from algorithms.spec import PCSpec, SpecError
from algorithms.variants import Variant, variant_spec

from ._runs import RunResult, atomic_write_text, prepare_runs, run_meta
from .runner import Task, add_sweep_arguments, load_runs, provenance, run_sweep_cli, seeds_from

BACKENDS = ("torch", "rate", "spiking")


def _coding_args(p: argparse.ArgumentParser) -> None:
    from circuits.spiking import Encoding, SpikeCoding

    d = SpikeCoding()
    g = p.add_argument_group("spike coding (times in ms)")
    g.add_argument("--encoding", default=d.encoding.value, choices=[e.value for e in Encoding])
    g.add_argument("--max-rate", type=float, default=d.max_rate, help="Hz per cell")
    g.add_argument("--cells", type=int, default=d.cells, help="cells per ON/OFF side (Poisson)")
    g.add_argument("--tau-syn", type=float, default=1e3 * d.tau_syn)
    g.add_argument("--tau-value", type=float, default=1e3 * d.tau_value)
    g.add_argument("--relax", type=float, default=1e3 * d.relax)
    g.add_argument("--hold", type=float, default=1e3 * d.hold)
    g.add_argument("--dale", action="store_true", help="excitatory/inhibitory split pathways")


def coding_from(args: argparse.Namespace) -> Any:
    from circuits.spiking import Encoding, SpikeCoding

    return SpikeCoding(encoding=Encoding(args.encoding), max_rate=args.max_rate,
                       cells=args.cells, tau_syn=args.tau_syn / 1e3,
                       tau_value=args.tau_value / 1e3, relax=args.relax / 1e3,
                       hold=args.hold / 1e3, dale=args.dale)


def coding_dict(coding: Any) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v)
            for k, v in dataclasses.asdict(coding).items()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demos.spiking",
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    le = sub.add_parser("learn", help="train torch twin, rate circuit and spiking circuit",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    le.add_argument("--variant", default="pc",
                    choices=[v.value for v in Variant if v is not Variant.BACKPROP])
    le.add_argument("--dataset", default="digits", choices=dataset_names())
    le.add_argument("--activation", default="tanh",
                    choices=[a.value for a in Activation if a is not Activation.LINEAR])
    le.add_argument("--hidden", type=int, nargs="+", default=[50])
    le.add_argument("--epochs", type=int, default=10)
    le.add_argument("--learning-rate", type=float, default=0.01)
    le.add_argument("--batch-size", type=int, default=16)
    le.add_argument("--init-scale", type=float, default=0.1)
    le.add_argument("--train-subset", type=int, default=None,
                    help="train on the first N training samples (every backend)")
    le.add_argument("--test-subset", type=int, default=None,
                    help="test on the first N test samples (every backend)")
    le.add_argument("--split", default="thesis", choices=["thesis", "full"])
    le.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    le.add_argument("--data-dir", default=None)
    le.add_argument("--out", type=Path, default=Path("runs/spiking/digits-pc"))
    le.add_argument("--fresh", action="store_true", help="discard this sweep's runs first")
    le.add_argument("--no-progress", action="store_true", help="(runs report per run)")
    add_sweep_arguments(le)
    _coding_args(le)
    co = sub.add_parser("correspondence", help="spiking vs rate circuit as the window grows",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    co.add_argument("--hidden", type=int, nargs="+", default=[50])
    co.add_argument("--samples", type=int, default=16)
    co.add_argument("--holds", type=float, nargs="+", default=[5, 20, 80],
                    help="hold (counting and plasticity) windows, ms")
    co.add_argument("--rates", type=float, nargs="+", default=[250, 1000, 2000],
                    help="maximum rates, Hz per cell")
    co.add_argument("--encodings", nargs="+", default=["lif", "poisson"],
                    choices=["lif", "poisson"])
    co.add_argument("--init-scale", type=float, default=0.1)
    co.add_argument("--error-range", type=float, default=0.25,
                    help="hidden error coding range (the untrained network's errors fit)")
    co.add_argument("--output-error-range", type=float, default=1.0)
    co.add_argument("--out", type=Path, default=Path("runs/spiking/correspondence"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "learn":
        return learn(args, argv)
    return correspondence(args, argv)


# ------------------------------------------------------------------------------ learn
def learn(args: argparse.Namespace, argv: list[str] | None) -> int:
    from circuits.drive import CircuitError

    from .relaxations import load_data

    torch.set_num_threads(1)
    try:
        coding = coding_from(args)
        args.no_download = False
        data = load_data(args)
        if args.train_subset is not None:
            data = dataclasses.replace(data, train_x=data.train_x[:args.train_subset],
                                       train_y=data.train_y[:args.train_subset])
        if args.test_subset is not None:
            data = dataclasses.replace(data, test_x=data.test_x[:args.test_subset],
                                       test_y=data.test_y[:args.test_subset])
        base = coding.rate_spec(PCSpec(
            sizes=(data.n_features, *args.hidden, data.n_classes),
            activation=Activation(args.activation), learning_rate=args.learning_rate,
            batch_size=args.batch_size, init_scale=args.init_scale, dtype="float64"))
    except (DatasetNotFoundError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (SpecError, CircuitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    variant = Variant(args.variant)
    try:
        seeds = seeds_from(args.seeds)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = run_meta("demos.spiking", argv, data, args.epochs, base, split=args.split,
                    coding=coding_dict(coding), seeds=seeds, backends=args.backends)
    prov = provenance(meta["command"])
    task_backend = {"torch": "torch", "rate": "circuit", "spiking": "spiking"}
    tasks = {(backend, seed): Task(
                 "pc", variant.value, data.name, args.activation, seed, args.epochs,
                 base.to_dict(), split=args.split, data_dir=args.data_dir,
                 train_subset=args.train_subset, test_subset=args.test_subset,
                 backend=task_backend[backend], circuit_target="cython", kernel="numba",
                 options={"coding": coding_dict(coding)}, provenance=prov)
             for backend in args.backends for seed in seeds}
    prepare_runs(args.out, [t.key for t in tasks.values()], args.fresh)
    print(f"{data.describe()}; {variant.label}; sizes {base.sizes}; {args.activation}; "
          f"{args.epochs} epochs; {coding.encoding.value} cells up to {coding.max_rate:g} Hz; "
          f"{len(seeds)} seed(s) -> {args.out} (scheduler {args.scheduler})", flush=True)
    t0 = time.perf_counter()
    rc = run_sweep_cli(list(tasks.values()), args.out, meta, args)
    if rc:
        return rc
    by_backend: dict[str, list[RunResult]] = {
        b: load_runs(args.out, [tasks[(b, s)].key for s in seeds]) for b in args.backends}
    comparison = compare(by_backend)
    atomic_write_text(args.out / "comparison.json",
                      json.dumps({**meta, "comparison": comparison}, indent=2) + "\n")
    title = (f"{data.name}: {variant.label}, {'-'.join(map(str, base.sizes))}, "
             f"{args.activation}, {coding.encoding.value} {coding.max_rate:g} Hz")
    plot_curves(by_backend, args.out / "curves.png", title)
    if "spiking" in by_backend:
        spec = variant_spec(variant, base.replace(seed=seeds[0]))
        ckpt = args.out / "runs" / tasks[("spiking", seeds[0])].key / "checkpoint.pt"
        params = {k: checkpoint_params(spec, ckpt, k) for k in ("initial", "final")}
        rasters(spec, coding, params["final"], data, args.out / "rasters.png")
        weights_figure(params, args.out / "weights.png", title)
    print(f"done in {time.perf_counter() - t0:.0f} s; wrote {args.out}")
    for k, v in comparison.items():
        print(f"  {k}: {v}")
    return 0


def compare(runs: dict[str, list[RunResult]]) -> dict[str, Any]:
    """Per backend: status, final test accuracy (mean and std over seeds) and epoch time;
    the spiking circuit's gap to the rate circuit and the torch twin, seed by seed (the
    same seed starts every backend from the same weights), as mean and std over seeds."""
    import statistics

    out: dict[str, Any] = {}
    for backend, rs in runs.items():
        out[f"{backend}_status"] = [r.status for r in rs]
        finals = [r.records[-1].test_accuracy for r in rs if r.records]
        if finals:
            out[f"{backend}_final_test_accuracy_mean"] = statistics.fmean(finals)
            out[f"{backend}_final_test_accuracy_std"] = statistics.pstdev(finals)
            walls = [x.wall_seconds for r in rs for x in r.records]
            out[f"{backend}_mean_epoch_seconds"] = statistics.fmean(walls)
    if "spiking" in runs:
        for other in ("rate", "torch"):
            final_gaps, max_gaps = [], []
            for s, o in zip(runs["spiking"], runs.get(other, [])):
                n = min(len(s.records), len(o.records))
                if n:
                    final_gaps.append(100 * (s.records[n - 1].test_accuracy
                                             - o.records[n - 1].test_accuracy))
                    max_gaps.append(100 * max(abs(s.records[i].test_accuracy
                                                  - o.records[i].test_accuracy)
                                              for i in range(n)))
            if final_gaps:
                out[f"spiking_minus_{other}_final_points_mean"] = statistics.fmean(final_gaps)
                out[f"spiking_minus_{other}_final_points_std"] = statistics.pstdev(final_gaps)
                out[f"spiking_vs_{other}_max_abs_gap_points_mean"] = statistics.fmean(max_gaps)
    out["seeds"] = max((len(rs) for rs in runs.values()), default=0)
    return out


def plot_curves(runs: dict[str, list[RunResult]], path: Path, title: str) -> None:
    """Test (solid) and train (dashed) accuracy per backend: mean over seeds, test shaded
    by +- std when there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"torch": dict(color="tab:blue", lw=3, alpha=0.45),
              "rate": dict(color="tab:green", lw=1.5, marker="s", ms=3),
              "spiking": dict(color="tab:red", lw=1.3, marker="o", ms=3)}
    names = {"torch": "PyTorch twin", "rate": "rate circuit", "spiking": "spiking circuit"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for backend, rs in runs.items():
        rs = [r for r in rs if r.records]
        if not rs:
            continue
        n = min(len(r.records) for r in rs)
        ep = np.arange(1, n + 1)
        test = np.array([[100 * x.test_accuracy for x in r.records[:n]] for r in rs])
        train = np.array([[100 * x.train_accuracy for x in r.records[:n]] for r in rs])
        seeds = f" ({len(rs)} seeds)" if len(rs) > 1 else ""
        ax.plot(ep, test.mean(0), label=f"{names[backend]} test{seeds}", **styles[backend])
        if len(rs) > 1:
            ax.fill_between(ep, test.mean(0) - test.std(0), test.mean(0) + test.std(0),
                            color=styles[backend]["color"], alpha=0.15)
        ax.plot(ep, train.mean(0), ls="--", label=f"{names[backend]} train",
                **{k: v for k, v in styles[backend].items() if k != "marker"})
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def checkpoint_params(spec: PCSpec, checkpoint: Path, which: str) -> Any:
    """A run's weights: ``initial`` (``init_params`` of its spec, which every backend
    starts from) or ``final`` (its checkpoint)."""
    from algorithms.pc import init_params, load_named_tensors

    params = init_params(spec)
    if which == "final":
        state = torch.load(checkpoint, weights_only=True)
        load_named_tensors(params, {k: v.double() for k, v in state["model"]["params"].items()})
    return params


def rasters(spec: PCSpec, coding: Any, params: Any, data: Any, path: Path) -> None:
    """One test sample through the spiking circuit (no learning): per population, the ON
    (red) and OFF (blue) spikes of every unit over settle | relax | hold, and below each the
    decoded quantity of a few units (continuous state for values, 20-step spike counts for
    errors)."""
    import brian2 as b2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from circuits.spiking import build_spiking_pc_circuit

    c = build_spiking_pc_circuit(spec.replace(batch_size=1), params, coding=coding,
                                 name="sraster")
    L = spec.n_layers
    x = data.test_x[:1].double()
    y = smooth_targets(data.test_y[:1], spec.sizes[-1], spec.label_smoothing, torch.float64)
    pops = [f"V{l}" for l in range(L + 1)] + [f"E{l}" for l in range(1, L + 1)]
    groups = {g.name.removeprefix("sraster_"): g for g in c._groups()}
    mons: dict[str, Any] = {}
    for pop in pops:
        for ev in ("on", "off"):
            mons[f"{pop}.{ev}"] = b2.EventMonitor(groups[pop], ev,
                                                  name=f"sraster_mon_{pop}_{ev}")
    states = c.step_monitors({**{f"V{l}": ("v",) for l in range(1, L)},
                              **{f"E{l}": ("eps",) for l in range(1, L + 1)}})
    c.run(x, y, learn=False, monitors={**mons, **states})
    ph, dt_ms = c.phases, coding.dt * 1e3
    bounds = np.cumsum([0, ph.settle, ph.relax, ph.hold]) * dt_ms
    fig, axes = plt.subplots(2, len(pops), figsize=(2.9 * len(pops), 6.2),
                             gridspec_kw={"height_ratios": [2.2, 1]}, squeeze=False)
    rng = np.random.default_rng(0)
    for k, pop in enumerate(pops):
        ax = axes[0, k]
        n = len(groups[pop])
        for ev, color in (("on", "tab:red"), ("off", "tab:blue")):
            m = mons[f"{pop}.{ev}"]
            ax.plot(np.asarray(m.t / b2.ms), np.asarray(m.i), "|", color=color, ms=3,
                    mew=0.6, label=ev.upper())
        for b in bounds[1:-1]:
            ax.axvline(b, color="k", lw=0.6, ls=":")
        ax.set_xlim(0, bounds[-1])
        ax.set_ylim(-0.5, n - 0.5)
        kind = "value" if pop[0] == "V" else "error"
        clamp = " (clamped)" if pop in ("V0", f"V{L}") else ""
        ax.set_title(f"{kind} pairs {pop}{clamp}: {n} units", fontsize=8)
        ax.set_ylabel("unit", fontsize=7)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.legend(fontsize=6, loc="upper right", markerscale=2)
        ax2 = axes[1, k]
        if pop in states or (pop[0] == "V" and pop in states):
            pass
        if pop[0] == "V" and pop not in ("V0", f"V{L}"):
            tr = np.asarray(states[pop].v)
            t_ms = np.asarray(states[pop].t / b2.ms)
            pick = rng.choice(tr.shape[0], size=min(6, tr.shape[0]), replace=False)
            ax2.plot(t_ms, tr[pick].T, lw=0.8)
            ax2.set_title("value state v (6 units)", fontsize=7)
        elif pop[0] == "E":
            tr = np.asarray(states[pop].eps)
            t_ms = np.asarray(states[pop].t / b2.ms)
            pick = np.argsort(-np.abs(tr[:, -1]))[: min(4, tr.shape[0])]
            ax2.plot(t_ms, tr[pick].T, lw=0.6, alpha=0.8)
            ax2.set_title("dendritic eps (4 largest units)", fontsize=7)
        else:
            vals = x[0].numpy() if pop == "V0" else y[0].numpy()
            ax2.bar(np.arange(len(vals)), vals, color="0.4")
            ax2.set_title("clamped values", fontsize=7)
        if pop[0] != "V" or pop not in ("V0", f"V{L}"):
            for b in bounds[1:-1]:
                ax2.axvline(b, color="k", lw=0.6, ls=":")
            ax2.set_xlabel("time (ms): settle | relax | hold", fontsize=7)
        ax2.tick_params(labelsize=6)
    fig.suptitle(f"spiking PC circuit, one test digit (label {int(data.test_y[0])}): ON "
                 f"(red) / OFF (blue) spikes of every population", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def weights_figure(params: dict[str, Any], path: Path, title: str) -> None:
    """Every weight matrix before and after learning, and their difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before, after = params["initial"].tensors(), params["final"].tensors()
    names = [k for k in before if k[0] != "b"]
    fig, axes = plt.subplots(len(names), 3, figsize=(10, 2.6 * len(names)), squeeze=False)
    for r, k in enumerate(names):
        a, b = before[k].numpy(), after[k].numpy()
        lim = float(max(np.abs(a).max(), np.abs(b).max())) or 1.0
        for cidx, (m, lab) in enumerate(((a, "before"), (b, "after"), (b - a, "change"))):
            ax = axes[r, cidx]
            lm = lim if cidx < 2 else (float(np.abs(m).max()) or 1.0)
            im = ax.imshow(m, cmap="RdBu_r", vmin=-lm, vmax=lm, aspect="auto",
                           interpolation="nearest")
            ax.set_title(f"{k} {lab} ({m.shape[0]}x{m.shape[1]})", fontsize=8)
            ax.tick_params(labelsize=6)
            fig.colorbar(im, ax=ax, fraction=0.046).ax.tick_params(labelsize=6)
    fig.suptitle(f"weights of the spiking circuit: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------- correspondence
def correspondence(args: argparse.Namespace, argv: list[str] | None) -> int:
    import platform
    import shlex

    from algorithms.data import load_dataset
    from algorithms.pc import init_params
    from circuits.spiking import Encoding, SpikeCoding, measure_correspondence

    data = load_dataset("digits")
    spec = PCSpec(sizes=(data.n_features, *args.hidden, data.n_classes),
                  activation=Activation.TANH, init_scale=args.init_scale, dtype="float64")
    params = init_params(spec)
    x = data.train_x[: args.samples].double()
    y = smooth_targets(data.train_y[: args.samples], spec.sizes[-1], spec.label_smoothing,
                       torch.float64)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for enc in args.encodings:
        for rate in args.rates:
            for hold in args.holds:
                coding = SpikeCoding(encoding=Encoding(enc), max_rate=rate, hold=hold / 1e3,
                                     error_range=args.error_range,
                                     output_error_range=args.output_error_range)
                m = measure_correspondence(spec, params, x, y, coding)
                row = {"encoding": enc, "max_rate_hz": rate, "hold_ms": hold,
                       **dataclasses.asdict(m)}
                rows.append(row)
                print(f"  {enc:<8}{rate:>7g} Hz {hold:>6g} ms  values {m.values:.3f}  errors "
                      f"{m.errors:.3f}  updates {m.updates:.3f}  angle to rate "
                      f"{m.angle_to_rate:5.1f} deg, to backprop {m.angle_to_backprop:5.1f} "
                      f"(rate: {m.rate_angle_to_backprop:.1f})", flush=True)
    cols = list(rows[0])
    atomic_write_text(args.out / "correspondence.csv",
                      "\n".join([",".join(cols)] + [",".join(str(r[c]) for c in cols)
                                                     for r in rows]) + "\n")
    meta = {"command": "python -m demos.spiking " + shlex.join(
                argv if argv is not None else sys.argv[1:]),
            "network": f"digits {'-'.join(map(str, spec.sizes))} tanh, init_scale "
                       f"{args.init_scale}, {args.samples} training samples, one batch; "
                       f"error ranges {args.error_range:g} (hidden), "
                       f"{args.output_error_range:g} (output)",
            "reference": "rate circuit with SpikeCoding.rate_spec (same relaxation ODE)",
            "coding_defaults": coding_dict(SpikeCoding()),
            "seconds": time.perf_counter() - t0,
            "platform": f"{platform.machine()} {platform.python_version()}"}
    atomic_write_text(args.out / "correspondence.json",
                      json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    plot_correspondence(rows, args.out / "correspondence.png", meta["network"])
    print(f"wrote {args.out}/correspondence.csv, .json, .png")
    return 0


def plot_correspondence(rows: list[dict[str, Any]], path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encs = list(dict.fromkeys(r["encoding"] for r in rows))
    rates = list(dict.fromkeys(r["max_rate_hz"] for r in rows))
    metrics = [("values", "decoded hidden values"), ("errors", "decoded errors"),
               ("updates", "weight updates"), ("angle_to_rate", "angle to rate update (deg)")]
    fig, axes = plt.subplots(len(encs), len(metrics), figsize=(3.3 * len(metrics),
                                                              3.0 * len(encs)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for a, enc in enumerate(encs):
        for b, (key, label) in enumerate(metrics):
            ax = axes[a, b]
            for k, rate in enumerate(rates):
                sel = [r for r in rows if r["encoding"] == enc and r["max_rate_hz"] == rate]
                ax.plot([r["hold_ms"] for r in sel], [r[key] for r in sel], "o-",
                        color=cmap(k / max(1, len(rates) - 1)), ms=3, label=f"{rate:g} Hz")
            from matplotlib.ticker import NullFormatter, ScalarFormatter
            ax.set_xscale("log")
            holds = sorted({r["hold_ms"] for r in rows})
            ax.set_xticks(holds, [f"{h:g}" for h in holds])
            ax.xaxis.set_minor_formatter(NullFormatter())
            if key != "angle_to_rate":
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(ScalarFormatter())
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("hold window (ms)", fontsize=8)
            ax.set_title(f"{enc}: {label}" + ("" if key == "angle_to_rate"
                                              else " (rel. error)"), fontsize=8)
            ax.grid(alpha=0.3, which="both")
            ax.tick_params(labelsize=7)
            if b == 0:
                ax.legend(fontsize=7, title="max rate", title_fontsize=7)
    fig.suptitle(f"spiking vs rate circuit, same weights and inputs ({subtitle})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
