"""The circuit behind the training loop's model interface (``algorithms.training.Model``).

:func:`build_circuit_model` builds, for a PC or AR variant of :mod:`algorithms.variants`, the
Brian2 circuit from exactly the spec and initial weights the torch twin would get, so
``algorithms.training.fit`` (and the demos' checkpointing) train either backend unchanged.
One ``train_batch`` is one Brian2 ``run()`` over the whole minibatch: every sample settles,
relaxes and adds its Hebbian products to the synapses' accumulators, and the summed update is
applied at the end of the batch, the same arithmetic as the torch backend's batch-summed
update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from algorithms.graph import Loss
from algorithms.pc import init_params, load_named_tensors
from algorithms.spec import PCSpec
from algorithms.variants import ARVariant, Variant, variant_spec

from .ar import ARCircuit, build_ar_circuit
from .base import Circuit
from .drive import CircuitError, Kernel, Target
from .pc import PCCircuit, build_pc_circuit
from .spiking import SpikeCoding, SpikingARCircuit, SpikingPCCircuit

__all__ = ["CircuitModel", "build_circuit_model"]


class CircuitModel:
    """A circuit with ``train_batch`` / ``predict`` / ``state_dict`` / ``load_state_dict``.

    ``train_batch`` returns the batch's summed energy at the relaxed state (PC:
    ``1/2 sum ||eps||^2`` read from the error populations) or its summed loss (AR)."""

    def __init__(self, circuit: Circuit) -> None:
        self.circuit = circuit
        self.spec = circuit.spec

    def train_batch(self, x0: Tensor, target: Tensor) -> float:
        c = self.circuit
        if isinstance(c, (PCCircuit, SpikingPCCircuit)):
            pops = {f"E{l}": ("eps",) for l in range(1, self.spec.n_layers + 1)}
            mons = c.relaxed_monitors(pops)
            c.run(x0, target, monitors=mons)
            total = sum(float((np.asarray(m.eps)[:, 1:] ** 2).sum()) for m in mons.values())
            value = 0.5 * total
        else:
            assert isinstance(c, (ARCircuit, SpikingARCircuit))
            L = self.spec.n_layers
            mons = c.relaxed_monitors({f"X{L}": ("xbar",)})
            c.run(x0, target, monitors=mons)
            y = np.asarray(mons[f"X{L}"].xbar).T[1:]
            t = target.detach().double().numpy()
            scale = 1.0 if c.loss is Loss.MSE_SUM else 0.5
            value = scale * float(((y - t) ** 2).sum())
        if not all(bool(torch.isfinite(p).all()) for p in c.get_params().tensors().values()):
            return float("nan")
        return value

    def predict(self, x0: Tensor) -> Tensor:
        return torch.from_numpy(self.circuit.predict(x0))

    def state_dict(self) -> dict[str, Any]:
        return {"params": {k: v.clone() for k, v in self.circuit.get_params().tensors().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        p = self.circuit.get_params()
        load_named_tensors(p, {k: v.double() for k, v in state["params"].items()})
        self.circuit.set_params(p)


def build_circuit_model(variant: Variant | ARVariant, base: PCSpec, *,
                        target: Target = Target.CYTHON, kernel: Kernel = Kernel.BRIAN2,
                        loss: Loss = Loss.MSE_SUM,
                        coding: SpikeCoding | None = None) -> CircuitModel:
    """The circuit twin of ``build_model(variant, base)``: same spec, same initial weights
    (spiking with a ``coding``). Backprop has no circuit (raises :class:`CircuitError`)."""
    if variant in (Variant.BACKPROP, ARVariant.BACKPROP):
        raise CircuitError("backprop has no neuron circuit; train it with the torch backend")
    spec = variant_spec(variant, base)
    params = init_params(spec)
    if isinstance(variant, ARVariant):
        return CircuitModel(build_ar_circuit(spec, params, loss=loss, target=target,
                                             kernel=kernel, name="ar" if coding is None
                                             else "sar", coding=coding))
    return CircuitModel(build_pc_circuit(spec, params, target=target, kernel=kernel,
                                         name="pc" if coding is None else "spc", coding=coding))
