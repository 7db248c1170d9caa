"""Thesis Figs 3.17, 3.18, 3.20 and 3.22 and a results table from relaxation runs.

    python -m demos.relaxations_report --root results/relaxations

Reads ``<root>/<dataset>-<activation>[-fixed-predictions]/curves.csv`` (as written by
``python -m demos.relaxations``) and, where it exists, the same folder name with ``-psi``
appended: a rerun of the variants with learned error connections (psi on the prediction, the
authors' wiring, issue 13), whose variants replace those of the first folder. Writes into
``<root>``:

* ``fig3_17_learned_backward.png``, ``fig3_18_no_derivative.png``,
  ``fig3_20_learned_error.png``, ``fig3_22_fully_relaxed.png``, ``fig_feedback_alignment.png``:
  each relaxation against standard PC and backprop, 4 panels (MNIST tanh, MNIST relu,
  Fashion tanh, Fashion relu) as in the thesis, one figure per inference mode;
* ``report.md``: final test accuracy of every variant, the difference to standard PC and
  to backprop, and which runs diverged.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from algorithms.variants import Variant

from ._plots import COLORS

PANELS = [("mnist", "tanh"), ("mnist", "relu"), ("fashion-mnist", "tanh"),
          ("fashion-mnist", "relu")]
FIGURES = [
    ("fig3_17_learned_backward", Variant.LEARNED_BACKWARD, "Fig 3.17: learned backward weights"),
    ("fig3_18_no_derivative", Variant.NO_DERIVATIVE, "Fig 3.18: no nonlinear derivative"),
    ("fig3_20_learned_error", Variant.LEARNED_ERROR, "Fig 3.20: learned error connections"),
    ("fig3_22_fully_relaxed", Variant.FULLY_RELAXED, "Fig 3.22: fully relaxed"),
    ("fig_feedback_alignment", Variant.FEEDBACK_ALIGNMENT, "feedback alignment (control)"),
]
MODES = {"": "standard inference (thesis equations)",
         "-fixed-predictions": "fixed-prediction assumption (reference code)"}


def load_runs(folder: Path) -> tuple[dict[str, dict[int, list[tuple[int, float]]]], dict]:
    """``curves[variant][seed] = [(epoch, test_accuracy), ...]`` and the summary.json."""
    curves: dict[str, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    with open(folder / "curves.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            curves[row["variant"]][int(row["seed"])].append(
                (int(row["epoch"]), float(row["test_accuracy"])))
    summary = json.loads((folder / "summary.json").read_text())
    return curves, summary


def load_panel(root: Path, dataset: str, act: str, suffix: str
               ) -> tuple[dict[str, dict[int, list[tuple[int, float]]]], dict] | None:
    """The runs of one panel: ``<dataset>-<act><suffix>``, with the variants of the
    ``...-psi`` rerun folder (if any) replacing the first folder's; ``None`` if neither ran."""
    folder = root / f"{dataset}-{act}{suffix}"
    overlay = root / f"{dataset}-{act}{suffix}-psi"
    have = [f for f in (folder, overlay) if (f / "curves.csv").exists()]
    if not have:
        return None
    curves, summary = load_runs(have[0])
    summary = {**summary, "variants": dict(summary["variants"])}
    if len(have) == 2:
        over_curves, over_summary = load_runs(overlay)
        for name, info in over_summary["variants"].items():
            curves[name] = over_curves.get(name, {})
            summary["variants"][name] = {**info, "rerun": overlay.name}
    return curves, summary


def _mean_curve(runs: dict[int, list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = max(len(v) for v in runs.values())
    arr = np.full((len(runs), n), np.nan)
    for i, v in enumerate(runs.values()):
        arr[i, :len(v)] = [a for _, a in v]
    return np.arange(1, n + 1), np.nanmean(arr, 0) * 100, np.nanstd(arr, 0) * 100


def make_figures(root: Path, suffix: str, out: Path | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []
    for stem, variant, title in FIGURES:
        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        any_data = False
        for ax, (dataset, act) in zip(axes.flat, PANELS):
            ax.set_title(f"{dataset}, {act}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            panel = load_panel(root, dataset, act, suffix)
            if panel is None:
                ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
                continue
            any_data = True
            curves, summary = panel
            lows = []
            for v in (Variant.BACKPROP, Variant.PC, variant):
                info = summary["variants"].get(v.value)
                label = info["label"] if info is not None else v.label
                if info is not None and any(r["status"] == "diverged" for r in info["runs"]):
                    first = next(r for r in info["runs"] if r["status"] == "diverged")
                    label += f" (diverged after {first['epochs']} epochs)"
                if not curves.get(v.value):
                    ax.plot([], [], color=COLORS[v], label=label)
                    continue
                x, m, s = _mean_curve(curves[v.value])
                ax.plot(x, m, color=COLORS[v], label=label,
                        ls="--" if v is Variant.BACKPROP else "-")
                ax.fill_between(x, m - s, m + s, color=COLORS[v], alpha=0.2)
                lows.append(np.nanmin(m))
            if lows and min(lows) > 60:
                ax.set_ylim(max(60, min(lows) - 2), None)
            ax.legend(fontsize=8, loc="lower right")
        if not any_data:
            plt.close(fig)
            continue
        fig.suptitle(f"{title} - {MODES[suffix]}")
        fig.tight_layout()
        path = (out or root) / f"{stem}{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def report(root: Path) -> str:
    lines = ["| mode | dataset | act | variant | epochs | final test acc (%) | vs PC (pp) | "
             "vs backprop (pp) | status |", "|---|---|---|---|---|---|---|---|---|"]
    for suffix, mode in MODES.items():
        for dataset, act in PANELS:
            panel = load_panel(root, dataset, act, suffix)
            if panel is None:
                continue
            _, summary = panel
            vs = summary["variants"]
            ref_pc = vs.get("pc", {}).get("final_test_accuracy_mean")
            ref_bp = vs.get("backprop", {}).get("final_test_accuracy_mean")
            for name, info in vs.items():
                acc = info["final_test_accuracy_mean"]
                status = ",".join(sorted({r["status"] for r in info["runs"]}))
                if "rerun" in info:
                    status += f" (`{info['rerun']}/`)"
                epochs = max(info["epochs_completed"]) if info["epochs_completed"] else 0
                if acc is None:
                    lines.append(f"| {mode.split(' (')[0]} | {dataset} | {act} | {info['label']} | "
                                 f"{epochs} | - | - | - | {status} |")
                    continue
                d_pc = "" if ref_pc is None or name == "pc" else f"{100 * (acc - ref_pc):+.2f}"
                d_bp = "" if ref_bp is None or name == "backprop" else f"{100 * (acc - ref_bp):+.2f}"
                lines.append(f"| {mode.split(' (')[0]} | {dataset} | {act} | {info['label']} | "
                             f"{epochs} | {100 * acc:.2f} | {d_pc} | {d_bp} | {status} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("results/relaxations"),
                   help="folder of the runs' curves.csv folders (read only)")
    p.add_argument("--out", type=Path, default=Path("runs/relaxations_report"),
                   help="where the figures and report.md go (the committed ones: "
                        "--out results/relaxations)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in MODES:
        written += make_figures(args.root, suffix, args.out)
    table = report(args.root)
    (args.out / "report.md").write_text(
        "# Relaxed predictive coding: final test accuracy\n\nMade by "
        f"`python -m demos.relaxations_report --root {args.root} --out {args.out}` from the "
        f"curves.csv files under {args.root}.\n\n" + table)
    print(table)
    for w in written:
        print(f"wrote {w}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
