"""Figs 6.5-6.6 offline: an RNN trained by predictive coding vs backprop through time.

    python -m demos.rnn_sequences --out results/rnn_sequences

The thesis's name-origin task needs a download, so this uses a sequence task that is always
available: scikit-learn's 8x8 digits read row by row (8 steps of 8 pixels), classified from
the last hidden state. Elman RNN (tanh, hidden ``--hidden``, linear readout), MSE-sum loss on
one-hot labels, SGD. PC runs under the fixed-prediction assumption with the per-timestep
reverse (block) schedule, ``--steps`` iterations per step at ``--rate``. Both models start
from the same weights and see the same batches. Per epoch: train/test accuracy, loss, and the
angle between PC's update and the BPTT gradient on a fixed probe batch. Writes
``curves.csv``, ``summary.json``, ``curves.png``; rerunning resumes from
``checkpoints/``.
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

from algorithms.data import load_dataset
from algorithms.fidelity import gradient_angle
from algorithms.graph import Algorithm, GraphModel, Loss, Schedule, autograd_gradients
from algorithms.graph_models import rnn_graph
from algorithms.training import epoch_order

from ._runs import atomic_write_bytes, atomic_write_text


def as_sequence(x: torch.Tensor, hidden: int) -> dict[str, torch.Tensor]:
    """``B x 64`` digits -> inputs ``x1..x8`` (rows) and a zero ``h0``."""
    rows = x.reshape(len(x), 8, 8)
    out = {f"x{t + 1}": rows[:, t] for t in range(8)}
    out["h0"] = torch.zeros(len(x), hidden, dtype=x.dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--steps", type=int, default=100, help="PC iterations per time step")
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/rnn_sequences"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("digits")
    dtype = torch.float64
    train_x, test_x = data.train_x.to(dtype), data.test_x.to(dtype)
    onehot = torch.nn.functional.one_hot(data.train_y, 10).to(dtype)
    models = {
        "pc": GraphModel(rnn_graph(8, 8, args.hidden, 10, seed=args.seed, dtype=dtype),
                         Algorithm.PC, loss=Loss.MSE_SUM, learning_rate=args.learning_rate,
                         rate=args.rate, steps=args.steps, schedule=Schedule.BLOCK_REVERSE),
        "backprop": GraphModel(rnn_graph(8, 8, args.hidden, 10, seed=args.seed, dtype=dtype),
                               None, loss=Loss.MSE_SUM, learning_rate=args.learning_rate),
    }
    ckpt_dir = args.out / "checkpoints"
    records: dict[str, list[dict]] = {k: [] for k in models}
    for name, model in models.items():
        path = ckpt_dir / f"{name}.pt"
        if path.exists():
            state = torch.load(path, weights_only=False)
            if state["args"] != vars(args) | {"out": str(args.out)}:
                print(f"error: {path} was made with other options; use another --out",
                      file=sys.stderr)
                return 2
            for k, v in state["params"].items():
                model.graph.params[k].copy_(v)
            records[name] = state["records"]
    probe_x, probe_t = as_sequence(train_x[:64], args.hidden), onehot[:64]

    def accuracy(model: GraphModel, x: torch.Tensor, y: torch.Tensor) -> float:
        return float((model.predict(as_sequence(x, args.hidden)).argmax(1) == y).double().mean())

    for name, model in models.items():
        for epoch in range(len(records[name]) + 1, args.epochs + 1):
            t0 = time.perf_counter()
            order = epoch_order(args.seed, epoch, len(train_x))
            total = 0.0
            for i in range(0, len(order), args.batch_size):
                idx = order[i:i + args.batch_size]
                total += model.train_batch(as_sequence(train_x[idx], args.hidden), onehot[idx])
            wall = time.perf_counter() - t0
            grads, _ = autograd_gradients(model.graph, probe_x, probe_t, Loss.MSE_SUM)
            ups = model.updates(probe_x, probe_t)
            angle = sum(gradient_angle(ups[k], grads[k]) for k in grads) / len(grads)
            records[name].append({"model": name, "epoch": epoch,
                                  "train_accuracy": accuracy(model, train_x, data.train_y),
                                  "test_accuracy": accuracy(model, test_x, data.test_y),
                                  "loss": total / len(order), "mean_angle_degrees": angle,
                                  "wall_seconds": wall})
            buf = io.BytesIO()
            torch.save({"args": vars(args) | {"out": str(args.out)},
                        "params": {k: v.clone() for k, v in model.graph.params.items()},
                        "records": records[name]}, buf)
            atomic_write_bytes(ckpt_dir / f"{name}.pt", buf.getvalue())
            r = records[name][-1]
            print(f"{name:>8} epoch {epoch:>3}: test {100 * r['test_accuracy']:.2f}%  "
                  f"loss {r['loss']:.4f}  angle {angle:.2e} deg  ({wall:.1f} s)", flush=True)
    cols = ["model", "epoch", "train_accuracy", "test_accuracy", "loss", "mean_angle_degrees",
            "wall_seconds"]
    lines = [",".join(cols)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                                         for c in cols) for rs in records.values() for r in rs]
    atomic_write_text(args.out / "curves.csv", "\n".join(lines) + "\n")
    summary = {"command": "python -m demos.rnn_sequences "
                          + shlex.join(argv if argv is not None else sys.argv[1:]),
               "task": "digits 8x8 read row by row (8 steps x 8 pixels), 10 classes",
               "final": {k: rs[-1] for k, rs in records.items()}}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, rs in records.items():
        ep = [r["epoch"] for r in rs]
        style = dict(ls="--", color="black") if name == "backprop" else dict(color="tab:blue")
        axes[0].plot(ep, [100 * r["test_accuracy"] for r in rs], label=name, **style)
        axes[1].plot(ep, [r["loss"] for r in rs], label=name, **style)
        if name == "pc":
            axes[2].plot(ep, [max(r["mean_angle_degrees"], 1e-12) for r in rs], **style)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].set_ylabel("training loss per sample")
    axes[2].set_ylabel("angle(PC update, BPTT gradient), degrees")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("RNN on digits read row by row: predictive coding vs backprop through time")
    fig.tight_layout()
    fig.savefig(args.out / "curves.png", dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}/curves.csv, summary.json, curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
