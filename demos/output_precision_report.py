"""Standard PC with recomputed predictions at several output precisions, against backprop.

    python -m demos.output_precision_report --root results/relaxations/output-precision

Reads ``<root>/<name>-pi<value>/curves.csv`` (each made by ``python -m demos.relaxations
--variants backprop pc --predictions recomputed --output-precision <value> ...``) and writes
``<root>/output_precision.png`` (test accuracy per epoch, mean +- std over seeds) and
``<root>/output_precision.md`` (final accuracy per precision, mean +- std, and the gap to
backprop).
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np


def load(folder: Path) -> dict[str, np.ndarray]:
    """``{variant: array (seeds, epochs)}`` of test accuracy (%) from one run folder."""
    rows: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(folder / "curves.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["variant"]][int(r["seed"])].append(100 * float(r["test_accuracy"]))
    out = {}
    for variant, seeds in rows.items():
        n = min(len(v) for v in seeds.values())
        out[variant] = np.array([v[:n] for _, v in sorted(seeds.items())])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("results/relaxations/output-precision"),
                   help="folder of the <name>-pi<value>/ runs (read only)")
    p.add_argument("--out", type=Path, default=Path("runs/output_precision_report"),
                   help="where output_precision.png/.md go (the committed ones: --out ROOT)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for folder in sorted(args.root.glob("*-pi*")):
        m = re.search(r"-pi([0-9.eE+-]+)$", folder.name)
        if m and (folder / "curves.csv").exists():
            runs[float(m.group(1))] = load(folder)
    if not runs:
        print(f"error: no <name>-pi<value>/curves.csv under {args.root}")
        return 1
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    bp = next(iter(runs.values()))["backprop"]
    lines = ["| output precision π | seeds | PC final test acc (%) | backprop (%) | PC − backprop (pp) |",
             "|---|---|---|---|---|"]
    x = np.arange(1, bp.shape[1] + 1)
    ax.plot(x, bp.mean(0), "k--", label=f"backprop ({bp.shape[0]} seeds)")
    for pi, cmap in zip(sorted(runs, reverse=True), plt.cm.viridis(np.linspace(0, 0.8, len(runs)))):
        pc, b = runs[pi]["pc"], runs[pi]["backprop"]
        xs = np.arange(1, pc.shape[1] + 1)
        ax.plot(xs, pc.mean(0), color=cmap, label=f"PC, π = {pi:g}")
        ax.fill_between(xs, pc.mean(0) - pc.std(0), pc.mean(0) + pc.std(0), color=cmap, alpha=0.2)
        f, fb = pc[:, -1], b[:, -1]
        lines.append(f"| {pi:g} | {len(f)} | {f.mean():.2f} ± {f.std():.2f} | "
                     f"{fb.mean():.2f} ± {fb.std():.2f} | {f.mean() - fb.mean():+.2f} |")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("PC with recomputed predictions: output precision π")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "output_precision.png", dpi=110)
    table = "\n".join(lines) + "\n"
    (args.out / "output_precision.md").write_text(
        f"Made by `python -m demos.output_precision_report --root {args.root} --out {args.out}`"
        "; mean ± std over "
        "seeds (population std).\n\n" + table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
