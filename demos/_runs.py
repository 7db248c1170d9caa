"""Resumable training runs: checkpoints, curves.csv and summary.json on disk.

Each run (dataset, activation, variant, seed) checkpoints after every epoch into
``<out>/checkpoints/<run>.pt`` (written atomically). Rerunning the same command resumes
each run from its last finished epoch; data order depends only on (seed, epoch), so the
resumed curve equals the uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from algorithms.data import Dataset
from algorithms.spec import PCSpec
from algorithms.training import Diverged, EpochRecord, fit
from algorithms.graph import Loss
from algorithms.training import Model
from algorithms.variants import ARVariant, Variant, build_model, variant_spec

CSV_COLUMNS = ("dataset", "activation", "variant", "seed", "epoch", "train_accuracy",
               "test_accuracy", "energy", "wall_seconds")


def prediction_mode(fixed: bool) -> str:
    """``"fixed"`` or ``"recomputed"``: how a PC run treats its predictions."""
    return "fixed" if fixed else "recomputed"


class ConfigMismatch(RuntimeError):
    """A checkpoint in the output folder was made with a different configuration."""


@dataclass
class RunResult:
    """One (variant, seed) run: its epoch records and how it ended."""

    dataset: str
    activation: str
    variant: Variant | ARVariant
    seed: int
    records: list[EpochRecord] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)  # per-epoch extra metrics
    status: str = "running"  # running | finished | diverged
    message: str = ""
    backend: str = "torch"  # or "circuit" (Brian2)
    fixed_predictions: bool | None = None  # per-run prediction mode; None: the base spec's

    @property
    def label(self) -> str:
        """The variant's label, with the prediction mode when the run sets its own."""
        if self.fixed_predictions is None or self.variant.value == "backprop":
            return self.variant.label
        return f"{self.variant.label} [{prediction_mode(self.fixed_predictions)} pred.]"

    @property
    def key(self) -> str:
        return f"{self.dataset}_{self.activation}_{self.variant.value}_seed{self.seed}"

    def rows(self) -> list[dict[str, Any]]:
        extra = {} if self.backend == "torch" else {"backend": self.backend}
        return [{"dataset": self.dataset, "activation": self.activation,
                 "variant": self.variant.value, "seed": self.seed, **extra, **r.as_dict()}
                for r in self.records]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_curves(path: Path, results: Iterable[RunResult]) -> None:
    results = list(results)
    cols = list(CSV_COLUMNS)
    if any(r.backend != "torch" for r in results):  # the circuit backend adds a column
        cols.insert(cols.index("seed") + 1, "backend")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")  # quotes a field holding commas
    w.writerow(cols)
    for res in results:
        for row in res.rows():
            w.writerow([_fmt(row.get(c, "torch")) for c in cols])
    atomic_write_text(path, buf.getvalue())


def write_epoch_table(path: Path, results: Iterable[RunResult]) -> None:
    """``epochs.csv``: per variant (and prediction mode) and epoch, the number of seeds that
    reached it and the mean and standard deviation (population, over seeds) of the test and
    train accuracy and the energy. What the shaded curves show, as numbers."""
    import statistics

    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        label = r.label if r.backend == "torch" else f"{r.label} [{r.backend}]"
        groups.setdefault((r.variant.value, label), []).append(r)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "label", "epoch", "seeds", "test_accuracy_mean", "test_accuracy_std",
                "train_accuracy_mean", "train_accuracy_std", "energy_mean", "energy_std"])
    for (variant, label), runs in groups.items():
        for e in range(1, max((len(r.records) for r in runs), default=0) + 1):
            recs = [r.records[e - 1] for r in runs if len(r.records) >= e]
            row: list[Any] = [variant, label, e, len(recs)]
            for key in ("test_accuracy", "train_accuracy", "energy"):
                vals = [getattr(x, key) for x in recs]
                row += [statistics.fmean(vals), statistics.pstdev(vals) if len(vals) > 1 else 0.0]
            w.writerow([_fmt(v) for v in row])
    atomic_write_text(path, buf.getvalue())


def read_curves(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def run_config(spec: PCSpec, dataset: Dataset, split: str,
               loss: Loss | None = None, backend: str = "torch") -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (epochs may grow)."""
    spec_dict = spec.to_dict()
    if spec.relaxations.forward_pass.all_frozen:  # AR-only option: absent from PC configs
        spec_dict["relaxations"].pop("forward_pass", None)
    config = {"spec": spec_dict, "dataset": dataset.name, "split": split,
              "n_train": len(dataset.train_y)}
    if loss is not None:
        config["loss"] = loss.value
    if backend != "torch":  # absent for torch runs, so older checkpoints still resume
        config["backend"] = backend
    return config


Probe = Callable[[Model], dict[str, Any]]
ModelFactory = Callable[[Any, PCSpec], Model | None]


def train_run(
    res: RunResult,
    base: PCSpec,
    data: Dataset,
    epochs: int,
    out: Path,
    *,
    split: str,
    progress: bool,
    on_epoch_end: Any = None,
    divergence_energy: float = 1e6,
    loss: Loss | None = None,
    probe: Probe | None = None,
    make_model: ModelFactory | None = None,
    device: torch.device | None = None,
    checkpoint: Path | None = None,
) -> RunResult:
    """Train one run to ``epochs``, resuming from its checkpoint; never raises on divergence
    (the run is marked ``diverged`` with the message).

    ``loss`` is passed to activation-relaxation variants; ``probe(model)`` is called after
    every epoch and its metrics are kept in ``res.probes`` (and the checkpoint).
    ``make_model(variant, base)`` replaces the torch models (the circuit backend); it returns
    ``None`` for variants it leaves to torch, and its ``backend`` attribute names it.
    ``checkpoint``: where the run's checkpoint lives (default
    ``<out>/checkpoints/<key>.pt``)."""
    if res.fixed_predictions is not None:
        base = base.replace(fixed_predictions=res.fixed_predictions)
    spec = variant_spec(res.variant, base.replace(seed=res.seed))
    model = None if make_model is None else make_model(res.variant, base.replace(seed=res.seed))
    backend = "torch" if model is None else getattr(make_model, "backend", "custom")
    if model is None:
        model = (build_model(res.variant, base.replace(seed=res.seed), device=device)
                 if loss is None else
                 build_model(res.variant, base.replace(seed=res.seed), loss, device=device))
    res.backend = backend
    config = run_config(spec, data, split, loss, backend)
    ckpt = checkpoint if checkpoint is not None else out / "checkpoints" / f"{res.key}.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True, map_location="cpu")
        if state["config"] != config:
            raise ConfigMismatch(
                f"{ckpt} was made with a different configuration; use another --out, or "
                "--fresh to discard the old checkpoints"
            )
        model.load_state_dict(state["model"])
        res.records = [EpochRecord(**r) for r in state["records"]]
        res.probes = list(state.get("probes", []))
        res.status, res.message = state["status"], state["message"]
        if res.status == "diverged":
            return res
        if len(res.records) >= epochs:  # report the first `epochs`; the checkpoint keeps all
            res.records, res.status = res.records[:epochs], "finished"
            res.probes = res.probes[:epochs]
            return res

    def save(status: str, message: str = "") -> None:
        buf = io.BytesIO()
        torch.save({"config": config, "model": model.state_dict(),
                    "records": [r.as_dict() for r in res.records], "probes": res.probes,
                    "status": status, "message": message}, buf)
        atomic_write_bytes(ckpt, buf.getvalue())

    def epoch_done(record: EpochRecord) -> None:
        res.records.append(record)
        if probe is not None:
            res.probes.append({"epoch": record.epoch, **probe(model)})
        save("running")
        if on_epoch_end is not None:
            on_epoch_end(res)

    res.status = "running"
    try:
        fit(model, data, epochs, start_epoch=len(res.records), on_epoch_end=epoch_done,
            progress=progress, desc=f"{res.variant.value} seed {res.seed}",
            divergence_energy=divergence_energy)
        res.status = "finished"
    except Diverged as exc:
        # The finished epochs' records stay; the run is never trained again.
        res.status, res.message = "diverged", str(exc)
        save(res.status, res.message)
    return res


def summarise(results: list[RunResult], meta: dict[str, Any]) -> dict[str, Any]:
    """summary.json content: per variant, final and best test accuracy over seeds."""
    by_variant: dict[str, Any] = {}
    for variant, backend in dict.fromkeys((r.variant, r.backend) for r in results):
        runs = [r for r in results if r.variant is variant and r.backend == backend]
        name = variant.value if len({r.backend for r in results}) == 1 else (
            f"{variant.value} [{backend}]")
        finals = [r.records[-1].test_accuracy for r in runs if r.records]
        bests = [max(x.test_accuracy for x in r.records) for r in runs if r.records]
        walls = [x.wall_seconds for r in runs for x in r.records]
        t = torch.tensor(finals, dtype=torch.float64) if finals else None
        by_variant[name] = {
            "label": runs[0].label,
            "backend": runs[0].backend,
            **({} if runs[0].fixed_predictions is None or variant.value == "backprop" else
               {"predictions": prediction_mode(runs[0].fixed_predictions)}),
            "final_test_accuracy_mean": float(t.mean()) if t is not None else None,
            "final_test_accuracy_std": float(t.std(unbiased=False)) if t is not None else None,
            "best_test_accuracy_mean": sum(bests) / len(bests) if bests else None,
            "final_train_accuracy_mean": (
                sum(r.records[-1].train_accuracy for r in runs if r.records)
                / max(1, sum(1 for r in runs if r.records))) if finals else None,
            "mean_epoch_seconds": sum(walls) / len(walls) if walls else None,
            "epochs_completed": [len(r.records) for r in runs],
            "runs": [{"seed": r.seed, "status": r.status, "message": r.message,
                      "epochs": len(r.records)} for r in runs],
        }
    return {**meta, "variants": by_variant}


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")


def run_all(
    results: list[RunResult],
    base: PCSpec,
    data: Dataset,
    epochs: int,
    out: Path,
    meta: dict[str, Any],
    *,
    split: str,
    progress: bool,
    loss: Loss | None = None,
    probe: Probe | None = None,
    make_model: ModelFactory | None = None,
    device: torch.device | None = None,
) -> int:
    """Train every run in turn, rewriting curves.csv and summary.json (and probes.csv when a
    probe is given) after each epoch; prints one line per finished run. Returns an exit
    status: 0, 2 for a configuration clash, 130 when interrupted (all finished epochs kept)."""
    import datetime as _dt
    import sys

    def flush(_: RunResult | None = None) -> None:
        write_curves(out / "curves.csv", results)
        if probe is not None:
            write_probes(out / "probes.csv", results)
        write_summary(out / "summary.json",
                      summarise(results, {**meta, "updated": _dt.datetime.now(
                          _dt.timezone.utc).isoformat(timespec="seconds")}))

    try:
        for res in results:
            train_run(res, base, data, epochs, out, split=split, progress=progress,
                      on_epoch_end=flush, loss=loss, probe=probe, make_model=make_model,
                      device=device)
            last = res.records[-1] if res.records else None
            tail = f"test {100 * last.test_accuracy:.2f}%" if last else "no epoch finished"
            print(f"  {res.label:<32} seed {res.seed}: {res.status:<9} {tail}"
                  + (f"  ({res.message})" if res.status == "diverged" else ""), flush=True)
            flush()
    except ConfigMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        flush()
        print("\ninterrupted: finished epochs are saved; rerun the same command to resume",
              file=sys.stderr)
        return 130
    flush()
    return 0


def write_probes(path: Path, results: Iterable[RunResult]) -> None:
    """probes.csv: one row per run and epoch with the probe's metrics as columns."""
    rows = [{"dataset": r.dataset, "variant": r.variant.value, "seed": r.seed, **p}
            for r in results for p in r.probes]
    if not rows:
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [",".join(columns)]
    lines += [",".join(_fmt(row.get(c, "")) for c in columns) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def add_device_argument(p: Any) -> None:
    """``--device {auto,cpu,cuda}`` on a demo's parser (auto: CUDA when available)."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the torch models run (auto: CUDA when available, else CPU)")


def device_from(args: Any) -> torch.device:
    """The device ``--device`` names; ``ValueError`` (with the reason) when it is absent."""
    from algorithms.device import resolve_device

    return resolve_device(args.device)


def prepare_runs(out: Path, keys: Iterable[str], fresh: bool) -> None:
    """Create ``out``; with ``fresh``, discard the given runs' checkpoints and records (in
    the runner's per-run folders and in the older ``checkpoints/`` layout)."""
    out.mkdir(parents=True, exist_ok=True)
    if not fresh:
        return
    for key in keys:
        for f in (out / "runs" / key / "checkpoint.pt", out / "runs" / key / "run.json",
                  out / "checkpoints" / f"{key}.pt"):
            f.unlink(missing_ok=True)


def prepare_out(out: Path, fresh: bool) -> None:
    """Create ``out``; with ``fresh``, delete its checkpoints first (no resuming)."""
    if fresh and (out / "checkpoints").exists():
        for f in (out / "checkpoints").glob("*.pt"):
            f.unlink()
    out.mkdir(parents=True, exist_ok=True)


def run_meta(module: str, argv: list[str] | None, data: Dataset, epochs: int, base: PCSpec,
             **extra: Any) -> dict[str, Any]:
    """The provenance block of summary.json: exact command, data, spec, threads, platform."""
    import platform
    import shlex
    import sys

    return {"command": f"python -m {module} "
                       + shlex.join(argv if argv is not None else sys.argv[1:]),
            "dataset": data.describe(), "epochs": epochs, **extra, "spec": base.to_dict(),
            "torch_threads": torch.get_num_threads(),
            "platform": f"{platform.machine()} {platform.python_version()} torch {torch.__version__}"}
