"""Figures for the demos (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from algorithms.variants import Variant

from ._runs import RunResult

COLORS = {
    Variant.BACKPROP: "black",
    Variant.PC: "tab:blue",
    Variant.LEARNED_BACKWARD: "tab:orange",
    Variant.FEEDBACK_ALIGNMENT: "tab:gray",
    Variant.NO_DERIVATIVE: "tab:green",
    Variant.LEARNED_ERROR: "tab:purple",
    Variant.FULLY_RELAXED: "tab:red",
}


def plot_curves(results: list[RunResult], path: Path, title: str = "",
                probe_key: str | None = None) -> None:
    """Test accuracy (left) and end-of-relaxation energy (right) per epoch, mean +- std over
    seeds, one line per variant; a cross marks where a run diverged. With ``probe_key`` the
    right panel shows that probe metric (e.g. the mean gradient angle) instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_e) = plt.subplots(1, 2, figsize=(12, 4.6))
    cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3)
    for variant in dict.fromkeys(r.variant for r in results):
        runs = [r for r in results if r.variant is variant]
        color = COLORS.get(variant) or ("black" if variant.value == "backprop" else next(cycle))
        n = max((len(r.records) for r in runs), default=0)
        label = runs[0].label
        diverged = [r for r in runs if r.status == "diverged"]
        if diverged:
            label += f" (diverged: {len(diverged)}/{len(runs)})"
        if n:
            epochs = np.arange(1, n + 1)
            for ax, key in ((ax_acc, "test_accuracy"), (ax_e, probe_key or "energy")):
                rows = np.full((len(runs), n), np.nan)
                for i, r in enumerate(runs):
                    if key == probe_key:
                        vals = [p.get(key, np.nan) for p in r.probes]
                    else:
                        vals = [getattr(x, key) for x in r.records]
                    rows[i, :len(vals)] = vals[:n]
                if np.isnan(rows).all():
                    continue
                scale = 100.0 if key == "test_accuracy" else 1.0
                mean = np.nanmean(rows, axis=0) * scale
                std = np.nanstd(rows, axis=0) * scale
                ax.plot(epochs, mean, color=color, label=label if ax is ax_acc else None,
                        linestyle="--" if variant.value == "backprop" else "-", lw=1.6)
                if len(runs) > 1:
                    ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
        else:
            ax_acc.plot([], [], color=color, label=label)
        for r in diverged:
            at = len(r.records)
            y = 100 * r.records[-1].test_accuracy if r.records else 10.0
            ax_acc.plot([at + 0.5 if at else 1], [y], marker="x", color=color, ms=10, mew=2)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_acc, ax_e):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title(f"test accuracy{' - ' + title if title else ''}")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=8, loc="lower right")
    ax_e.set_xlabel("epoch")
    if probe_key is None:
        ax_e.set_ylabel("energy per sample (loss for backprop)")
        ax_e.set_yscale("log")
        ax_e.set_title("mean energy at the end of relaxation")
    else:
        ax_e.set_ylabel(probe_key.replace("_", " ") + (" (degrees)" if "angle" in probe_key else ""))
        ax_e.set_title(f"{probe_key.replace('_', ' ')} vs backprop, fixed probe batches")
    ax_e.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
