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
import json
import shlex
import sys
from pathlib import Path

import torch

from algorithms.data import load_dataset
from algorithms.graph import Algorithm, GraphModel, Loss, Schedule
from algorithms.graph_models import rnn_graph

from ._graph_runs import plot_pair, train_pair, write_records
from ._runs import add_device_argument, atomic_write_text, device_from


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
    p.add_argument("--out", type=Path, default=Path("runs/rnn_sequences"))
    add_device_argument(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        device = device_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = load_dataset("digits")
    dtype = torch.float64
    train_x, test_x = data.train_x.to(dtype), data.test_x.to(dtype)
    onehot = torch.nn.functional.one_hot(data.train_y, 10).to(dtype)
    models = {
        "pc": GraphModel(rnn_graph(8, 8, args.hidden, 10, seed=args.seed, dtype=dtype,
                                   device=device),
                         Algorithm.PC, loss=Loss.MSE_SUM, learning_rate=args.learning_rate,
                         rate=args.rate, steps=args.steps, schedule=Schedule.BLOCK_REVERSE),
        "backprop": GraphModel(rnn_graph(8, 8, args.hidden, 10, seed=args.seed, dtype=dtype,
                                         device=device),
                               None, loss=Loss.MSE_SUM, learning_rate=args.learning_rate),
    }
    probe = (as_sequence(train_x[:64], args.hidden), onehot[:64])

    def evaluate(model: GraphModel) -> dict[str, float]:
        def acc(x: torch.Tensor, y: torch.Tensor) -> float:
            pred = model.predict(as_sequence(x, args.hidden)).argmax(1).cpu()
            return float((pred == y).double().mean())

        return {"train_accuracy": acc(train_x, data.train_y),
                "test_accuracy": acc(test_x, data.test_y)}

    records = train_pair(models, lambda idx: (as_sequence(train_x[idx], args.hidden), onehot[idx]),
                         len(train_x), epochs=args.epochs, batch_size=args.batch_size,
                         seed=args.seed, out=args.out, config=vars(args) | {"out": str(args.out)},
                         evaluate=evaluate, probe=probe)
    if records is None:
        return 2
    write_records(args.out / "curves.csv", records)
    summary = {"command": "python -m demos.rnn_sequences "
                          + shlex.join(argv if argv is not None else sys.argv[1:]),
               "task": "digits 8x8 read row by row (8 steps x 8 pixels), 10 classes",
               "final": {k: rs[-1] for k, rs in records.items()}}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plot_pair(records, args.out / "curves.png",
              "RNN on digits read row by row: predictive coding vs backprop through time",
              "test_accuracy", "test accuracy")
    print(f"wrote {args.out}/curves.csv, summary.json, curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
