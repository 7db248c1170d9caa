"""The sweep runner: every training run is a pure function of its :class:`Task`, run on Dask.

A sweep is a list of tasks (variant x seed x dataset x ...). Each task trains one model to
``epochs`` and keeps everything about itself in its own folder ``<out>/runs/<key>/``:

* ``checkpoint.pt``: weights, epoch records, status (written atomically after every epoch;
  loads with ``torch.load(weights_only=True)``);
* ``run.json``: the epoch records, status, probe metrics and provenance (git commit and dirty
  flag, torch/brian2/numpy versions, the command, the run's own seed, host, device).

A rerun resumes every task from its last finished epoch (data order depends only on
``(seed, epoch)``, so the resumed curve equals the uninterrupted one); a diverged run is never
retrained. :func:`merge` then builds ``curves.csv``, ``summary.json`` and ``probes.csv`` of
the output folder from every run folder in it, atomically, so several sweeps may write into
one ``--out``: a run folder is locked (``.lock``, host and pid) while a process trains it.

Engines (``--scheduler``): ``local`` (default) starts an embedded Dask ``LocalCluster`` of
``--workers`` single-threaded worker processes (spawned, not forked: torch is imported in the
parent); ``tcp://HOST:PORT`` submits to a running Dask scheduler (``dask scheduler`` and
``dask worker``, or dask-jobqueue on SLURM; see docs/sweeps.md); ``none`` runs the tasks
one after another in this process. A worker that dies loses only its current epoch: Dask
resubmits the task, which resumes from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Task", "add_sweep_arguments", "execute", "load_runs", "merge", "provenance",
           "run_sweep", "run_sweep_cli", "seeds_from"]


@dataclass(frozen=True)
class Task:
    """One training run; every field is plain data, so a task pickles to any worker.

    ``kind`` selects how the model is built (``"pc"``: the main job's variants,
    ``"ar"``: activation relaxation's, ``"cnn"``: the PC-CNN on the graph engine, variant
    ``pc`` or ``backprop``). ``spec`` is the base :class:`PCSpec` as a dict
    (``PCSpec.to_dict``; unused by ``cnn``); the variant's relaxations,
    ``fixed_predictions`` and the seed are applied to it. ``options`` holds a kind's own
    settings (plain data). ``provenance`` is computed once by the submitting process."""

    kind: str
    variant: str
    dataset: str
    activation: str
    seed: int
    epochs: int
    spec: dict[str, Any]
    split: str = "thesis"
    data_dir: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    fixed_predictions: bool | None = None
    loss: str | None = None
    relax_input: bool = False
    backend: str = "torch"  # torch | circuit (Brian2 rate) | spiking (options["coding"])
    circuit_target: str = "cython"
    kernel: str = "numba"
    probe: str | None = None
    probe_batches: int = 4
    device: str = "cpu"
    threads: int = 1
    divergence_energy: float = 1e6
    options: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """The run folder's name, unique within an output folder (the backend is part of it
        unless it is torch)."""
        key = f"{self.dataset}_{self.activation}_{self.variant}_seed{self.seed}"
        return key if self.backend == "torch" else f"{key}_{self.backend}"


# ----------------------------------------------------------------------------- provenance
def provenance(command: str) -> dict[str, Any]:
    """What made a result: git commit and dirty flag (of the working directory's
    repository), package versions, Python, the command line, the time."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    versions: dict[str, str | None] = {}
    for name in ("torch", "numpy", "brian2", "numba", "dask", "distributed"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - a package that is not installed
            versions[name] = None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"),
            "git_dirty": None if status is None else bool(status),
            "versions": versions, "python": sys.version.split()[0], "command": command,
            "submitted": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


# ------------------------------------------------------------------------------ execution
_DATA_CACHE: dict[tuple[Any, ...], Any] = {}


def _data(task: Task) -> Any:
    """The task's data set, loaded once per worker process."""
    from algorithms.data import load_dataset

    key = (task.dataset, task.data_dir, task.split, task.train_subset, task.test_subset)
    if key not in _DATA_CACHE:
        data = load_dataset(task.dataset, task.data_dir, split=task.split)  # type: ignore[arg-type]
        if task.train_subset is not None:
            data = dataclasses.replace(data, train_x=data.train_x[:task.train_subset],
                                       train_y=data.train_y[:task.train_subset])
        if task.test_subset is not None:
            data = dataclasses.replace(data, test_x=data.test_x[:task.test_subset],
                                       test_y=data.test_y[:task.test_subset])
        _DATA_CACHE[key] = data
    return _DATA_CACHE[key]


class _Lock:
    """``<run>/.lock`` held while a process trains the run; a lock left by a dead process on
    this host is taken over, a live one (or one from another host) makes the task skip."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"
        self.held = False

    def acquire(self) -> bool:
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    host, pid = self.path.read_text().split()
                except (OSError, ValueError):
                    host, pid = "", "0"
                if host == socket.gethostname() and not _alive(int(pid)):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            self.held = True
            return True
        return False

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def execute(task: Task, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Train (or resume) one run in ``<out>/runs/<task.key>/``; returns its ``run.json``
    content. Never raises on divergence (the run is marked ``diverged``); a run whose folder
    another live process holds is returned as ``busy`` without training."""
    import torch

    from algorithms.graph import Loss
    from algorithms.spec import PCSpec
    from algorithms.variants import ARVariant, Variant

    from ._runs import RunResult, train_run

    torch.set_num_threads(task.threads)
    folder = Path(out) / "runs" / task.key
    folder.mkdir(parents=True, exist_ok=True)
    lock = _Lock(folder)
    if not lock.acquire():
        return {**_read_run(folder), "status": "busy"}
    try:
        done = _committed_result(task, folder)
        if done is not None:
            return done
        if task.kind == "cnn":
            return _execute_cnn(task, folder)
        old = Path(out) / "checkpoints" / f"{task.key}.pt"  # the layout before the runner
        if old.exists() and not (folder / "checkpoint.pt").exists():
            import shutil

            shutil.copyfile(old, folder / "checkpoint.pt")
        variant: Variant | ARVariant = (ARVariant(task.variant) if task.kind == "ar"
                                        else Variant(task.variant))
        base = PCSpec.from_dict(task.spec)
        res = RunResult(task.dataset, task.activation, variant, task.seed,
                        fixed_predictions=task.fixed_predictions)
        loss = Loss(task.loss) if task.loss is not None else None
        data = _data(task)
        make_model = _factory(task)
        probe = _probe(task, data, base)
        info = {"key": task.key, "task": _task_dict(task),
                "provenance": {**task.provenance, "seed": task.seed,
                               "host": socket.gethostname(), "device": task.device}}

        def write(res_: RunResult) -> None:
            _write_run(folder, res_, info, backend=task.backend)

        res.status = "running"
        train_run(res, base, data, task.epochs, folder, split=task.split, progress=False,
                  on_epoch_end=write, divergence_energy=task.divergence_energy, loss=loss,
                  probe=probe, make_model=make_model, device=torch.device(task.device),
                  checkpoint=folder / "checkpoint.pt")
        _write_run(folder, res, info, backend=task.backend)
        return _read_run(folder)
    finally:
        lock.release()


def _execute_cnn(task: Task, folder: Path) -> dict[str, Any]:
    """A PC-CNN (or its backprop twin) on the graph engine, epoch by epoch, resumable.
    Records are the epoch loop's (train/test accuracy, mean loss as ``energy``, wall time);
    the PC run's probes are the per-layer divergence from the autograd gradient on a fixed
    batch, every ``probe_every`` batches."""
    import io as _io
    import math
    import time

    import torch

    from algorithms.data import pad_images
    from algorithms.fidelity import compare
    from algorithms.graph import Algorithm, GraphModel, Loss, autograd_gradients
    from algorithms.graph_models import cnn_graph
    from algorithms.training import EpochRecord, epoch_order
    from algorithms.variants import Variant

    from ._runs import ConfigMismatch, RunResult, atomic_write_bytes

    torch.set_num_threads(task.threads)
    o = task.options
    data = _data(task)
    if data.image_shape != (32, 32):
        data = pad_images(data, 32)
    device = torch.device(task.device)
    model = GraphModel(cnn_graph(in_channels=data.channels, n_classes=data.n_classes,
                                 seed=task.seed, device=device),
                       Algorithm.PC if task.variant == "pc" else None, loss=Loss(o["loss"]),
                       learning_rate=o["learning_rate"], rate=o["rate"], steps=o["steps"],
                       update_clamp=o.get("update_clamp"))
    shape = (data.channels, 32, 32)
    n_train = len(data.train_y)
    batch = int(o["batch_size"])

    def inputs(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": x.reshape(len(x), *shape)}

    def targets(y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(y, data.n_classes).float()

    def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
        correct = sum(int((model.predict(inputs(x[i:i + 1000])).argmax(1).cpu()
                           == y[i:i + 1000]).sum()) for i in range(0, len(y), 1000))
        return correct / len(y)

    res = RunResult(task.dataset, task.activation, Variant(task.variant), task.seed)
    res.backend = "graph"
    config = _task_dict(task)
    for k in ("epochs", "threads", "device", "provenance"):
        config.pop(k, None)
    ckpt = folder / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True, map_location="cpu")
        if state["config"] != config:
            raise ConfigMismatch(f"{ckpt} was made with a different configuration; use "
                                 "another --out, or --fresh")
        for k, v in state["params"].items():
            model.graph.params[k].copy_(v)
        res.records = [EpochRecord(**r) for r in state["records"]]
        res.probes = list(state["probes"])
        res.status, res.message = state["status"], state["message"]
    info = {"key": task.key, "task": _task_dict(task),
            "provenance": {**task.provenance, "seed": task.seed, "host": socket.gethostname(),
                           "device": task.device}}

    def save() -> None:
        buf = _io.BytesIO()
        torch.save({"config": config, "records": [r.as_dict() for r in res.records],
                    "probes": res.probes, "status": res.status, "message": res.message,
                    "params": {k: v.detach().cpu().clone()
                               for k, v in model.graph.params.items()}}, buf)
        atomic_write_bytes(ckpt, buf.getvalue())
        _write_run(folder, res, info)

    if res.status == "diverged" or len(res.records) >= task.epochs:
        res.records = res.records[:task.epochs]
        if res.status != "diverged":
            res.status = "finished"
        _write_run(folder, res, info)
        return _read_run(folder)
    probe_x, probe_t = inputs(data.train_x[:batch]), targets(data.train_y[:batch])
    res.status = "running"
    for epoch in range(len(res.records) + 1, task.epochs + 1):
        order = epoch_order(task.seed, epoch, n_train)
        total, wall = 0.0, 0.0
        for b, i in enumerate(range(0, n_train, batch)):
            idx = order[i:i + batch]
            if task.variant == "pc" and b % int(o["probe_every"]) == 0:
                grads, _ = autograd_gradients(model.graph, probe_x, probe_t, model.loss)
                fid = compare(model.updates(probe_x, probe_t), grads)
                res.probes.append({"epoch": epoch, "batch": b, **{
                    f"{k}_{m}": getattr(f, m) for k, f in fid.items()
                    for m in ("squared_divergence", "relative_error", "angle_degrees")}})
            t0 = time.perf_counter()
            value = model.train_batch(inputs(data.train_x[idx]), targets(data.train_y[idx]))
            wall += time.perf_counter() - t0
            total += value
            if not math.isfinite(value) or value / len(idx) > task.divergence_energy:
                res.status = "diverged"
                res.message = f"diverged at epoch {epoch}, batch {b}: loss {value:.3g}"
                save()
                return _read_run(folder)
        res.records.append(EpochRecord(epoch, accuracy(data.train_x, data.train_y),
                                       accuracy(data.test_x, data.test_y), total / n_train,
                                       wall))
        save()
    res.status = "finished"
    save()
    return _read_run(folder)


_NOT_IDENTITY = ("epochs", "threads", "device", "provenance", "data_dir")


def _committed_result(task: Task, folder: Path) -> dict[str, Any] | None:
    """A run that ended (finished with at least ``task.epochs`` epochs, or diverged) and
    kept only its ``run.json``, as committed results do (checkpoints are not committed): its
    records stand, truncated to ``task.epochs``; nothing is retrained. ``None`` when the run
    must (re)train: a checkpoint exists, it has not ended, or it was made by another task."""
    if (folder / "checkpoint.pt").exists() or not (folder / "run.json").exists():
        return None
    doc = _read_run(folder)
    made_by = {k: v for k, v in doc.get("task", {}).items() if k not in _NOT_IDENTITY}
    this = {k: v for k, v in _task_dict(task).items() if k not in _NOT_IDENTITY}
    if made_by != this:
        return None
    if doc.get("status") == "diverged":
        return doc
    if doc.get("status") == "finished" and len(doc.get("records", [])) >= task.epochs:
        return {**doc, "records": doc["records"][:task.epochs]}
    return None


def _task_dict(task: Task) -> dict[str, Any]:
    d = dataclasses.asdict(task)
    d.pop("provenance")
    return d


def _import_brian2() -> None:
    """Import Brian2 where a Dask worker runs tasks: in a thread other than the main one.
    Brian2 installs a SIGINT handler at import, which only the main thread may do; in a
    worker that handler has no use (the worker is stopped through Dask), so it is skipped."""
    import signal
    import threading

    if "brian2" in sys.modules or threading.current_thread() is threading.main_thread():
        import brian2  # noqa: F401
        return
    original = signal.signal
    signal.signal = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        import brian2  # noqa: F401
    finally:
        signal.signal = original


def _factory(task: Task) -> Any:
    """The model factory ``train_run`` takes (``None``: the torch models)."""
    from algorithms.variants import ARVariant, Variant, variant_spec

    if task.backend in ("circuit", "spiking"):
        _import_brian2()
        import json as _json

        from circuits.drive import Kernel, Target
        from circuits.model import build_circuit_model

        coding = None
        if task.backend == "spiking":
            from circuits.spiking import Encoding, SpikeCoding

            c = dict(task.options["coding"])
            c["encoding"] = Encoding(c["encoding"])
            coding = SpikeCoding(**c)

        def make(variant: Variant, spec: Any) -> Any:
            if variant is Variant.BACKPROP:
                return None
            if coding is not None:
                return build_circuit_model(variant, spec, target=Target.CYTHON, coding=coding)
            return build_circuit_model(variant, spec, target=Target(task.circuit_target),
                                       kernel=Kernel(task.kernel))

        # part of the checkpoint's configuration: a changed coding never resumes an old run
        make.backend = ("circuit" if coding is None else  # type: ignore[attr-defined]
                        "spiking " + _json.dumps(task.options["coding"], sort_keys=True))
        return make
    if task.kind == "ar" and task.relax_input:
        import torch

        from algorithms.ar import ActivationRelaxationNetwork
        from algorithms.graph import Loss

        def make_ar(variant: ARVariant, spec: Any) -> Any:
            if variant is ARVariant.BACKPROP:
                return None
            return ActivationRelaxationNetwork(variant_spec(variant, spec), loss=Loss.MSE_SUM,
                                               relax_input=True,
                                               device=torch.device(task.device))

        make_ar.backend = "torch+relax_input"  # type: ignore[attr-defined]
        return make_ar
    return None


def _probe(task: Task, data: Any, base: Any) -> Any:
    if task.probe is None:
        return None
    if task.probe == "psi":
        from .relaxations import psi_probe

        return psi_probe
    if task.probe == "angles":
        from .activation_relaxation import angle_probe

        return angle_probe(data, base, task.probe_batches)
    raise ValueError(f"unknown probe {task.probe!r}")


def _write_run(folder: Path, res: Any, info: dict[str, Any],
               backend: str | None = None) -> None:
    """``run.json``; ``backend``: the task's name for it (a circuit factory's own name
    carries its settings, for the checkpoint's resume check)."""
    from ._runs import atomic_write_text

    doc = {**info, "label": res.label, "backend": backend or res.backend,
           "dataset": res.dataset, "activation": res.activation, "variant": res.variant.value,
           "seed": res.seed, "fixed_predictions": res.fixed_predictions,
           "status": res.status, "message": res.message,
           "records": [r.as_dict() for r in res.records], "probes": res.probes,
           "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(folder / "run.json", json.dumps(doc, indent=1) + "\n")


def _read_run(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return {"key": folder.name, "status": "pending", "records": []}


# ---------------------------------------------------------------------------------- merge
def load_runs(out: str | os.PathLike[str], keys: Iterable[str] | None = None) -> list[Any]:
    """Every run folder in ``<out>/runs`` (or those in ``keys``, in that order) as
    :class:`demos._runs.RunResult` objects."""
    from algorithms.training import EpochRecord
    from algorithms.variants import ARVariant, Variant

    from ._runs import RunResult

    root = Path(out) / "runs"
    names = list(keys) if keys is not None else sorted(p.name for p in root.glob("*")
                                                       if (p / "run.json").exists())
    results = []
    for name in names:
        doc = _read_run(root / name)
        if "variant" not in doc:
            continue
        kind = doc.get("task", {}).get("kind", "pc")
        variant = ARVariant(doc["variant"]) if kind == "ar" else Variant(doc["variant"])
        res = RunResult(doc["dataset"], doc["activation"], variant, int(doc["seed"]),
                        fixed_predictions=doc.get("fixed_predictions"))
        res.records = [EpochRecord(**r) for r in doc["records"]]
        res.probes = list(doc.get("probes", []))
        res.status, res.message = doc["status"], doc.get("message", "")
        res.backend = doc.get("backend", "torch")
        res.run_key = name  # type: ignore[attr-defined]  # the folder (keys carry the backend)
        results.append(res)
    return results


def merge(out: str | os.PathLike[str], meta: dict[str, Any],
          keys: Sequence[str] | None = None) -> list[Any]:
    """Rebuild ``curves.csv``, ``epochs.csv`` (per-epoch mean and std over seeds),
    ``summary.json`` (``meta`` plus per-variant statistics over seeds and every run's
    provenance) and, when any run has probe metrics, ``probes.csv``
    from the run folders (all of them, or ``keys``); each file is replaced atomically.
    Returns the runs."""
    from ._runs import summarise, write_curves, write_epoch_table, write_probes, write_summary

    out = Path(out)
    results = load_runs(out, keys)
    write_curves(out / "curves.csv", results)
    write_epoch_table(out / "epochs.csv", results)
    if any(r.probes for r in results):
        write_probes(out / "probes.csv", results)
    prov = {}
    for r in results:
        key = getattr(r, "run_key", r.key)
        prov[key] = _read_run(out / "runs" / key).get("provenance", {})
    summary = summarise(results, {**meta, "updated": _dt.datetime.now(
        _dt.timezone.utc).isoformat(timespec="seconds")})
    summary["runs"] = prov
    write_summary(out / "summary.json", summary)
    return results


# ---------------------------------------------------------------------------------- sweeps
def add_sweep_arguments(p: Any) -> None:
    """``--seeds``, ``--scheduler`` and ``--workers`` on a demo's parser."""
    p.add_argument("--seeds", nargs="+", default=["1"],
                   help="a count N (seeds 0..N-1) or an explicit list with 'list', e.g. "
                        "--seeds list 0 1 7")
    p.add_argument("--scheduler", default="local",
                   help="local: an embedded Dask LocalCluster (default); tcp://HOST:PORT: an "
                        "existing Dask scheduler; none: serially in this process")
    p.add_argument("--workers", type=int, default=None,
                   help="LocalCluster worker processes, one thread each (default: the number "
                        "of cores, at most the number of runs)")


def seeds_from(values: Sequence[str]) -> list[int]:
    """``["3"]`` -> ``[0, 1, 2]``; ``["list", "0", "1", "7"]`` -> ``[0, 1, 7]``."""
    vals = list(values)
    try:
        if vals and vals[0] == "list":
            seeds = [int(v) for v in vals[1:]]
            if not seeds:
                raise ValueError("--seeds list needs at least one seed")
        elif len(vals) == 1:
            n = int(vals[0])
            if n < 1:
                raise ValueError("--seeds must be >= 1")
            seeds = list(range(n))
        else:
            raise ValueError("give a count (--seeds 3) or a list (--seeds list 0 1 7)")
    except ValueError as exc:
        raise ValueError(f"--seeds: {exc}") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError("--seeds: seeds must be distinct and >= 0")
    return seeds


def run_sweep(tasks: Sequence[Task], out: str | os.PathLike[str], meta: dict[str, Any], *,
              scheduler: str = "local", workers: int | None = None,
              report: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every task (in parallel on Dask unless ``scheduler == "none"``), merging the
    output folder after each finished run; returns the runs' ``run.json`` documents in
    task order. ``report(doc)`` is called as each run finishes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("two tasks share a run key; make variant, dataset, activation or "
                         "seed differ")
    done: dict[str, dict[str, Any]] = {}

    def finished(doc: dict[str, Any]) -> None:
        done[doc.get("key", "")] = doc
        merge(out, meta)
        if report is not None:
            report(doc)

    if scheduler == "none":
        for t in tasks:
            finished(execute(t, out))
        return [done[k] for k in keys]
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler == "local":
        n = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    elif scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        client = Client(scheduler)
    else:
        raise ValueError(f"--scheduler: expected local, none or an address like "
                         f"tcp://HOST:PORT, got {scheduler!r}")
    try:
        futures = [client.submit(execute, t, str(out), key=f"run-{t.key}-{os.getpid()}",
                                 pure=False, retries=2) for t in tasks]
        for fut in as_completed(futures):
            finished(fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return [done[k] for k in keys]


def run_sweep_cli(tasks: Sequence[Task], out: str | os.PathLike[str], meta: dict[str, Any],
                  args: Any) -> int:
    """:func:`run_sweep` for a demo's ``main``: ``--scheduler``/``--workers`` from ``args``,
    one line per finished run, and an exit status: 0, 2 when a checkpoint was made with
    another configuration, 130 when interrupted (finished epochs are kept)."""
    from ._runs import ConfigMismatch
    from .relaxations import print_run

    try:
        run_sweep(tasks, out, meta, scheduler=args.scheduler, workers=args.workers,
                  report=print_run)
    except ConfigMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished epochs are saved; rerun the same command to resume",
              file=sys.stderr)
        return 130
    return 0
