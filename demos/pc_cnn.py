"""Figs 6.3-6.4: a CNN trained by predictive coding vs backprop, and PC's gradient divergence.

    python -m demos.pc_cnn --dataset mnist --train-subset 5000 --epochs 5 \\
        --out results/pc_cnn/mnist

The thesis's PC-CNN (spec ch6 3.8): conv 6@5x5 (relu) -> 2x2 max-pool -> conv 16@5x5 (relu)
-> 200 -> 150 -> 10 (linear), no biases, init N(0, 0.05^2), SGD at ``--learning-rate`` on
batch-summed updates clamped to +-50, MSE-sum loss (or ``--loss cross_entropy``). PC runs the
graph engine (fixed-prediction assumption, Jacobi, ``--steps`` iterations at ``--rate``).
CIFAR-10 and SVHN (3x32x32) are used when their files are present; MNIST and Fashion-MNIST
are zero-padded to 32x32 (one channel). Both models start from the same weights and see the
same batches. Every ``--probe-every`` batches the per-layer squared divergence, relative error
and angle between PC's update and the autograd gradient are measured on a fixed batch
(Fig 6.3). Writes ``curves.csv``, ``divergence.csv``, ``summary.json``, ``curves.png``;
reruns resume from ``checkpoints/`` at epoch boundaries.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from algorithms.data import Dataset, dataset_names, load_dataset, pad_images
from algorithms.fidelity import compare
from algorithms.graph import Algorithm, GraphModel, Loss, autograd_gradients
from algorithms.graph_models import cnn_graph
from algorithms.training import epoch_order

from ._graph_runs import resumable
from ._runs import add_device_argument, atomic_write_bytes, atomic_write_text, device_from

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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    add_device_argument(p)
    p.add_argument("--out", type=Path, default=Path("runs/pc_cnn/mnist"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        device = device_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data: Dataset = load_dataset(args.dataset, args.data_dir)
    if data.image_shape != (32, 32):
        data = pad_images(data, 32)
    n_train = len(data.train_y) if args.train_subset is None else min(args.train_subset,
                                                                       len(data.train_y))
    loss = Loss(args.loss)
    shape = (data.channels, 32, 32)
    models = {name: GraphModel(cnn_graph(in_channels=data.channels, n_classes=data.n_classes,
                                         seed=args.seed, device=device),
                               alg, loss=loss, learning_rate=args.learning_rate, rate=args.rate,
                               steps=args.steps, update_clamp=50.0)
              for name, alg in (("pc", Algorithm.PC), ("backprop", None))}

    def inputs(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": x.reshape(len(x), *shape)}

    def targets(y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(y, data.n_classes).float()

    def accuracy(model: GraphModel, x: torch.Tensor, y: torch.Tensor) -> float:
        correct = sum(int((model.predict(inputs(x[i:i + 1000])).argmax(1).cpu()
                           == y[i:i + 1000]).sum())
                      for i in range(0, len(y), 1000))
        return correct / len(y)

    config = vars(args) | {"out": str(args.out), "device": str(device)}
    ckpt = args.out / "checkpoints"
    curves: dict[str, list[dict]] = {k: [] for k in models}
    divergence: list[dict] = []
    state_path = ckpt / "state.pt"
    if state_path.exists():
        state = torch.load(state_path, weights_only=True, map_location="cpu")
        if resumable(state["config"]) != resumable(config):
            print(f"error: {state_path} was made with other options; use another --out",
                  file=sys.stderr)
            return 2
        for name, model in models.items():
            for k, v in state["params"][name].items():
                model.graph.params[k].copy_(v)
        curves, divergence = state["curves"], state["divergence"]
    probe_x, probe_t = inputs(data.train_x[:args.batch_size]), targets(data.train_y[:args.batch_size])
    start = len(curves["pc"]) + 1
    for epoch in range(start, args.epochs + 1):
        order = epoch_order(args.seed, epoch, n_train)
        t0 = {k: 0.0 for k in models}
        totals = {k: 0.0 for k in models}
        for b, i in enumerate(range(0, n_train, args.batch_size)):
            idx = order[i:i + args.batch_size]
            x, t = inputs(data.train_x[idx]), targets(data.train_y[idx])
            if b % args.probe_every == 0:
                grads, _ = autograd_gradients(models["pc"].graph, probe_x, probe_t, loss)
                fid = compare(models["pc"].updates(probe_x, probe_t), grads)
                divergence.append({"epoch": epoch, "batch": b, **{
                    f"{LAYERS[k]}_{m}": getattr(f, m) for k, f in fid.items()
                    for m in ("squared_divergence", "relative_error", "angle_degrees")}})
            for name, model in models.items():
                s = time.perf_counter()
                totals[name] += model.train_batch(x, t)
                t0[name] += time.perf_counter() - s
            if b % 10 == 0:
                print(f"epoch {epoch} batch {b}/{(n_train + args.batch_size - 1) // args.batch_size}"
                      f"  loss pc {totals['pc'] / (i + len(idx)):.4f} "
                      f"bp {totals['backprop'] / (i + len(idx)):.4f}", flush=True)
        for name, model in models.items():
            curves[name].append({"model": name, "epoch": epoch,
                                 "train_accuracy": accuracy(model, data.train_x[:n_train],
                                                            data.train_y[:n_train]),
                                 "test_accuracy": accuracy(model, data.test_x, data.test_y),
                                 "loss": totals[name] / n_train, "wall_seconds": t0[name]})
        buf = io.BytesIO()
        torch.save({"config": config, "curves": curves, "divergence": divergence,
                    "params": {n: {k: v.clone() for k, v in m.graph.params.items()}
                               for n, m in models.items()}}, buf)
        atomic_write_bytes(state_path, buf.getvalue())
        print(" | ".join(f"{n}: test {100 * c[-1]['test_accuracy']:.2f}%" for n, c in curves.items()),
              flush=True)
    cols = ["model", "epoch", "train_accuracy", "test_accuracy", "loss", "wall_seconds"]
    atomic_write_text(args.out / "curves.csv", "\n".join(
        [",".join(cols)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                                     for c in cols) for rs in curves.values() for r in rs]) + "\n")
    if divergence:
        dcols = list(divergence[0])
        atomic_write_text(args.out / "divergence.csv", "\n".join(
            [",".join(dcols)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                                          for c in dcols) for r in divergence]) + "\n")
    summary = {"command": "python -m demos.pc_cnn " + shlex.join(argv if argv is not None
                                                                   else sys.argv[1:]),
               "dataset": data.describe(), "train_images_used": n_train,
               "final": {k: v[-1] for k, v in curves.items() if v}}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plot(curves, divergence, args.out / "curves.png", data.name)
    print(f"wrote {args.out}/curves.csv, divergence.csv, summary.json, curves.png")
    return 0


def plot(curves: dict, divergence: list[dict], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for model, rs in curves.items():
        style = dict(ls="--", color="black") if model == "backprop" else dict(color="tab:blue")
        ep = [r["epoch"] for r in rs]
        axes[0].plot(ep, [100 * r["test_accuracy"] for r in rs], marker="o", label=model, **style)
        axes[1].plot(ep, [r["loss"] for r in rs], marker="o", label=model, **style)
    x = range(len(divergence))
    for layer in LAYERS.values():
        key = f"{layer}_squared_divergence"
        if divergence and key in divergence[0]:
            axes[2].plot(x, [max(r[key], 1e-30) for r in divergence], label=layer)
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
