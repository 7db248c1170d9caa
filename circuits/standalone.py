"""Running a circuit on Brian2's C++ standalone device.

Works for every PC and AR configuration built with ``Kernel.BRIAN2``: inputs come from
``TimedArray``s, phases and learning from ``run_regularly`` code and the plasticity is written
in the synapse models, so nothing calls back into Python. ``Kernel.NUMBA`` needs Python
``NetworkOperation``s, which the standalone device silently drops, so it is refused.

The standalone device is global Brian2 state with one build per process run;
:func:`run_standalone` selects it, builds one project in ``directory``, runs it, reads the
results back and restores the runtime device, so callers (and tests) see no leftover state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import brian2 as b2
import numpy as np
import torch

from algorithms.graph import Loss
from algorithms.pc import PCParams
from algorithms.spec import PCSpec

from .ar import build_ar_circuit
from .base import Circuit
from .drive import CircuitError, Target
from .pc import build_pc_circuit
from .spiking import SpikeCoding

__all__ = ["StandaloneResult", "run_standalone"]


@dataclass
class StandaloneResult:
    """Weights after the run and, per population, the relaxed state of each sample."""

    params: PCParams
    relaxed: dict[str, np.ndarray]
    run_seconds: float
    """The simulation's own run time, measured by the binary (no build, compile or I/O)."""


def run_standalone(spec: PCSpec, params: PCParams | None, x: np.ndarray | torch.Tensor,
                   target: np.ndarray | torch.Tensor, *, directory: str | Path,
                   algorithm: str = "pc", learn: bool = True,
                   record: dict[str, tuple[str, ...]] | None = None,
                   loss: Loss = Loss.MSE_SUM,
                   coding: SpikeCoding | None = None) -> StandaloneResult:
    """Build the ``algorithm`` ("pc" or "ar") circuit on the C++ standalone device (spiking
    with a ``coding``), present ``x``/``target`` in one run (learning if ``learn``), and
    return the weights and the relaxed variables named in ``record`` (population ->
    variables; each ``n x width``)."""
    if algorithm not in ("pc", "ar"):
        raise CircuitError(f"algorithm: 'pc' or 'ar', got {algorithm!r}")
    b2.set_device("cpp_standalone", directory=str(directory), build_on_run=False)
    try:
        circuit: Circuit
        if algorithm == "pc":
            circuit = build_pc_circuit(spec, params, target=Target.CPP_STANDALONE,
                                       name="pcsa", coding=coding)
        else:
            circuit = build_ar_circuit(spec, params, target=Target.CPP_STANDALONE, loss=loss,
                                       name="arsa", coding=coding)
        mons = circuit.relaxed_monitors(record or {})
        circuit.run(x, target, learn=learn, monitors=mons)
        b2.device.build(directory=str(directory), compile=True, run=True, with_output=False)
        relaxed = {f"{pop}.{v}": np.asarray(getattr(m, v)).T[1:].copy()
                   for pop, m in mons.items() for v in m.record_variables}
        run_seconds = float(getattr(b2.device, "_last_run_time", float("nan")))
        return StandaloneResult(circuit.get_params(), relaxed, run_seconds)
    finally:
        b2.device.reinit()
        b2.set_device("runtime")
