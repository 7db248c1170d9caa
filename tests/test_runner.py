"""The sweep runner on Dask (issue 15).

Oracles: the serial in-process run (a Dask sweep must give the same curves bit for bit,
wall time aside), and an uninterrupted sweep (a sweep whose worker is killed mid-run, then
resumed, must give that sweep's curves).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from algorithms.spec import Activation, PCSpec
from demos._runs import read_curves
from demos.runner import Task, merge, provenance, run_sweep, seeds_from

BASE = PCSpec(sizes=(64, 24, 10), activation=Activation.RELU, inference_steps=10)


def _tasks(epochs: int = 2, variants: tuple[str, ...] = ("pc", "backprop"),
           seeds: tuple[int, ...] = (0, 1), steps: int = 10) -> list[Task]:
    spec = BASE.replace(inference_steps=steps).to_dict()
    prov = provenance("pytest")
    return [Task("pc", v, "digits", "relu", s, epochs, spec, provenance=prov)
            for v in variants for s in seeds]


def _curve(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "wall_seconds"}
            for r in read_curves(path / "curves.csv")]


def test_seeds_take_a_count_or_a_list() -> None:
    assert seeds_from(["3"]) == [0, 1, 2]
    assert seeds_from(["list", "0", "1", "7"]) == [0, 1, 7]
    for bad in (["0"], ["list"], ["list", "1", "1"], ["2", "3"], ["x"]):
        with pytest.raises(ValueError, match="--seeds"):
            seeds_from(bad)


def test_dask_sweep_equals_the_serial_run(tmp_path: Path) -> None:
    tasks = _tasks()
    serial = run_sweep(tasks, tmp_path / "serial", {"command": "t"}, scheduler="none")
    dask = run_sweep(tasks, tmp_path / "dask", {"command": "t"}, scheduler="local", workers=2)
    assert [d["status"] for d in serial] == [d["status"] for d in dask] == ["finished"] * 4
    assert _curve(tmp_path / "serial") == _curve(tmp_path / "dask")
    assert len(_curve(tmp_path / "serial")) == 4 * 2
    # every run folder carries its provenance and its own seed
    doc = json.loads((tmp_path / "dask" / "runs" / tasks[1].key / "run.json").read_text())
    assert doc["provenance"]["seed"] == tasks[1].seed == 1
    assert doc["provenance"]["command"] == "pytest"
    assert "torch" in doc["provenance"]["versions"]
    summary = json.loads((tmp_path / "dask" / "summary.json").read_text())
    assert set(summary["runs"]) == {t.key for t in tasks}


def test_a_killed_worker_loses_nothing(tmp_path: Path) -> None:
    """Kill a worker while it trains: Dask resubmits its run, which resumes from its last
    checkpoint; the curves equal an uninterrupted sweep's."""
    from distributed import Client, LocalCluster

    tasks = _tasks(epochs=6, variants=("pc",), seeds=(0, 1), steps=60)
    run_sweep(tasks, tmp_path / "reference", {"command": "t"}, scheduler="none")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    out = tmp_path / "killed"
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            run_sweep(tasks, out, {"command": "t"}, scheduler=cluster.scheduler_address)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=sweep)
    worker.start()
    killed = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for t in tasks:
                run = out / "runs" / t.key / "run.json"
                lock = out / "runs" / t.key / ".lock"
                if run.exists() and lock.exists():
                    n = len(json.loads(run.read_text())["records"])
                    if 1 <= n < t.epochs:
                        pid = int(lock.read_text().split()[1])
                        os.kill(pid, signal.SIGKILL)
                        killed = True
                        break
            time.sleep(0.01)
        worker.join(timeout=300)
    finally:
        client.close()
        cluster.close()
    assert killed, "no run was caught mid-way"
    assert not errors, errors
    assert _curve(out) == _curve(tmp_path / "reference")


def test_two_sweeps_into_one_folder(tmp_path: Path) -> None:
    """Two processes write into one --out at once (overlapping runs): each run is trained
    once, and the merged curves hold every run, equal to a serial sweep of all of them."""
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "demos.relaxations", "--epochs", "3", "--hidden", "24",
           "--inference-steps", "10", "--scheduler", "none", "--no-progress", "--no-plot",
           "--out", str(out), "--seeds", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen(cmd + ["--variants", *v], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for v in (("pc", "backprop"), ("backprop", "learned-backward"))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    # the process that found a run busy merged before it finished: merge once more
    merge(out, {"command": "t"})
    serial = tmp_path / "serial"
    tasks = [t for t in _tasks(epochs=3, variants=("pc", "backprop", "learned-backward"))]
    run_sweep(tasks, serial, {"command": "t"}, scheduler="none")
    got = sorted(_curve(out), key=lambda r: (r["variant"], r["seed"], r["epoch"]))
    want = sorted(_curve(serial), key=lambda r: (r["variant"], r["seed"], r["epoch"]))
    assert got == want
    json.loads((out / "summary.json").read_text())  # complete, valid JSON
    assert not list(out.glob("runs/*/.lock"))


def test_activation_relaxation_runs_through_the_runner(tmp_path: Path) -> None:
    from demos.activation_relaxation import main

    out = tmp_path / "ar"
    assert main(["--epochs", "1", "--hidden", "16", "--inference-steps", "5", "--variants",
                 "backprop", "ar", "--seeds", "list", "3", "5", "--scheduler", "none",
                 "--no-progress", "--no-plot", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["variants"]) == {"backprop", "ar"}
    assert summary["seeds"] == [3, 5]
    assert {r["seed"] for r in summary["variants"]["ar"]["runs"]} == {3, 5}
    probes = (out / "probes.csv").read_text().splitlines()
    assert probes[0].startswith("dataset,variant,seed,epoch,angle_W0")
    rows = [r.split(",") for r in probes[1:]]
    assert len(rows) == 4  # 2 variants x 2 seeds x 1 epoch
    assert all(float(r[4]) >= 0 for r in rows if r[1] == "ar")
    assert all(r[4] == "" for r in rows if r[1] == "backprop")  # nothing to probe


def test_epoch_table_gives_mean_and_spread_over_seeds(tmp_path: Path) -> None:
    import csv
    import statistics

    tasks = _tasks(epochs=2, variants=("backprop",), seeds=(0, 1, 2))
    run_sweep(tasks, tmp_path, {"command": "t"}, scheduler="none")
    curves = read_curves(tmp_path / "curves.csv")
    with open(tmp_path / "epochs.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["epoch"], r["seeds"]) for r in table] == [("1", "3"), ("2", "3")]
    for row in table:
        accs = [float(c["test_accuracy"]) for c in curves if c["epoch"] == row["epoch"]]
        assert float(row["test_accuracy_mean"]) == pytest.approx(statistics.fmean(accs), rel=1e-5)
        assert float(row["test_accuracy_std"]) == pytest.approx(statistics.pstdev(accs),
                                                                rel=1e-4, abs=1e-6)


def test_pc_cnn_runs_through_the_runner_and_resumes(tmp_path: Path, shared_data_dir: Path
                                                   ) -> None:
    """PC-CNN and its backprop twin as separate runs: the twin's loss and accuracy equal an
    independent autograd SGD loop on the same batches; a rerun with more epochs resumes."""
    import torch

    from algorithms.data import load_dataset, pad_images
    from algorithms.graph import Loss, per_sample_loss
    from algorithms.graph_models import cnn_graph
    from algorithms.training import epoch_order
    from demos.pc_cnn import main

    out = tmp_path / "cnn"
    common = ["--train-subset", "128", "--steps", "3", "--probe-every", "1",
              "--scheduler", "none", "--out", str(out), "--data-dir", str(shared_data_dir)]
    assert main(["--epochs", "1", *common]) == 0
    assert main(["--epochs", "2", *common]) == 0  # resumes epoch 2 only
    rows = [r for r in read_curves(out / "curves.csv") if r["variant"] == "backprop"]
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # the oracle: plain autograd SGD on the same graph, batches and clamp
    data = pad_images(load_dataset("mnist", shared_data_dir), 32)
    g = cnn_graph(in_channels=1, n_classes=10, seed=0)
    leaves = {k: v.clone().requires_grad_(True) for k, v in g.params.items()}
    for epoch in (1, 2):
        total = 0.0
        order = epoch_order(0, epoch, 128)
        for i in range(0, 128, 64):
            idx = order[i:i + 64]
            x = data.train_x[idx].reshape(-1, 1, 32, 32)
            t = torch.nn.functional.one_hot(data.train_y[idx], 10).float()
            y = g.forward({"x": x}, leaves)["out"]
            loss = per_sample_loss(Loss.MSE_SUM, y, t).sum()
            total += float(loss)
            grads = torch.autograd.grad(loss, list(leaves.values()))
            with torch.no_grad():
                for v, gr in zip(leaves.values(), grads):
                    v.add_(gr.clamp(-50, 50), alpha=-1e-4)
        assert float(rows[epoch - 1]["energy"]) == pytest.approx(total / 128, rel=1e-4)
    assert (out / "divergence.csv").exists() and (out / "curves.png").exists()


def test_reproduce_lists_every_group_and_indexes_runner_results(tmp_path: Path, capsys) -> None:
    from demos.reproduce import GROUPS, main, write_index

    assert main(["--quick", "--list", "--root", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    for g in GROUPS:
        assert g.name in listed
    assert "--scheduler local" in listed and f"--out {tmp_path}" in listed
    # a runner group's folder: the index shows its mean +- std over seeds
    tasks = _tasks(epochs=1, variants=("backprop",), seeds=(0, 1))
    run_sweep(tasks, tmp_path / "relaxations" / "digits-relu-fixed", {"command": "t"},
              scheduler="none")
    index = write_index(tmp_path, tuple(g for g in GROUPS if g.name == "relaxations"), True)
    row = next(line for line in index.read_text().splitlines() if "digits-relu-fixed" in line)
    summary = json.loads((tmp_path / "relaxations" / "digits-relu-fixed" /
                          "summary.json").read_text())["variants"]["backprop"]
    assert f"{100 * summary['final_test_accuracy_mean']:.2f} ± " in row and "(2 seed(s))" in row
    assert "not run yet" in index.read_text()  # the other folders


def test_committed_runs_without_checkpoints_are_not_retrained(tmp_path: Path) -> None:
    """Results are committed without checkpoints: an ended run's run.json stands; a run
    asked for more epochs, or made by another task, trains again."""
    tasks = _tasks(epochs=2, variants=("backprop",), seeds=(0,))
    run_sweep(tasks, tmp_path, {"command": "t"}, scheduler="none")
    before = _curve(tmp_path)
    run_json = tmp_path / "runs" / tasks[0].key / "run.json"
    stamp = run_json.stat().st_mtime_ns
    (tmp_path / "runs" / tasks[0].key / "checkpoint.pt").unlink()
    docs = run_sweep(tasks, tmp_path, {"command": "t"}, scheduler="none")
    assert docs[0]["status"] == "finished" and run_json.stat().st_mtime_ns == stamp
    assert _curve(tmp_path) == before
    longer = _tasks(epochs=3, variants=("backprop",), seeds=(0,))
    run_sweep(longer, tmp_path, {"command": "t"}, scheduler="none")
    assert len(json.loads(run_json.read_text())["records"]) == 3
