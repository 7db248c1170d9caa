"""Thesis Figs 3.10-3.15: predictive coding as Kalman filtering on the accelerating body.

    python -m demos.kalman                      # writes results/kalman/

Simulates the thesis's task (position, velocity, acceleration; decaying control into the
acceleration; random C ~ N(0,1); process noise std 0.1, observation noise std 1; both
filters assume Q = R = I) and writes, for seed 0, the figures, and over ``--seeds`` the numbers
in ``numbers.json`` (RMSE to the true state per component; last-200-step RMSE for the learning
runs; early and late energy for learning C):

* ``fig3_10_truth.png``: true states, control and the three scrambled observation channels;
* ``fig3_11_pc_vs_kalman.png``: PC filter (5 steps at 0.05) vs the exact Kalman filter vs truth;
* ``fig3_12_zoom.png``: steps 600-699, KF vs PC with 5 steps (0.05) and 2 steps (0.07);
* ``fig3_14_learning.png``: from a random A (row 1), or random A and B (row 2), Hebbian
  learning online vs the same random matrices without learning;
* ``fig3_15_learning_C.png``: learning C: the energy falls while the estimates leave the truth.

Known-model filters start each step's inference at the projection ``A mu + B u``; the
learning runs start at the previous estimate (a random A makes the projection blow up, spec
4.4). Every run passes its steps, rate and start explicitly (the thesis's settings), so the
library's defaults (automatic rate, 20 steps) do not change these figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from algorithms.kalman import (FilterResult, Init, PCFilter, PCFilterOptions, StateSpace,
                               Trajectory, accelerating_body, kalman_filter)

from ._runs import atomic_write_text

NAMES = ("position", "velocity", "acceleration")


def rmse(est: np.ndarray, truth: np.ndarray, last: int | None = None) -> list[float]:
    """Per-component RMSE (over the last ``last`` steps); inf where the estimate blew up."""
    e, t = (est, truth) if last is None else (est[-last:], truth[-last:])
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.sqrt(((e - t) ** 2).mean(0))
    return [float(v) if np.isfinite(v) else float("inf") for v in r]


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    model, run = accelerating_body(rng=rng, T=args.steps_t)
    truth = run.x[1:]
    out: dict[str, Any] = {"model": model, "run": run}
    out["kf"] = kalman_filter(model, run.y, run.u)
    proj = Init.PROJECTION
    out["pc5"] = PCFilter(model, PCFilterOptions(steps=5, rate=0.05, init=proj)).run(run.y, run.u)
    out["pc2"] = PCFilter(model, PCFilterOptions(steps=2, rate=0.07, init=proj)).run(run.y, run.u)
    r = np.random.default_rng(10_000 + seed)
    A0, B0 = r.standard_normal((3, 3)), r.standard_normal((3, 1))
    learn = dict(steps=args.learn_steps, rate=args.learn_rate, init=Init.PREVIOUS)
    rates = {"A": 1e-5, "B": 1e-4, "C": 2e-5}
    with np.errstate(over="ignore", invalid="ignore"):
        out["learn_A"] = PCFilter(model, PCFilterOptions(learn="A", learning_rates=rates, **learn),
                                  A=A0).run(run.y, run.u)
        out["fixed_A"] = PCFilter(model, PCFilterOptions(**learn), A=A0).run(run.y, run.u)
        out["learn_AB"] = PCFilter(model, PCFilterOptions(learn="AB", learning_rates=rates,
                                                          **learn), A=A0, B=B0).run(run.y, run.u)
        out["fixed_AB"] = PCFilter(model, PCFilterOptions(**learn), A=A0, B=B0).run(run.y, run.u)
        C0 = r.standard_normal((3, 3))
        T_c = min(1000, args.steps_t)
        out["learn_C"] = PCFilter(model, PCFilterOptions(steps=20, rate=0.01, learn="C",
                                                         init=Init.PREVIOUS,
                                                         learning_rates=rates),
                                  C=C0).run(run.y[:T_c], run.u[:T_c])
    nums: dict[str, Any] = {
        "kalman_rmse": rmse(out["kf"].mu, truth),
        "pc_5_steps_rmse": rmse(out["pc5"].mu, truth),
        "pc_2_steps_rmse": rmse(out["pc2"].mu, truth),
        "observation_only_rmse": rmse(np.linalg.solve(model.C, run.y.T).T, truth),
    }
    for k in ("learn_A", "fixed_A", "learn_AB", "fixed_AB"):
        nums[f"{k}_last200_rmse"] = rmse(out[k].mu, truth, 200)
        nums[f"{k}_first500_rmse"] = rmse(out[k].mu[:500], truth[:500])
    e = out["learn_C"].energy
    nums["learn_C_energy_first50"] = float(np.mean(e[:50]))
    nums["learn_C_energy_last200"] = float(np.mean(e[-200:]))
    nums["learn_C_rmse_first50"] = rmse(out["learn_C"].mu[:50], truth[:50])
    nums["learn_C_rmse_last200"] = rmse(out["learn_C"].mu, truth[:len(e)], 200)
    out["numbers"] = nums
    return out


def figures(res: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model: StateSpace = res["model"]
    run: Trajectory = res["run"]
    truth, steps = run.x[1:], np.arange(len(run.y))

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    for i, n in enumerate(NAMES):
        ax[0].plot(steps, truth[:, i], label=n)
    ax[0].set_title("true state")
    ax[0].legend(fontsize=8)
    ax[1].plot(steps, run.u[:, 0], color="k")
    ax[1].set_title("control input u (into acceleration)")
    ax[2].plot(steps, run.y, lw=0.6)
    ax[2].set_title("observations y = C x + noise (3 channels)")
    for a in ax:
        a.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out / "fig3_10_truth.png", dpi=110)
    plt.close(fig)

    def three(ax_row: Any, series: list[tuple[str, FilterResult | np.ndarray, dict]], sl: slice,
              title: str) -> None:
        for i, n in enumerate(NAMES):
            a = ax_row[i]
            a.plot(steps[sl], truth[sl, i], color="k", lw=2.5, alpha=0.35, label="truth")
            for label, est, style in series:
                mu = est.mu if isinstance(est, FilterResult) else est
                with np.errstate(over="ignore", invalid="ignore"):
                    a.plot(steps[sl], mu[sl, i], label=label, **style)
            a.set_title(f"{title}: {n}", fontsize=9)
            lo, hi = truth[sl, i].min(), truth[sl, i].max()
            pad = 0.6 * (hi - lo) + 1.0
            a.set_ylim(lo - pad, hi + pad)
            a.set_xlabel("step")
        ax_row[0].legend(fontsize=7)

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    three(ax, [("Kalman filter", res["kf"], dict(color="tab:blue", lw=1)),
               ("PC filter, 5 steps", res["pc5"], dict(color="tab:red", lw=1, ls="--"))],
          slice(None), "PC vs Kalman")
    fig.tight_layout()
    fig.savefig(out / "fig3_11_pc_vs_kalman.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    three(ax, [("Kalman filter", res["kf"], dict(color="tab:blue")),
               ("PC, 5 steps (0.05)", res["pc5"], dict(color="tab:red", ls="--")),
               ("PC, 2 steps (0.07)", res["pc2"], dict(color="tab:green", ls=":"))],
          slice(600, 700), "steps 600-699")
    fig.tight_layout()
    fig.savefig(out / "fig3_12_zoom.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(2, 3, figsize=(13, 6.6))
    three(ax[0], [("learning A", res["learn_A"], dict(color="tab:red")),
                  ("random A, no learning", res["fixed_A"], dict(color="tab:gray", ls=":"))],
          slice(None), "learn A")
    three(ax[1], [("learning A and B", res["learn_AB"], dict(color="tab:purple")),
                  ("random A, B, no learning", res["fixed_AB"], dict(color="tab:gray", ls=":"))],
          slice(None), "learn A, B")
    fig.tight_layout()
    fig.savefig(out / "fig3_14_learning.png", dpi=110)
    plt.close(fig)

    lc: FilterResult = res["learn_C"]
    n = len(lc.mu)
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.4))
    for i, name in enumerate(NAMES):
        ax[i].plot(steps[:n], truth[:n, i], color="k", lw=2.5, alpha=0.35, label="truth")
        ax[i].plot(steps[:n], lc.mu[:, i], color="tab:orange", label="learning C")
        ax[i].set_title(f"learning C: {name}", fontsize=9)
        ax[i].set_xlabel("step")
    ax[0].legend(fontsize=7)
    ax[3].semilogy(steps[:n], lc.energy, color="k", lw=0.8)
    ax[3].set_title("energy F_t after inference", fontsize=9)
    ax[3].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out / "fig3_15_learning_C.png", dpi=110)
    plt.close(fig)
    del model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demos.kalman", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps-t", type=int, default=2000, help="time steps per run")
    p.add_argument("--learn-steps", type=int, default=50,
                   help="inference steps per time step in the learning runs (reference: 20)")
    p.add_argument("--learn-rate", type=float, default=0.02,
                   help="inference rate in the learning runs (reference: 0.01)")
    p.add_argument("--out", type=Path, default=Path("runs/kalman"))
    args = p.parse_args(argv)
    if args.seeds < 1 or args.steps_t < 300:
        print("error: need --seeds >= 1 and --steps-t >= 300", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in range(args.seeds):
        res = run_seed(seed, args)
        per_seed.append({"seed": seed, **res["numbers"]})
        if seed == 0:
            figures(res, args.out)
        print(f"seed {seed}: " + ", ".join(
            f"{k} {np.round(v, 2).tolist() if isinstance(v, list) else round(v, 3)}"
            for k, v in res["numbers"].items()), flush=True)
    ratio = [float(np.mean(s["fixed_A_last200_rmse"]) / np.mean(s["learn_A_last200_rmse"]))
             for s in per_seed]
    summary = {"command": "python -m demos.kalman " + shlex.join(argv if argv is not None
                                                                  else sys.argv[1:]),
               "components": NAMES, "per_seed": per_seed,
               "no_learning_over_learning_A_rmse_ratio": ratio,
               "brian2_circuit": circuit_figure(args.out)}
    atomic_write_text(args.out / "numbers.json",
                      json.dumps(summary, indent=2, default=float).replace("Infinity", '"inf"')
                      + "\n")
    print(f"wrote {args.out}/numbers.json and figures")
    return 0


def circuit_figure(out: Path) -> dict[str, float]:
    """The Kalman microcircuit at work over 6 filter steps of the learning-A run, and its
    deviation from the numpy PC filter over 300 steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from circuits.kalman import build_kalman_circuit

    rng = np.random.default_rng(0)
    model, run = accelerating_body(rng=rng, T=300)
    A0 = np.random.default_rng(10_000).standard_normal((3, 3))
    opts = PCFilterOptions(steps=20, rate=0.02, learn="A", init=Init.PREVIOUS)
    ref = PCFilter(model, opts, A=A0)
    want = ref.run(run.y, run.u)
    got = build_kalman_circuit(model, opts, A=A0).run(run.y, run.u)
    small = build_kalman_circuit(model, opts, A=A0, name="kfpic").run(run.y[:6], run.u[:6],
                                                                      monitor=True)
    fig, ax = plt.subplots(1, 4, figsize=(15, 3.2))
    titles = {"V": "value neurons (estimate mu)", "M": "memory neurons (mu_t)",
              "Ez": "sensory errors eps_z", "Ex": "dynamics errors eps_x"}
    for a, (k, title) in zip(ax, titles.items()):
        tr = small.extra[k]
        a.plot(np.arange(tr.shape[1]), tr.T, lw=1)
        for b in range(0, tr.shape[1], opts.steps):
            a.axvline(b, color="0.8", lw=0.8)
        a.set_title(title, fontsize=9)
        a.set_xlabel(f"step ({opts.steps} inference steps per filter step)", fontsize=8)
    fig.suptitle("the Kalman microcircuit at work (learning A, first 6 observations)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "fig_kalman_circuit.png", dpi=110)
    plt.close(fig)
    return {"circuit_vs_numpy_max_abs_estimate_deviation": float(np.abs(got.mu - want.mu).max()),
            "steps_compared": 300}


if __name__ == "__main__":
    raise SystemExit(main())
