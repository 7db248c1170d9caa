"""One training epoch of PC, AR and the graph engine vs one of backprop, side by side.

    python -m benchmarks.pc_vs_backprop --data-dir ../shared/datasets [--json out.json]

On MNIST (784-300-100-10, relu, batch 64, thesis split) every model starts from the same
weights and trains one epoch; the script prints wall time relative to backprop, the test
accuracy reached, and the cosine between each model's first-batch weight update and the
backprop gradient (mean over layers). PC runs at 100 and 20 steps (rate 0.1) and at
depth-many steps (L-1 = 2 hops from the output to the first hidden layer, rate 1.0), with and
without the fixed-prediction assumption; activation relaxation (AR) at the same budgets; and
PC through the generic graph engine (``algorithms.graph``, autograd VJPs) at 100 steps. All
share the loss ``1/2||y - T||^2`` and learning rate. Timings are wall clock on this machine,
measured in one process as medians of ``--repeats`` interleaved repetitions (each trains one
epoch of every model, in rotating order), with the machine's load average before and after;
ratios are comparable, absolute seconds are not portable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from algorithms.ar import ActivationRelaxationNetwork
from algorithms.backprop import BackpropNetwork, gradients
from algorithms.fidelity import layer_fidelity
from algorithms.graph import Algorithm, GraphModel, Loss
from algorithms.graph_models import mlp_graph
from algorithms.data import load_dataset, smooth_targets
from algorithms.pc import PredictiveCodingNetwork
from algorithms.spec import Activation, PCSpec
from algorithms.training import accuracy, train_epoch

from .torch_speed import git_commit, loadavg


class _GraphEpochModel:
    """Adapts a GraphModel on the spec's MLP to the epoch loop's interface."""

    def __init__(self, spec: PCSpec) -> None:
        self.spec = spec
        self.model = GraphModel(mlp_graph(spec), Algorithm.PC, loss=Loss.MSE_HALF,
                                learning_rate=spec.learning_rate, rate=spec.inference_rate,
                                steps=spec.inference_steps)

    def train_batch(self, x0: torch.Tensor, target: torch.Tensor) -> float:
        return self.model.train_batch({"x": x0}, target)

    def predict(self, x0: torch.Tensor) -> torch.Tensor:
        return self.model.predict({"x": x0})

    def cosine(self, x0: torch.Tensor, target: torch.Tensor) -> float:
        ups = self.model.updates({"x": x0}, target)
        grads = gradients(PredictiveCodingNetwork(self.spec).params, self.spec, x0, target)
        cos = [torch.nn.functional.cosine_similarity(ups[f"W{l}"].double().flatten(),
                                                     -g.double().flatten(), dim=0).item()
               for l, g in enumerate(grads.weights)]
        return sum(cos) / len(cos)


def cosine_to_backprop(model, x0: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over layers of cos(update, -gradient) on one batch, at the initial weights."""
    if isinstance(model, _GraphEpochModel):
        return model.cosine(x0, target)
    fids = layer_fidelity(model, x0, target)
    return sum(math.cos(math.radians(f.angle_degrees)) for f in fids) / len(fids)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "digits"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3,
                   help="interleaved repetitions: one epoch of every model each (medians; >= 3)")
    p.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    args = p.parse_args(argv)
    if args.repeats < 3:
        p.error("--repeats must be at least 3 (medians of interleaved repetitions)")
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_dir, split="thesis")
    base = PCSpec(sizes=(data.n_features, 300, 100, data.n_classes), activation=Activation.RELU)
    depth = base.n_layers - 1
    fpa = dict(fixed_predictions=True)
    budgets = [("100 steps, rate 0.1", dict(inference_steps=100)),
               ("20 steps, rate 0.1", dict(inference_steps=20)),
               (f"{depth} steps, rate 1.0", dict(inference_steps=depth, inference_rate=1.0))]

    def ar(spec: PCSpec) -> ActivationRelaxationNetwork:
        return ActivationRelaxationNetwork(spec, loss=Loss.MSE_HALF)

    configs = [("backprop", base, BackpropNetwork)]
    configs += [(f"PC, {b}", base.replace(**kw), PredictiveCodingNetwork) for b, kw in budgets]
    configs += [(f"PC-FPA, {b}", base.replace(**kw, **fpa), PredictiveCodingNetwork)
                for b, kw in budgets]
    configs += [(f"AR, {b}", base.replace(**kw), ar) for b, kw in budgets]
    configs.append(("graph-engine PC, 100 steps", base.replace(inference_steps=100),
                    _GraphEpochModel))
    x0 = data.train_x[:64]
    target = smooth_targets(data.train_y[:64], data.n_classes, base.label_smoothing)
    rows = []
    load_before = loadavg()
    print(f"{data.describe()}; sizes {base.sizes}; batch {base.batch_size}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{platform.machine()}; commit {git_commit()}; load average before {load_before}",
          flush=True)
    # every repetition trains one epoch of every model in turn (the order rotating), so load
    # drift reaches all models alike; the table gives medians over repetitions
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    acc: dict[str, float] = {}
    for rep in range(args.repeats):
        order = configs[rep % len(configs):] + configs[:rep % len(configs)]
        this: dict[str, float] = {}
        for name, spec, make in order:
            model = make(spec)
            t0 = time.perf_counter()
            train_epoch(model, data, 1, progress=False)
            this[name] = time.perf_counter() - t0
            times[name].append(this[name])
            acc[name] = accuracy(model, data.test_x, data.test_y)
            print(f"  rep {rep + 1}/{args.repeats} {name}: {this[name]:.2f} s", file=sys.stderr,
                  flush=True)
        for name in this:
            ratios[name].append(this[name] / this["backprop"])
    for name, spec, make in configs:
        is_bp = make is BackpropNetwork
        cos = 1.0 if is_bp else cosine_to_backprop(make(spec), x0, target)
        rows.append({"model": name, "epoch_seconds": statistics.median(times[name]),
                     "epoch_seconds_all": times[name],
                     "ratio_to_backprop": statistics.median(ratios[name]),
                     "ratios_to_backprop_all": ratios[name],
                     "test_accuracy_after_1_epoch": acc[name], "update_cosine_to_backprop": cos,
                     "inference_steps": 0 if is_bp else spec.inference_steps,
                     "inference_rate": None if is_bp else spec.inference_rate,
                     "fixed_predictions": spec.fixed_predictions})
    load_after = loadavg()
    head = (f"{'model':<34}{'s/epoch':>9}{'x backprop':>12}{'(range)':>14}{'test acc':>10}"
            f"{'cos(update, -grad)':>20}")
    print(f"medians of {args.repeats} interleaved repetitions; load average after {load_after}")
    print(head)
    print("-" * len(head))
    for r in rows:
        lo, hi = min(r["ratios_to_backprop_all"]), max(r["ratios_to_backprop_all"])
        print(f"{r['model']:<34}{r['epoch_seconds']:>9.2f}{r['ratio_to_backprop']:>12.1f}"
              f"{f'{lo:.1f}-{hi:.1f}':>14}"
              f"{100 * r['test_accuracy_after_1_epoch']:>9.2f}%{r['update_cosine_to_backprop']:>20.6f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": "python -m benchmarks.pc_vs_backprop "
                                         + " ".join(argv if argv is not None else sys.argv[1:]),
                                         "git_commit": git_commit(), "torch": torch.__version__,
                                         "threads": args.threads, "cpus": os.cpu_count(),
                                         "repeats": args.repeats, "loadavg_before": load_before,
                                         "loadavg_after": load_after, "rows": rows},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
