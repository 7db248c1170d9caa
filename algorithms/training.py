"""Epoch loop shared by every model: shuffling, targets, metrics, divergence guard.

Writes no files: a caller that wants checkpoints passes ``on_epoch_end`` and saves
``model.state_dict()`` there. Data order depends only on ``(seed, epoch)``, so a run resumed
from the checkpoint of epoch ``k`` reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .data import Dataset, smooth_targets
from .spec import PCSpec

__all__ = ["Diverged", "EpochRecord", "Model", "accuracy", "epoch_order", "fit", "model_device",
           "train_epoch"]


class Model(Protocol):
    """What the loop needs: PC networks, their backprop twins and AR all provide it."""

    spec: PCSpec

    def train_batch(self, x0: Tensor, target: Tensor) -> float: ...

    def predict(self, x0: Tensor) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Diverged(RuntimeError):
    """Training produced NaN/inf or an exploding energy; carries where it happened."""

    def __init__(self, epoch: int, batch: int, energy: float, reason: str) -> None:
        super().__init__(f"diverged at epoch {epoch}, batch {batch}: {reason} "
                         f"(energy per sample {energy:.3g})")
        self.epoch, self.batch, self.energy, self.reason = epoch, batch, energy, reason


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of one epoch. ``energy``: mean per-sample energy at the end of relaxation
    (the loss, for backprop); ``wall_seconds``: wall time of the epoch's training."""

    epoch: int
    train_accuracy: float
    test_accuracy: float
    energy: float
    wall_seconds: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def model_device(model: Any) -> torch.device:
    """The device a model computes on: its ``device`` attribute (torch models), else CPU
    (the Brian2 circuits)."""
    dev = getattr(model, "device", None)
    return dev if isinstance(dev, torch.device) else torch.device("cpu")


def accuracy(model: Model, x: Tensor, y: Tensor, batch: int = 8192) -> float:
    """Share of samples whose argmax prediction equals the label (counted on the model's
    device; one host sync at the end)."""
    correct = torch.zeros((), dtype=torch.int64, device=y.device)
    for i in range(0, len(y), batch):
        pred = model.predict(x[i:i + batch]).argmax(1).to(y.device)
        correct += (pred == y[i:i + batch]).sum()
    return int(correct) / max(len(y), 1)


def epoch_order(seed: int, epoch: int, n: int) -> Tensor:
    """The sample order of ``epoch`` (1-based): a permutation fixed by ``(seed, epoch)``."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def train_epoch(
    model: Model,
    data: Dataset,
    epoch: int,
    *,
    progress: bool = True,
    desc: str = "",
    divergence_energy: float = 1e6,
) -> float:
    """One pass over ``data.train_x`` in minibatches; returns the mean per-sample energy.

    Raises :class:`Diverged` as soon as a batch's energy is NaN/inf or its per-sample mean
    exceeds ``divergence_energy``.
    """
    spec = model.spec
    n = len(data.train_y)
    device = model_device(model)
    order = epoch_order(spec.seed, epoch, n).to(device)
    x_all = data.train_x.to(device=device, dtype=spec.torch_dtype)
    targets = smooth_targets(data.train_y, spec.sizes[-1], spec.label_smoothing,
                             spec.torch_dtype).to(device)
    total, seen = 0.0, 0
    batches = range(0, n, spec.batch_size)
    bar = tqdm(batches, desc=desc or f"epoch {epoch}", leave=False, disable=not progress,
               unit="batch", mininterval=0.5)
    for b, start in enumerate(bar):
        idx = order[start:start + spec.batch_size]
        e = model.train_batch(x_all[idx], targets[idx])
        per_sample = e / len(idx)
        if not math.isfinite(e):
            raise Diverged(epoch, b, per_sample, "energy is NaN or inf")
        if per_sample > divergence_energy:
            raise Diverged(epoch, b, per_sample,
                           f"energy per sample exceeds the limit {divergence_energy:g}")
        total += e
        seen += len(idx)
        if progress and b % 20 == 0:
            bar.set_postfix(energy=f"{total / seen:.4f}")
    bar.close()
    return total / max(seen, 1)


def fit(
    model: Model,
    data: Dataset,
    epochs: int,
    *,
    start_epoch: int = 0,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    progress: bool = True,
    desc: str = "",
    divergence_energy: float = 1e6,
) -> list[EpochRecord]:
    """Train epochs ``start_epoch + 1 .. epochs``; after each, measure train and test accuracy
    (feedforward predictions) and call ``on_epoch_end(record)``.

    Raises :class:`Diverged` (records of finished epochs have been passed to the callback).
    """
    if data.n_features != model.spec.sizes[0] or data.n_classes != model.spec.sizes[-1]:
        raise ValueError(
            f"{data.name} has {data.n_features} features and {data.n_classes} classes, but the "
            f"spec's sizes are {model.spec.sizes}"
        )
    records = []
    dtype, device = model.spec.torch_dtype, model_device(model)
    train_x, train_y = data.train_x.to(device=device, dtype=dtype), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device=device, dtype=dtype), data.test_y.to(device)
    for epoch in range(start_epoch + 1, epochs + 1):
        t0 = time.perf_counter()
        mean_energy = train_epoch(model, data, epoch, progress=progress,
                                  desc=f"{desc} epoch {epoch}/{epochs}".strip(),
                                  divergence_energy=divergence_energy)
        wall = time.perf_counter() - t0
        params = getattr(model, "params", None)
        if params is not None and hasattr(params, "all_finite") and not params.all_finite():
            raise Diverged(epoch, -1, mean_energy, "weights contain NaN or inf")
        record = EpochRecord(
            epoch,
            accuracy(model, train_x, train_y),
            accuracy(model, test_x, test_y),
            mean_energy,
            wall,
        )
        records.append(record)
        if on_epoch_end is not None:
            on_epoch_end(record)
    return records
