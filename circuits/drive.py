"""How a circuit is driven through many samples inside one Brian2 ``run()``.

One sample occupies ``period = settle + relax + 1`` time steps of length :data:`STEP`:

====================  ======================================================================
steps                 what happens
====================  ======================================================================
``settle``            the feedforward sweep: value neurons copy their predictions, one
                      layer per step (``L - 1`` steps reach the top hidden layer)
``relax``             ``T`` Jacobi inference steps (``tau_v = STEP / gamma``)
1 (*hold*)            nothing moves; every summed input is recomputed at the relaxed values
====================  ======================================================================

Learning for sample ``k`` runs at the ``start`` slot of the first step of sample ``k + 1``
(``t = (k + 1) * period``), before anything of the new sample has been computed: each
plastic synapse adds its local product to ``dw_acc``; at the end of a batch it applies
``w <- w (1 - eta lambda) + eta clip(dw_acc)`` and clears ``dw_acc``. A run of ``n`` samples
therefore lasts ``n * period + 1`` steps; the last step is a pure hold. Clamped inputs follow
their ``TimedArray`` in the ``groups`` slot, so the learning step still sees the previous
sample's input and label.

Brian2's schedule in one step (``when='groups'`` unless stated; ties never matter):

=====  ====================================================================================
order  objects
=====  ====================================================================================
start  learning (``run_regularly`` every ``period``, order -3 synapses, -2 biases); the
       relaxed-state monitors (order -20) read the state before it
-40    clamped value groups take the new sample's data
-30    summed inputs of error neurons (PC) or forward inputs (AR): read value states only
-28    PC with dense ``psi`` on the prediction (``PsiPlacement.PREDICTION``) only: error
       neurons store their prediction ``mu = f(a)`` from the -30 sums
-27    the same circuits only: the summed ``psi mu`` of each hidden error population, read
       from the predictions stored at -28
-25    error neurons store their outputs (``eps``, ``f'(a) eps``, ``f(a)``); AR units their
       gain-weighted activities
-20    summed inputs of value neurons (bottom-up errors, own error, prediction): read the
       error subexpressions, computed from the -30 sums of this step
0      value-neuron state updates (Euler)
=====  ====================================================================================

So every quantity in a step is computed from the values at the start of the step: exactly the
Jacobi iteration of :func:`algorithms.pc.inference_step` and :func:`algorithms.ar.ar_step`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import brian2 as b2
import numpy as np

__all__ = ["CircuitError", "Kernel", "Phases", "STEP", "Target", "builds_on_target",
           "drive_namespace",
           "check_target_kernel", "gate_arrays", "order_summed", "codegen_target"]

STEP = 0.1 * b2.ms
"""One inference iteration in simulated time."""

ORDER_CLAMPED = -40
ORDER_STAGE1 = -30
ORDER_PREDICTION = -28
"""PC with ``psi`` on the prediction: error neurons store ``mu`` before the ``psi`` sum."""
ORDER_PSI = -27
"""PC with ``psi`` on the prediction: the summed ``psi mu`` (reads the stored ``mu``)."""
ORDER_STORE = -25
ORDER_STAGE2 = -20
ORDER_MONITOR = -20


class CircuitError(ValueError):
    """A spec, option or input the circuit backend cannot build or run."""


class Target(Enum):
    """Brian2 code-generation target."""

    NUMPY = "numpy"
    CYTHON = "cython"
    CPP_STANDALONE = "cpp_standalone"


class Kernel(Enum):
    """How dense pathways are computed: Brian2 ``Synapses`` with summed variables (runs on
    every target), or numba kernels in ``NetworkOperation``s (runtime targets only; 3-10x
    faster on wide layers)."""

    BRIAN2 = "brian2"
    NUMBA = "numba"


@dataclass(frozen=True)
class Phases:
    """Steps per sample: ``settle`` (feedforward sweep), ``relax`` (inference), ``hold``
    (rate circuits: one step; spiking circuits: the readout and plasticity window)."""

    settle: int
    relax: int
    hold: int = 1

    @property
    def period(self) -> int:
        return self.settle + self.relax + self.hold

    def holding(self, n: int, capacity: int | None = None) -> np.ndarray:
        """The ``holding`` gate per step (1 in every sample's hold steps), as :meth:`arrays`."""
        one = np.zeros(self.period)
        one[self.settle + self.relax:] = 1.0
        rest = np.zeros(((capacity or n) - n) * self.period + 1)
        return np.concatenate([np.tile(one, n), rest])

    def arrays(self, n: int, capacity: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``settling`` and ``relaxing`` gates per step for ``n`` samples, then zeros (all
        hold) up to ``capacity`` samples and one final step."""
        one = np.zeros(self.period)
        settling, relaxing = one.copy(), one.copy()
        settling[: self.settle] = 1.0
        relaxing[self.settle: self.settle + self.relax] = 1.0
        rest = np.zeros(((capacity or n) - n) * self.period + 1)
        return (np.concatenate([np.tile(settling, n), rest]),
                np.concatenate([np.tile(relaxing, n), rest]))


def gate_arrays(n: int, batch_size: int, learn: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample-boundary gates (index ``m`` = start of sample ``m``; ``m = n`` is the end):
    accumulate the update of sample ``m - 1``, and apply the batch at batch ends."""
    acc = np.zeros(n + 1)
    apply = np.zeros(n + 1)
    if learn:
        acc[1:] = 1.0
        m = np.arange(n + 1)
        apply[(m > 0) & ((m % batch_size == 0) | (m == n))] = 1.0
    return acc, apply


def drive_namespace(phases: Phases, inputs: dict[str, np.ndarray], *, acc: np.ndarray,
                    apply: np.ndarray, learn_period: int,
                    step: b2.Quantity = STEP) -> dict[str, object]:
    """The run namespace: phase gates per step, learning gates per ``learn_period`` steps
    (``acc``/``apply``, from :func:`gate_arrays`) and one ``TimedArray`` per clamped
    population (``inputs[name]``: ``n x width``; its last row is repeated for the final
    hold step)."""
    n = next(iter(inputs.values())).shape[0]
    cap = capacity(n)
    settling, relaxing = phases.arrays(n, cap)
    period = phases.period * step
    ns: dict[str, object] = {
        "settling": b2.TimedArray(settling, dt=step, name="settling"),
        "relaxing": b2.TimedArray(relaxing, dt=step, name="relaxing"),
        "acc_gate": b2.TimedArray(_pad(acc, cap * phases.period // learn_period + 2),
                                  dt=learn_period * step, name="acc_gate"),
        "apply_gate": b2.TimedArray(_pad(apply, cap * phases.period // learn_period
                                         + 2), dt=learn_period * step, name="apply_gate"),
        "step": step,
    }
    for name, values in inputs.items():
        v = np.asarray(values, dtype=np.float64)
        rows = np.vstack([v, np.repeat(v[-1:], cap + 1 - n, axis=0)])
        ns[name] = b2.TimedArray(rows, dt=period, name=name)
    return ns


def capacity(n: int) -> int:
    """Rows reserved for ``n`` samples: the next power of two. ``TimedArray`` sizes are part
    of the generated code, so padding keeps the Cython cache hit for every batch size up to
    the same power of two instead of compiling anew for each ``n``."""
    return 1 << max(n - 1, 0).bit_length()


def _pad(a: np.ndarray, length: int) -> np.ndarray:
    """``a`` followed by zeros (gates beyond the run are off)."""
    out = np.zeros(max(length, len(a)))
    out[: len(a)] = a
    return out


STAGE2_INPUTS = frozenset({"fb", "own", "pred"})
"""Summed inputs that read error subexpressions (or AR gains) computed at stage 1."""


def order_summed(synapses: b2.Synapses, stage2: frozenset[str] = STAGE2_INPUTS) -> None:
    """Schedule every summed-variable updater of ``synapses``: inputs named in ``stage2``
    at stage 2, all others at stage 1 (see the table)."""
    for key, updater in synapses.summed_updaters.items():
        base = key.removesuffix("_pre").removesuffix("_post")
        updater.order = ORDER_STAGE2 if base in stage2 else ORDER_STAGE1


def check_target_kernel(target: Target, kernel: Kernel) -> None:
    """Reject a wrong type, and numba kernels on the C++ standalone device (which silently
    drops the ``NetworkOperation``s they run in)."""
    if not isinstance(target, Target):
        raise CircuitError(f"target: must be a Target, got {target!r}")
    if not isinstance(kernel, Kernel):
        raise CircuitError(f"kernel: must be a Kernel, got {kernel!r}")
    if kernel is Kernel.NUMBA and target is Target.CPP_STANDALONE:
        raise CircuitError("kernel: numba kernels run in NetworkOperations, which the C++ "
                           "standalone device silently drops; use Kernel.BRIAN2")


@contextlib.contextmanager
def codegen_target(target: Target) -> Iterator[None]:
    """Select a runtime code-generation target for the duration of a run, then restore the
    previous preference (no global state is left changed)."""
    if target is Target.CPP_STANDALONE:
        raise CircuitError("cpp_standalone is driven by circuits.standalone.run_standalone")
    old = b2.prefs.codegen.target
    b2.prefs.codegen.target = target.value
    try:
        yield
    finally:
        b2.prefs.codegen.target = old


_F = TypeVar("_F", bound=Callable[..., Any])


def builds_on_target(builder: _F) -> _F:
    """Run a circuit builder under its ``target`` argument's code-generation preference.
    Creating synapses generates code too; without this it would use Brian2's default
    (Cython) even for a numpy-target circuit, compiling one extension per pathway on a cold
    cache. The standalone device and invalid targets are left to the builder."""
    sig = inspect.signature(builder)

    @functools.wraps(builder)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        target = bound.arguments.get("target")
        runtime = isinstance(target, Target) and target is not Target.CPP_STANDALONE
        with codegen_target(target) if runtime else contextlib.nullcontext():
            return builder(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
