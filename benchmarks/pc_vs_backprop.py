"""One training epoch of predictive coding vs one of backprop, measured side by side.

    python -m benchmarks.pc_vs_backprop --data-dir ../shared/datasets [--json out.json]

On MNIST (784-300-100-10, relu, batch 64, thesis split) every model starts from the same
weights and trains one epoch; the script prints wall time relative to backprop, the test
accuracy reached, and the cosine between each model's first-batch weight update and the
backprop gradient (mean over layers). PC runs at 100 and 20 steps (rate 0.1) and at
depth-many steps (L-1 = 2 hops from the output to the first hidden layer, rate 1.0), with and
without the fixed-prediction assumption. Timings are wall clock on this machine, interleaved
in one process, so their ratios are comparable; absolute seconds are not portable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from algorithms.backprop import BackpropNetwork, gradients
from algorithms.data import load_dataset, smooth_targets
from algorithms.pc import PredictiveCodingNetwork, relax, weight_update
from algorithms.spec import Activation, PCSpec
from algorithms.training import accuracy, train_epoch


def cosine_to_backprop(spec: PCSpec, x0: torch.Tensor, target: torch.Tensor) -> float:
    net = PredictiveCodingNetwork(spec)
    with torch.no_grad():
        r = relax(net.params, spec, x0, target)
        up = weight_update(net.params, spec, r.x, r.forward)
    bp = gradients(net.params, spec, x0, target)
    cos = [torch.nn.functional.cosine_similarity(d.double().flatten(), -g.double().flatten(), dim=0).item()
           for d, g in zip(up.weights, bp.weights)]
    return sum(cos) / len(cos)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "digits"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1,
                   help="epochs timed per model (the reported time is the median)")
    p.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_dir, split="thesis")
    base = PCSpec(sizes=(data.n_features, 300, 100, data.n_classes), activation=Activation.RELU)
    depth = base.n_layers - 1
    configs = [
        ("backprop", base, True),
        ("PC, 100 steps, rate 0.1", base.replace(inference_steps=100), False),
        ("PC, 20 steps, rate 0.1", base.replace(inference_steps=20), False),
        (f"PC, {depth} steps, rate 1.0", base.replace(inference_steps=depth, inference_rate=1.0), False),
        ("PC-FPA, 100 steps, rate 0.1", base.replace(inference_steps=100, fixed_predictions=True), False),
        ("PC-FPA, 20 steps, rate 0.1", base.replace(inference_steps=20, fixed_predictions=True), False),
        (f"PC-FPA, {depth} steps, rate 1.0",
         base.replace(inference_steps=depth, inference_rate=1.0, fixed_predictions=True), False),
    ]
    x0 = data.train_x[:64]
    target = smooth_targets(data.train_y[:64], data.n_classes, base.label_smoothing)
    rows = []
    print(f"{data.describe()}; sizes {base.sizes}; batch {base.batch_size}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{platform.machine()}", flush=True)
    for name, spec, is_bp in configs:
        times, acc = [], None
        for _ in range(args.repeats):
            model = BackpropNetwork(spec) if is_bp else PredictiveCodingNetwork(spec)
            t0 = time.perf_counter()
            train_epoch(model, data, 1, progress=False)
            times.append(time.perf_counter() - t0)
            acc = accuracy(model, data.test_x, data.test_y)
        times.sort()
        cos = 1.0 if is_bp else cosine_to_backprop(spec, x0, target)
        rows.append({"model": name, "epoch_seconds": times[len(times) // 2],
                     "test_accuracy_after_1_epoch": acc, "update_cosine_to_backprop": cos,
                     "inference_steps": 0 if is_bp else spec.inference_steps,
                     "inference_rate": None if is_bp else spec.inference_rate,
                     "fixed_predictions": spec.fixed_predictions})
        print(f"  measured {name}: {rows[-1]['epoch_seconds']:.2f} s", file=sys.stderr, flush=True)
    bp_time = rows[0]["epoch_seconds"]
    head = f"{'model':<30}{'s/epoch':>9}{'x backprop':>12}{'test acc':>10}{'cos(update, -grad)':>20}"
    print(head)
    print("-" * len(head))
    for r in rows:
        r["ratio_to_backprop"] = r["epoch_seconds"] / bp_time
        print(f"{r['model']:<30}{r['epoch_seconds']:>9.2f}{r['ratio_to_backprop']:>12.1f}"
              f"{100 * r['test_accuracy_after_1_epoch']:>9.2f}%{r['update_cosine_to_backprop']:>20.6f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": "python -m benchmarks.pc_vs_backprop "
                                         + " ".join(argv if argv is not None else sys.argv[1:]),
                                         "threads": args.threads, "cpus": os.cpu_count(),
                                         "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
