"""Figs 6.5 (right), 6.9, 6.12 offline: an LSTM character model trained by PC vs backprop.

    python -m demos.lstm_chars --text ../shared/seed/000_ee6d648becb2c126.txt \\
        --out results/lstm_chars

Next-character prediction on any plain-text file (the thesis used Shakespeare; the thesis
text itself works offline): one-hot characters, sequences of ``--length``, the appendix-B
LSTM cell (hidden ``--hidden``, linear readout), MSE-sum loss summed over time, SGD. PC runs
the graph engine under the fixed-prediction assumption with the per-timestep reverse schedule
(``--steps`` iterations per time step at ``--rate``). Both models start from the same weights
and see the same sequences. Per epoch: training loss, per-character test accuracy on held-out
sequences (the last 10% of the text), and PC's angle to the BPTT gradient on a probe batch.
Writes ``curves.csv``, ``summary.json``, ``curves.png``; reruns resume.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from algorithms.graph import Algorithm, GraphModel, Loss, Schedule
from algorithms.graph_models import lstm_graph

from ._graph_runs import plot_pair, train_pair, write_records
from ._runs import add_device_argument, atomic_write_text, device_from


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", type=Path, required=True, help="plain-text corpus")
    p.add_argument("--max-chars", type=int, default=200_000, help="use the first N characters")
    p.add_argument("--length", type=int, default=20)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-sequences", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=50, help="PC iterations per time step")
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/lstm_chars"))
    add_device_argument(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        device = device_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        text = args.text.read_text(errors="replace")[:args.max_chars]
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) for c in text])
    split = int(0.9 * len(ids))
    g = torch.Generator().manual_seed(args.seed)
    T = args.length
    train_starts = torch.randint(0, split - T - 1, (args.train_sequences,), generator=g)
    test_starts = torch.randint(split, len(ids) - T - 1, (512,), generator=g)
    V = len(vocab)

    def sequences(starts: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        window = torch.stack([ids[s:s + T + 1] for s in starts.tolist()])
        onehot = torch.nn.functional.one_hot(window, V).to(torch.float64)
        inputs = {f"x{t + 1}": onehot[:, t] for t in range(T)}
        inputs["h0"] = torch.zeros(len(starts), args.hidden, dtype=torch.float64)
        inputs["c0"] = torch.zeros(len(starts), args.hidden, dtype=torch.float64)
        return inputs, onehot[:, 1:]

    models = {name: GraphModel(lstm_graph(T, V, args.hidden, V, seed=args.seed,
                                          dtype=torch.float64, device=device),
                               alg, loss=Loss.MSE_SUM, learning_rate=args.learning_rate,
                               rate=args.rate, steps=args.steps, schedule=Schedule.BLOCK_REVERSE,
                               update_clamp=50.0)
              for name, alg in (("pc", Algorithm.PC), ("backprop", None))}
    test_inputs, test_targets = sequences(test_starts)

    def evaluate(model: GraphModel) -> dict[str, float]:
        pred = model.predict(test_inputs).argmax(-1).cpu()
        return {"test_char_accuracy": float((pred == test_targets.argmax(-1)).double().mean())}

    records = train_pair(models, lambda idx: sequences(train_starts[idx]), args.train_sequences,
                         epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                         out=args.out, config=vars(args) | {"out": str(args.out),
                                                            "text": str(args.text)},
                         evaluate=evaluate, probe=sequences(train_starts[:args.batch_size]))
    if records is None:
        return 2
    write_records(args.out / "curves.csv", records)
    summary = {"command": "python -m demos.lstm_chars "
                          + shlex.join(argv if argv is not None else sys.argv[1:]),
               "corpus": f"{args.text} (first {len(text)} characters, {V} symbols)",
               "final": {k: rs[-1] for k, rs in records.items()}}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plot_pair(records, args.out / "curves.png",
              f"LSTM next-character model ({T} steps, hidden {args.hidden}): PC vs backprop",
              "test_char_accuracy", "test per-character accuracy")
    print(f"wrote {args.out}/curves.csv, summary.json, curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
