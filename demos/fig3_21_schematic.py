"""Thesis Fig 3.21: the wiring of two layers, standard PC against fully relaxed PC.

    python -m demos.fig3_21_schematic --out results/relaxations/fig3_21_schematic.png

Drawn from the circuit the project builds (:mod:`circuits.pc`), not from the thesis picture:
value neurons ``x`` and error neurons ``eps`` of layers ``l`` and ``l+1``; standard PC has
one-to-one value-to-error connections and the transpose ``W^T`` carrying the error back;
fully relaxed PC has dense learned error connections ``psi`` on the prediction (the authors'
wiring, ``PsiPlacement.PREDICTION``), separate learned backward weights ``B`` and no ``f'``
in the bottom-up message.
"""

from __future__ import annotations

import argparse
from pathlib import Path

N = 3  # neurons drawn per population


def _layer(ax, y: float, label: str, dense_psi: bool) -> tuple[list[tuple[float, float]],
                                                                list[tuple[float, float]]]:
    """Draw one layer at height ``y``: value neurons above their error neurons, joined one to
    one; with ``dense_psi``, the dense ``psi`` pathway among the error neurons (it carries
    each neuron's prediction ``f(a)`` to the others)."""
    xs = [1.4 + 0.9 * i for i in range(N)]
    yv, ye = y + 0.35, y - 0.35
    for x in xs:
        ax.add_patch(_circle((x, yv), "tab:blue"))
        ax.add_patch(_circle((x, ye), "tab:red"))
        ax.plot([x, x], [yv - 0.12, ye + 0.12], color="0.2", lw=1.2, zorder=1)
    ax.text(0.5, yv, f"$x_{{{label}}}$", va="center", fontsize=12, color="tab:blue")
    ax.text(0.5, ye, f"$\\epsilon_{{{label}}}$", va="center", fontsize=12, color="tab:red")
    if dense_psi:
        for i in range(N):
            for j in range(N):
                if i != j:
                    ax.annotate("", xy=(xs[j], ye - 0.13), xytext=(xs[i], ye - 0.13),
                                arrowprops=dict(arrowstyle="->", color="tab:orange", lw=0.8,
                                                connectionstyle="arc3,rad=0.5"))
    return [(x, yv) for x in xs], [(x, ye) for x in xs]


def _circle(xy: tuple[float, float], color: str):
    from matplotlib.patches import Circle

    return Circle(xy, 0.12, facecolor=color, edgecolor="black", lw=0.8, zorder=3)


def draw(ax, relaxed: bool) -> None:
    v_hi, e_hi = _layer(ax, 3.2, "l", relaxed)
    v_lo, e_lo = _layer(ax, 0.9, "l+1", relaxed)
    for (x0, y0) in v_hi:  # top-down predictions x_l -> eps_{l+1}
        for (x1, y1) in e_lo:
            ax.annotate("", xy=(x1 + 0.05, y1 + 0.14), xytext=(x0 + 0.05, y0 - 0.14),
                        arrowprops=dict(arrowstyle="->", color="tab:green", lw=0.6, alpha=0.7))
    for (x0, y0) in e_lo:  # bottom-up errors eps_{l+1} -> x_l
        for (x1, y1) in v_hi:
            ax.annotate("", xy=(x1 - 0.05, y1 - 0.14), xytext=(x0 - 0.05, y0 + 0.14),
                        arrowprops=dict(arrowstyle="->", color="tab:purple", lw=0.6, alpha=0.7,
                                        ls="--"))
    ax.text(4.3, 2.3, "$W_l$: prediction down", color="tab:green", fontsize=10)
    ax.text(4.3, 1.9, ("$B_l$ learned, no $f'$" if relaxed else "$W_l^T$ with $f'$")
            + ": error up", color="tab:purple", fontsize=10)
    ax.text(4.3, 2.75, ("one-to-one $x \\to \\epsilon$, plus dense\nlearned $\\psi_l$ among "
                        "the errors\n(on the prediction)") if relaxed
            else "one-to-one $x \\to \\epsilon$", fontsize=10,
            color="tab:orange" if relaxed else "black")
    ax.set_title("b) fully relaxed PC" if relaxed else "a) standard PC", fontsize=12)
    ax.set_xlim(0.3, 6.9)
    ax.set_ylim(0.0, 3.9)
    ax.set_aspect("equal")
    ax.axis("off")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/fig3_21_schematic.png"))
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    draw(axes[0], relaxed=False)
    draw(axes[1], relaxed=True)
    fig.suptitle("Fig 3.21: two layers of the circuit (blue: value neurons, red: error neurons)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
