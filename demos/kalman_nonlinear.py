"""Beyond the thesis (its stated future work): the PC filter on a nonlinear system against
filterpy's extended and unscented Kalman filters.

    python -m demos.kalman_nonlinear            # writes results/kalman_nonlinear/

A pendulum observed through the sine of its angle (``algorithms.kalman.pendulum``; every
filter knows the true model and noise). Over ``--seeds`` runs: RMSE of the angle and the
angular velocity for the EKF and UKF (filterpy) and the PC filter with per-neuron time
constants (10 steps) and in the thesis's plain form (200 steps at the largest stable rate),
both with the true process noise as prior (``PriorPrecision.PROCESS``), and with the process
noise it assumes inflated 100x (the best of x1, x10, x100, x1000, x10000 on seeds 0-4).
Writes ``rmse.json`` and ``pendulum.png`` (seed 0). Needs filterpy (``pip install filterpy``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from algorithms.kalman import NonlinearModel, pc_filter_nonlinear, pendulum

from ._runs import atomic_write_text


def ekf(model: NonlinearModel, y: np.ndarray, mu0: np.ndarray, P0: np.ndarray) -> np.ndarray:
    from filterpy.kalman import ExtendedKalmanFilter

    class _EKF(ExtendedKalmanFilter):  # filterpy's predict is linear: give it f and F
        def predict_x(self, u: Any = 0) -> None:
            self.x = model.f(self.x)  # type: ignore[operator]

    k = _EKF(dim_x=2, dim_z=1)
    k.x, k.P, k.Q, k.R = mu0.copy(), P0.copy(), model.Q, model.R
    out = np.zeros((len(y), 2))
    for t in range(len(y)):
        k.F = model.F(k.x)  # type: ignore[operator]
        k.predict()
        k.update(y[t], HJacobian=model.H, Hx=model.h)
        out[t] = k.x
    return out


def ukf(model: NonlinearModel, y: np.ndarray, mu0: np.ndarray, P0: np.ndarray) -> np.ndarray:
    from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter

    points = MerweScaledSigmaPoints(2, alpha=0.1, beta=2.0, kappa=1.0)
    k = UnscentedKalmanFilter(dim_x=2, dim_z=1, dt=1.0, points=points,
                              fx=lambda x, dt: model.f(x),  # type: ignore[operator]
                              hx=lambda x: model.h(x))  # type: ignore[operator]
    k.x, k.P, k.Q, k.R = mu0.copy(), P0.copy(), model.Q, model.R
    out = np.zeros((len(y), 2))
    for t in range(len(y)):
        k.predict()
        k.update(y[t])
        out[t] = k.x
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demos.kalman_nonlinear",
                                description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps-t", type=int, default=400)
    p.add_argument("--out", type=Path, default=Path("runs/kalman_nonlinear"))
    args = p.parse_args(argv)
    try:
        import filterpy.kalman  # noqa: F401  (checked here, used in ekf and ukf)
    except ImportError:
        print("error: this demo compares against filterpy: pip install filterpy",
              file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    mu0, P0 = np.array([1.0, 0.0]), np.diag([0.5**2, 0.5**2])
    names = ("EKF (filterpy)", "UKF (filterpy)", "PC, per-neuron time constants, 10 steps",
             "PC, plain gradient, 200 steps", "PC, assumed Q x100, 20 steps")
    rmse: dict[str, list[list[float]]] = {n: [] for n in names}
    example: dict[str, np.ndarray] = {}
    for seed in range(args.seeds):
        model, x, y = pendulum(rng=np.random.default_rng(seed), T=args.steps_t)
        Px = np.linalg.inv(model.Q)
        plain_rate = 1.0 / (float(np.max(np.diag(Px))) + float(np.linalg.inv(model.R)[0, 0]))
        est = {names[0]: ekf(model, y, mu0, P0), names[1]: ukf(model, y, mu0, P0),
               names[2]: pc_filter_nonlinear(model, y, mu0, steps=10, rate=0.5),
               names[3]: pc_filter_nonlinear(model, y, mu0, steps=200, rate=plain_rate,
                                             precondition=False),
               names[4]: pc_filter_nonlinear(dataclasses.replace(model, Q=100 * model.Q), y,
                                             mu0, steps=20, rate=0.5)}
        for n, e in est.items():
            rmse[n].append(np.sqrt(((e - x) ** 2).mean(0)).tolist())
        if seed == 0:
            example = {"truth": x, "y": y, **est}
        print(f"seed {seed}: " + "; ".join(f"{n.split(',')[0]} {np.round(rmse[n][-1], 3).tolist()}"
                                            for n in names), flush=True)
    summary = {"command": "python -m demos.kalman_nonlinear " + shlex.join(
                   argv if argv is not None else sys.argv[1:]),
               "components": ["angle", "angular velocity"],
               "mean_rmse": {n: np.mean(v, axis=0).tolist() for n, v in rmse.items()},
               "std_rmse": {n: np.std(v, axis=0).tolist() for n, v in rmse.items()},
               "per_seed_rmse": rmse}
    atomic_write_text(args.out / "rmse.json", json.dumps(summary, indent=2) + "\n")
    plot(example, names, args.out / "pendulum.png")
    for n in names:
        m, s = summary["mean_rmse"][n], summary["std_rmse"][n]
        print(f"{n:<44} angle {m[0]:.4f} ± {s[0]:.4f}   velocity {m[1]:.4f} ± {s[1]:.4f}")
    return 0


def plot(example: dict[str, np.ndarray], names: tuple[str, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 3.6))
    steps = np.arange(len(example["truth"]))
    for i, comp in enumerate(("angle", "angular velocity")):
        ax[i].plot(steps, example["truth"][:, i], color="k", lw=2.5, alpha=0.35, label="truth")
        for n, style in zip(names, ("-", "--", "-", ":", "-.")):
            ax[i].plot(steps, example[n][:, i], ls=style, lw=1, label=n)
        ax[i].set_title(f"pendulum, {comp}", fontsize=10)
        ax[i].set_xlabel("step")
    ax[0].plot(steps, np.arcsin(np.clip(example["y"][:, 0], -1, 1)), ".", ms=2, color="0.6",
               label="arcsin(y)")
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
