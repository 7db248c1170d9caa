"""Side-by-side training of graph models (PC or AR vs their backprop twin) with checkpoints.

Used by the RNN and LSTM demos: every model sees the same batches in the same order, and
after every epoch the per-model metrics, the mean angle between each model's update and the
autograd gradient on a fixed probe batch, and a checkpoint (``<out>/checkpoints/<name>.pt``)
are written. A rerun with the same options resumes at the next epoch.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from algorithms.fidelity import gradient_angle
from algorithms.graph import GraphModel, autograd_gradients
from algorithms.training import epoch_order

from ._runs import atomic_write_bytes, atomic_write_text

Batch = tuple[Mapping[str, Tensor], Tensor]


def resumable(config: dict[str, Any]) -> dict[str, Any]:
    """The options that must match to resume a checkpoint: all but the epoch count (which may
    grow) and the thread count."""
    return {k: v for k, v in config.items() if k not in ("epochs", "threads", "device")}


def train_pair(
    models: Mapping[str, GraphModel],
    batch: Callable[[Tensor], Batch],
    n_train: int,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    out: Path,
    config: dict[str, Any],
    evaluate: Callable[[GraphModel], dict[str, float]],
    probe: Batch,
) -> dict[str, list[dict[str, Any]]] | None:
    """Train every model for ``epochs``; returns the per-epoch records (``None`` if a
    checkpoint in ``out`` was made with another ``config``)."""
    records: dict[str, list[dict[str, Any]]] = {k: [] for k in models}
    for name, model in models.items():
        path = out / "checkpoints" / f"{name}.pt"
        if path.exists():
            state = torch.load(path, weights_only=True, map_location="cpu")
            if resumable(state["config"]) != resumable(config):
                print(f"error: {path} was made with other options; use another --out",
                      file=sys.stderr)
                return None
            for k, v in state["params"].items():
                model.graph.params[k].copy_(v)
            records[name] = state["records"]
    for name, model in models.items():
        for epoch in range(len(records[name]) + 1, epochs + 1):
            t0 = time.perf_counter()
            order = epoch_order(seed, epoch, n_train)
            total = 0.0
            for i in range(0, n_train, batch_size):
                inputs, target = batch(order[i:i + batch_size])
                total += model.train_batch(inputs, target)
            wall = time.perf_counter() - t0
            grads, _ = autograd_gradients(model.graph, probe[0], probe[1], model.loss)
            ups = model.updates(*probe)
            angle = sum(gradient_angle(ups[k], grads[k]) for k in grads) / len(grads)
            records[name].append({"model": name, "epoch": epoch, **evaluate(model),
                                  "loss": total / n_train, "mean_angle_degrees": angle,
                                  "wall_seconds": wall})
            buf = io.BytesIO()
            torch.save({"config": config, "records": records[name],
                        "params": {k: v.clone() for k, v in model.graph.params.items()}}, buf)
            atomic_write_bytes(out / "checkpoints" / f"{name}.pt", buf.getvalue())
            r = records[name][-1]
            shown = "  ".join(f"{k} {v:.4g}" for k, v in r.items()
                              if k not in ("model", "epoch", "wall_seconds"))
            print(f"{name:>8} epoch {epoch:>3}: {shown}  ({wall:.1f} s)", flush=True)
    return records


def write_records(path: Path, records: Mapping[str, list[dict[str, Any]]]) -> None:
    rows = [r for rs in records.values() for r in rs]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(cols)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                                         for c in cols) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def plot_pair(records: Mapping[str, list[dict[str, Any]]], path: Path, title: str,
              metric: str, metric_label: str) -> None:
    """Three panels: ``metric`` per epoch, training loss, and the non-backprop models' mean
    angle to the autograd gradient (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, rs in records.items():
        ep = [r["epoch"] for r in rs]
        style = dict(ls="--", color="black") if name == "backprop" else dict(color="tab:blue")
        axes[0].plot(ep, [r[metric] for r in rs], label=name, **style)
        axes[1].plot(ep, [r["loss"] for r in rs], label=name, **style)
        if name != "backprop":
            axes[2].plot(ep, [max(r["mean_angle_degrees"], 1e-12) for r in rs], label=name,
                         **style)
    axes[0].set_ylabel(metric_label)
    axes[1].set_ylabel("training loss per sample")
    axes[2].set_ylabel("angle(update, autograd gradient), degrees")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
