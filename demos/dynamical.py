"""Thesis Figs 3.7-3.9: dynamical predictive coding in generalised coordinates, online.

    python -m demos.dynamical                   # writes results/dynamical/
    python -m demos.dynamical --runs sine full-construct --backend circuit \
        --out results/dynamical/circuit         # the same with the Brian2 circuit

Protocol of spec 3.6: per tick (dt 0.1, 3000 ticks), predict with the shift operator, clamp
the generalised observation (value and first derivative observed; analytic derivatives), run
100 inference steps at 0.05, one weight step at 0.01; random N(0, 0.1^2) start. Models:

* ``sine``, ``sawtooth``, ``square``: one latent level of width 2, 3 orders, linear (Figs
  3.7, 3.8);
* ``full-construct``: 2 latent levels x 3 orders on the sine (Fig 3.9); ``-split``,
  ``-tied`` and ``-split-tied``: the same with ``split_errors`` and/or ``tie_orders``;
* ``sine-lower``, ``full-construct-lower``: lower orders predict higher ones
  (``DynamicsDirection.LOWER_PREDICTS_HIGHER``, the standard generalised motion model).

For each: ``<name>.png`` (input and its derivative with the model's predictions made before
seeing them, the prediction error of every node, the latent values) and ``numbers.json``
(NMSE of the predicted input over the last half; sensory prediction error, first 5% vs last
half).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from algorithms.dynamical import DynamicalPC, DynamicsDirection, LatticeSpec, generalised_wave

from ._runs import atomic_write_text

RUNS: dict[str, tuple[str, tuple[int, ...], dict[str, Any]]] = {
    "sine": ("sine", (1, 2), {}), "sawtooth": ("sawtooth", (1, 2), {}),
    "square": ("square", (1, 2), {}), "full-construct": ("sine", (1, 2, 2), {}),
    "full-construct-split": ("sine", (1, 2, 2), {"split_errors": True}),
    "full-construct-tied": ("sine", (1, 2, 2), {"tie_orders": True}),
    "full-construct-split-tied": ("sine", (1, 2, 2), {"split_errors": True,
                                                      "tie_orders": True}),
    "sine-lower": ("sine", (1, 2), {"direction": DynamicsDirection.LOWER_PREDICTS_HIGHER}),
    "full-construct-lower": ("sine", (1, 2, 2),
                             {"direction": DynamicsDirection.LOWER_PREDICTS_HIGHER})}


def run(name: str, ticks: int, seed: int, learning_rate: float = 0.01,
        backend: str = "numpy") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    kind, sizes, options = RUNS[name]
    spec = LatticeSpec(sizes=sizes, orders=3, seed=seed, learning_rate=learning_rate,
                       **options)
    model = DynamicalPC(spec)
    obs = generalised_wave(kind, ticks)
    pred, errs, vals = [], [], []
    t0 = time.perf_counter()
    for k in range(ticks):
        r = model.tick(obs[k])
        pred.append(r["predicted"][:, 0])
        errs.append(r["errors"])
        vals.append(r["values"])
    p, e = np.array(pred), np.array(errs)
    extra: dict[str, Any] = {}
    if backend == "circuit":  # the Brian2 circuit from the same start; numpy as the reference
        from circuits.drive import Target
        from circuits.pc import build_pc_circuit

        numpy_seconds = time.perf_counter() - t0
        circuit = build_pc_circuit(spec, target=Target.CYTHON, name="dyn_demo")
        chunks = [circuit.run(obs[:250])]  # the first chunk compiles (cached afterwards)
        t1 = time.perf_counter()
        chunks += [circuit.run(obs[k:k + 250]) for k in range(250, ticks, 250)]
        per_tick = (time.perf_counter() - t1) / max(ticks - 250, 1)
        cp = np.concatenate([c["predicted"][:, :, 0] for c in chunks])
        extra = {"max_abs_difference_to_numpy_predicted": float(np.abs(cp - p).max()),
                 "max_abs_difference_to_numpy_values": float(np.abs(
                     np.concatenate([c["values"] for c in chunks]) - np.array(vals)).max()),
                 "numpy_ms_per_tick": 1e3 * numpy_seconds / ticks,
                 "circuit_ms_per_tick_after_compiling": 1e3 * per_tick}
        p, e = cp, np.concatenate([c["errors"] for c in chunks])
        vals = list(np.concatenate([c["values"] for c in chunks]))
    late, early = slice(ticks // 2, None), slice(0, ticks // 20)
    pe = np.abs(p[:, :2] - obs[:, :2]).mean(1)
    numbers = {"nmse_input_last_half": float(((p[late, 0] - obs[late, 0]) ** 2).mean()
                                             / obs[late, 0].var()),
               "mse_derivative_last_half": float(((p[late, 1] - obs[late, 1]) ** 2).mean()),
               "sensory_prediction_error_first_5pct": float(pe[early].mean()),
               "sensory_prediction_error_last_half": float(pe[late].mean()),
               # Fig 3.9: does every node's error (after inference) fall?
               "node_error_last_half_over_first_5pct": [
                   round(float(e[late, j].mean() / max(e[early, j].mean(), 1e-12)), 4)
                   for j in range(e.shape[1])]}
    jumps = np.flatnonzero(np.abs(np.diff(obs[:, 0])) > 0.5) + 1
    if len(jumps):  # Fig 3.8: is the residual error concentrated at the discontinuities?
        near = np.zeros(ticks, bool)
        for j in jumps:
            near[max(j - 3, 0): j + 4] = True
        sq = (p[:, 0] - obs[:, 0]) ** 2
        numbers["share_of_ticks_within_3_of_a_jump_last_half"] = float(near[late].mean())
        numbers["share_of_squared_error_there_last_half"] = float(sq[late][near[late]].sum()
                                                                  / sq[late].sum())
    numbers.update(extra)
    return numbers, {"obs": obs, "pred": p, "errors": e, "values": np.array(vals)}


def figure(name: str, tr: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(14, 6))
    k = np.arange(len(tr["obs"]))
    for j, label in enumerate(("input", "first derivative")):
        a = ax[0, j]
        a.plot(k, tr["obs"][:, j], color="k", lw=2, alpha=0.35, label=label)
        a.plot(k, tr["pred"][:, j], color="tab:red", lw=0.8, label="predicted (before seeing)")
        a.set_title(f"{label} and its prediction", fontsize=9)
        a.legend(fontsize=7)
        z = ax[1, j]
        z.plot(k[-300:], tr["obs"][-300:, j], color="k", lw=2, alpha=0.35)
        z.plot(k[-300:], tr["pred"][-300:, j], color="tab:red", lw=0.9)
        z.set_title(f"{label}: last 300 ticks", fontsize=9)
    ax[0, 2].semilogy(k, np.maximum(tr["errors"], 1e-8), lw=0.6)
    ax[0, 2].set_title("prediction error |eps| of every node (after inference)", fontsize=9)
    ax[1, 2].plot(k, tr["values"], lw=0.6)
    ax[1, 2].set_title("latent values (every level and order)", fontsize=9)
    for a in ax.ravel():
        a.set_xlabel("tick", fontsize=8)
        a.tick_params(labelsize=7)
    fig.suptitle(f"dynamical predictive coding: {name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demos.dynamical", description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--ticks", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=0.01,
                   help="online weight step (spec protocol 0.01; the thesis gives none for "
                        "Figs 3.7-3.8)")
    p.add_argument("--backend", choices=["numpy", "circuit"], default="numpy",
                   help="circuit: the Brian2 rate circuit (cython), checked against numpy")
    p.add_argument("--out", type=Path, default=Path("runs/dynamical"))
    args = p.parse_args(argv)
    if args.ticks < 100:
        print("error: --ticks must be >= 100", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    numbers = {}
    for name in args.runs:
        nums, traces = run(name, args.ticks, args.seed, args.learning_rate, args.backend)
        numbers[name] = nums
        figure(name, traces, args.out / f"{name}.png")
        print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in nums.items()
                                      if isinstance(v, float)), flush=True)
    atomic_write_text(args.out / "numbers.json", json.dumps(
        {"command": "python -m demos.dynamical " + shlex.join(argv if argv is not None
                                                              else sys.argv[1:]),
         "runs": numbers}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
