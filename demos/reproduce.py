"""Reproduce every figure group, then write an index linking each thesis figure to its files.

    python -m demos.reproduce --quick                   # reduced epochs and subsets
    python -m demos.reproduce --root results            # the full runs (hours; resumable)
    python -m demos.reproduce --groups pc_cnn spiking   # some groups only
    python -m demos.reproduce --list                    # what each group runs

Each group is one or more demo commands. The multi-seed groups (relaxations, activation
relaxation, PC-CNN, spiking) go through the sweep runner (``demos/runner.py``), so a rerun
resumes where the last one stopped and ``--scheduler``/``--workers`` apply to them. Every
group writes under ``<root>/<its folder>``; ``<root>/INDEX.md`` lists, per thesis figure,
the command, the folder and its headline numbers (mean +- std over seeds where there are
seeds). The default root is the git-ignored ``runs/reproduce``; committed results are made
with ``--root results``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._runs import atomic_write_text


@dataclass(frozen=True)
class Step:
    """One demo invocation: ``python -m demos.<module> <args> --out <root>/<folder>``."""

    module: str
    args: tuple[str, ...]
    folder: str
    runner: bool = False  # takes --scheduler/--workers

    def argv(self, root: Path, scheduler: str, workers: int | None) -> list[str]:
        out = ["--out", str(root / self.folder)]
        if self.module == "spiking":  # subcommand first
            out = [self.args[0], *out]
            rest = list(self.args[1:])
        else:
            rest = list(self.args)
        extra = []
        if self.runner:
            extra = ["--scheduler", scheduler] + ([] if workers is None else
                                                  ["--workers", str(workers)])
        return out + rest + extra


@dataclass(frozen=True)
class Group:
    name: str
    figures: str
    what: str
    full: tuple[Step, ...]
    quick: tuple[Step, ...]


def _relaxations(quick: bool) -> tuple[Step, ...]:
    steps = []
    datasets = ("digits",) if quick else ("mnist", "fashion-mnist")
    size = (("--epochs", "5", "--seeds", "2", "--hidden", "64", "--inference-steps", "20")
            if quick else ("--epochs", "20", "--seeds", "3"))
    for d in datasets:
        for a in ("relu", "tanh"):
            for mode in ("fixed", "recomputed"):
                steps.append(Step("relaxations", ("--dataset", d, "--activation", a,
                                                  "--predictions", mode, *size,
                                                  "--no-progress"),
                                  f"relaxations/{d}-{a}-{mode}", runner=True))
    return tuple(steps)


def _ar(quick: bool) -> tuple[Step, ...]:
    if quick:
        return (Step("activation_relaxation", ("--dataset", "digits", "--variants", "all",
                                               "--epochs", "3", "--seeds", "2", "--hidden",
                                               "64", "32", "--inference-steps", "20",
                                               "--no-progress"),
                     "activation_relaxation/digits", runner=True),)
    return tuple(Step("activation_relaxation", ("--dataset", d, "--activation", a,
                                                "--variants", "all", "--epochs", "10",
                                                "--seeds", "3", "--no-progress"),
                      f"activation_relaxation/{d}-{a}", runner=True)
                 for d in ("mnist", "fashion-mnist") for a in ("relu", "tanh"))


GROUPS: tuple[Group, ...] = (
    Group("relaxations", "Figs 3.17-3.22",
          "supervised PC and its relaxations vs backprop, fixed and recomputed predictions",
          _relaxations(False), _relaxations(True)),
    Group("activation_relaxation", "Figs 6.13-6.16",
          "activation relaxation and R1-R8 vs backprop, with gradient angles",
          _ar(False), _ar(True)),
    Group("pc_cnn", "Figs 6.3-6.4", "PC-CNN vs backprop, per-layer divergence",
          (Step("pc_cnn", ("--dataset", "mnist", "--train-subset", "5000", "--epochs", "5",
                           "--seeds", "3"), "pc_cnn/mnist", runner=True),),
          (Step("pc_cnn", ("--dataset", "mnist", "--train-subset", "256", "--epochs", "1",
                           "--steps", "10", "--seeds", "2"), "pc_cnn/mnist", runner=True),)),
    Group("spiking", "spiking circuits (beyond the thesis)",
          "spiking vs rate circuit vs torch twin on an MNIST subset",
          (Step("spiking", ("learn", "--dataset", "mnist", "--train-subset", "1000",
                            "--test-subset", "500", "--hidden", "100", "--epochs", "3",
                            "--seeds", "3"), "spiking/mnist-pc", runner=True),),
          (Step("spiking", ("learn", "--dataset", "digits", "--train-subset", "128",
                            "--test-subset", "64", "--hidden", "16", "--epochs", "1"),
                "spiking/digits-pc", runner=True),)),
    Group("scalar_graph", "Fig 6.2", "PC on the branching scalar graph vs autograd",
          (Step("scalar_graph", (), "scalar_graph"),), (Step("scalar_graph", (), "scalar_graph"),)),
    Group("rnn", "Figs 6.5-6.6", "RNN trained by PC vs BPTT",
          (Step("rnn_sequences", (), "rnn_sequences"),),
          (Step("rnn_sequences", ("--epochs", "3", "--steps", "20"), "rnn_sequences"),)),
    Group("kalman", "Figs 3.10-3.15", "PC as Kalman filtering, with learned dynamics",
          (Step("kalman", (), "kalman"),),
          (Step("kalman", ("--seeds", "2"), "kalman"),)),
    Group("dynamical", "Figs 3.7-3.9", "dynamical PC in generalised coordinates",
          (Step("dynamical", (), "dynamical"),),
          (Step("dynamical", ("--ticks", "600"), "dynamical"),)),
    Group("generative", "Figs 3.5-3.6 (MNIST in place of CIFAR-10)",
          "hierarchical generative PC: encode, decode, dream",
          (Step("generative", ("--dataset", "mnist", "--epochs", "5"), "generative/mnist"),),
          (Step("generative", ("--dataset", "digits", "--epochs", "2"), "generative/digits"),)),
)


def _headline(folder: Path) -> str:
    """The group's numbers: final test accuracy per variant (mean +- std over seeds) from a
    runner summary, or the keys of a numbers.json/summary.json."""
    summary = folder / "summary.json"
    if summary.exists():
        doc = json.loads(summary.read_text())
        variants = doc.get("variants")
        if isinstance(variants, dict):
            parts = []
            for name, v in variants.items():
                m, s = v.get("final_test_accuracy_mean"), v.get("final_test_accuracy_std")
                n = len(v.get("runs", []))
                if m is None:
                    parts.append(f"{name}: diverged")
                else:
                    parts.append(f"{name} {100 * m:.2f} ± {100 * s:.2f} ({n} seed(s))")
            return "; ".join(parts)
    for name in ("numbers.json", "comparison.json", "summary.json"):
        f = folder / name
        if f.exists():
            return f"see `{name}`"
    return "not run yet"


def write_index(root: Path, groups: tuple[Group, ...], quick: bool) -> Path:
    lines = ["# Index of reproduced figures", "",
             f"Made by `python -m demos.reproduce{' --quick' if quick else ''} --root {root}`. "
             "Each row: the thesis figures, the command (`--out` omitted), the folder, and "
             "the final test accuracy per variant, mean ± std over seeds where the group has "
             "seeds.", "",
             "| group | figures | command | folder | numbers |", "|---|---|---|---|---|"]
    for g in groups:
        for step in (g.quick if quick else g.full):
            folder = root / step.folder
            cmd = f"python -m demos.{step.module} {shlex.join(step.args)}".strip()
            lines.append(f"| {g.name} | {g.figures} | `{cmd}` | [{step.folder}]({step.folder}) "
                         f"| {_headline(folder)} |")
    path = root / "INDEX.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demos.reproduce",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="reduced epochs, subsets and seeds (minutes, not hours)")
    p.add_argument("--root", type=Path, default=Path("runs/reproduce"),
                   help="where every group writes (committed results: --root results)")
    p.add_argument("--groups", nargs="+", default=[g.name for g in GROUPS],
                   choices=[g.name for g in GROUPS])
    p.add_argument("--scheduler", default="local", help="for the runner groups (see sweeps)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--list", action="store_true", help="print the commands and exit")
    args = p.parse_args(argv)
    chosen = tuple(g for g in GROUPS if g.name in args.groups)
    if args.list:
        for g in chosen:
            for step in (g.quick if args.quick else g.full):
                print(f"{g.name:<22} python -m demos.{step.module} "
                      f"{shlex.join(step.argv(args.root, args.scheduler, args.workers))}")
        return 0
    failed = []
    t0 = time.perf_counter()
    for g in chosen:
        for step in (g.quick if args.quick else g.full):
            step_argv = step.argv(args.root, args.scheduler, args.workers)
            print(f"\n== {g.name} ({g.figures}): python -m demos.{step.module} "
                  f"{shlex.join(step_argv)}", flush=True)
            module = importlib.import_module(f"demos.{step.module}")
            try:
                rc = module.main(step_argv)
            except KeyboardInterrupt:
                print("\ninterrupted: rerun the same command to resume", file=sys.stderr)
                write_index(args.root, chosen, args.quick)
                return 130
            except Exception as exc:  # noqa: BLE001 - one group's failure must not stop the rest
                import traceback

                traceback.print_exc()
                rc = f"{type(exc).__name__}: {exc}"
            if rc:
                failed.append(f"{g.name}: demos.{step.module}: {rc}")
    index = write_index(args.root, chosen, args.quick)
    print(f"\nwrote {index} in {time.perf_counter() - t0:.0f} s")
    for f in failed:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
