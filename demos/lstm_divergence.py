"""Figs 6.10-6.11: PC gradient divergence on an unrolled LSTM as the sequence grows.

    python -m demos.lstm_divergence --text ../shared/seed/000_ee6d648becb2c126.txt \\
        --out results/lstm_divergence

The LSTM cell of appendix B (hidden size ``--hidden``, linear readout) is unrolled over
sequences of one-hot characters from a plain-text file (any file works offline; without
``--text`` random characters are used). At initialisation, for every sequence length, PC
relaxes with a fixed budget (``--budget`` iterations at rate ``--rate``) and the total squared
difference between its weight updates and autograd's gradients, summed over all LSTM weight
matrices, is recorded (Fig 6.10). The smallest budget, in steps of 5, at which that divergence
falls below ``--threshold`` is Fig 6.11. Both schedules are run: ``block_reverse`` (cell by
cell backwards in time, the thesis code) and ``jacobi`` (all vertices in parallel).
Writes ``divergence.csv``, ``summary.json`` and ``divergence.png``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from algorithms.fidelity import squared_divergence
from algorithms.graph import Loss, Schedule, autograd_gradients, read_out, relax_graph
from algorithms.graph_models import lstm_graph

from ._runs import add_device_argument, device_from

LENGTHS = (1, 2, 5, 10, 20, 30, 50, 70, 100, 150, 200)


def char_batches(text: str | None, length: int, batch: int, seed: int,
                 vocab: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One-hot inputs ``x1..xT`` and next-character targets (``B x T x V``)."""
    g = torch.Generator().manual_seed(seed)
    index = {c: i for i, c in enumerate(vocab)}
    v = len(vocab)
    if text is not None:
        starts = torch.randint(0, len(text) - length - 1, (batch,), generator=g)
        ids = torch.tensor([[index[c] for c in text[s:s + length + 1]] for s in starts.tolist()])
    else:
        ids = torch.randint(0, v, (batch, length + 1), generator=g)
    onehot = torch.nn.functional.one_hot(ids, v).to(torch.float64)
    inputs = {f"x{t + 1}": onehot[:, t] for t in range(length)}
    return inputs, onehot[:, 1:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", type=Path, default=None, help="plain-text corpus")
    p.add_argument("--hidden", type=int, default=65)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--rate", type=float, default=0.05)
    p.add_argument("--threshold", type=float, default=0.005)
    p.add_argument("--max-iterations", type=int, default=600)
    p.add_argument("--schedules", nargs="+", default=["block_reverse", "jacobi"],
                   choices=[s.value for s in Schedule if s is not Schedule.REVERSE_GAUSS_SEIDEL])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/lstm_divergence"))
    add_device_argument(p)
    args = p.parse_args(argv)
    try:
        device = device_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = args.text.read_text(errors="replace") if args.text else None
    vocab = sorted(set(text)) if text else [chr(97 + i) for i in range(26)]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for sched_name in args.schedules:
        schedule = Schedule(sched_name)
        for length in args.lengths:
            t0 = time.perf_counter()
            g = lstm_graph(length, len(vocab), args.hidden, len(vocab), seed=args.seed,
                           dtype=torch.float64, device=device)
            inputs, target = char_batches(text, length, args.batch, args.seed, vocab)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            target = target.to(device)
            inputs["h0"] = torch.zeros(args.batch, args.hidden, dtype=torch.float64, device=device)
            inputs["c0"] = torch.zeros(args.batch, args.hidden, dtype=torch.float64, device=device)
            gp, _ = autograd_gradients(g, inputs, target, Loss.MSE_SUM)

            def divergence(updates: dict[str, torch.Tensor]) -> float:
                return sum(squared_divergence(updates[k], gp[k]) for k in gp)

            if schedule is Schedule.BLOCK_REVERSE:
                # the budget is per block, so each budget is its own relaxation: bisect
                def div_at(k: int) -> float:
                    return divergence(relax_graph(g, inputs, target, rate=args.rate, steps=k,
                                                  schedule=schedule).updates)

                at_budget = div_at(args.budget)
                to_threshold = None
                hi = args.max_iterations - args.max_iterations % 5
                if div_at(hi) < args.threshold:
                    lo = 0  # invariant: div(lo) >= threshold (or lo = 0), div(hi) < threshold
                    while hi - lo > 5:
                        mid = (lo + hi) // 10 * 5
                        if div_at(mid) < args.threshold:
                            hi = mid
                        else:
                            lo = mid
                    to_threshold = hi
            else:
                curve: dict[int, float] = {}

                def monitor(k: int, state: dict[str, torch.Tensor]) -> None:
                    if k % 5 == 0:
                        curve[k] = divergence(read_out(g, values_of[0], state)[0])

                values_of = [g.forward(inputs)]
                relax_graph(g, inputs, target, rate=args.rate, steps=args.max_iterations,
                            schedule=schedule, on_step=monitor)
                at_budget = curve[args.budget - args.budget % 5]
                to_threshold = next((k for k, d in curve.items() if d < args.threshold), None)
            rows.append({"schedule": sched_name, "length": length,
                         "divergence_at_budget": at_budget,
                         "iterations_to_threshold": to_threshold,
                         "seconds": time.perf_counter() - t0})
            print(f"{sched_name:>14} T={length:>4}: divergence {at_budget:.3e}, "
                  f"iterations to {args.threshold:g}: {to_threshold}  "
                  f"({rows[-1]['seconds']:.1f} s)", flush=True)
    lines = ["schedule,length,divergence_at_budget,iterations_to_threshold,seconds"]
    lines += [f"{r['schedule']},{r['length']},{r['divergence_at_budget']:.6e},"
              f"{'' if r['iterations_to_threshold'] is None else r['iterations_to_threshold']},"
              f"{r['seconds']:.2f}" for r in rows]
    (args.out / "divergence.csv").write_text("\n".join(lines) + "\n")
    meta = {"command": "python -m demos.lstm_divergence "
                       + shlex.join(argv if argv is not None else sys.argv[1:]),
            "hidden": args.hidden, "batch": args.batch, "vocab": len(vocab),
            "budget": args.budget, "rate": args.rate, "threshold": args.threshold,
            "corpus": str(args.text) if args.text else "random characters", "rows": rows}
    (args.out / "summary.json").write_text(json.dumps(meta, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for sched_name in args.schedules:
        rs = [r for r in rows if r["schedule"] == sched_name]
        a.plot([r["length"] for r in rs], [r["divergence_at_budget"] for r in rs], "o-",
               label=sched_name)
        pts = [(r["length"], r["iterations_to_threshold"]) for r in rs
               if r["iterations_to_threshold"] is not None]
        b.plot([x for x, _ in pts], [y for _, y in pts], "o-", label=sched_name)
    a.set_yscale("log")
    a.set_xlabel("sequence length")
    a.set_ylabel("sum of squared (PC - autograd) over LSTM weights")
    a.set_title(f"divergence after {args.budget} iterations at rate {args.rate}")
    b.set_xlabel("sequence length")
    b.set_ylabel(f"iterations until divergence < {args.threshold:g}")
    b.set_title(f"iterations to threshold (missing: > {args.max_iterations})")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "divergence.png", dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}/divergence.csv, summary.json, divergence.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
