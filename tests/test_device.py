"""Devices and torch conventions of the rate backend (issue 14).

Oracles: torch's own generator draws (seeded CPU reproducibility), torch's ``nn.Module``
machinery (``state_dict``, ``.to``, ``torch.load(weights_only=True)``), and a dispatch-mode
audit that sees the device of every tensor every aten op produces, so a tensor created on
the CPU while the model lives elsewhere cannot slip through.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from algorithms.ar import ActivationRelaxationNetwork, ar_relax, ar_update
from algorithms.backprop import BackpropNetwork, gradients_and_loss
from algorithms.device import generator_on, resolve_device
from algorithms.graph import Loss
from algorithms.pc import (PredictiveCodingNetwork, apply_update, energy, init_params, relax,
                           weight_update)
from algorithms.spec import (Activation, BackwardPathway, DerivativeUse, ErrorConnections,
                             ErrorToValue, HiddenInit, PCSpec, PsiInit, PsiPlacement,
                             Relaxations)

SIZES = (6, 5, 4, 3)


class DeviceAudit(TorchDispatchMode):
    """Records every device any aten op's outputs land on."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: set[str] = set()
        self.ops_on: dict[str, list[str]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.devices.add(t.device.type)
                self.ops_on.setdefault(t.device.type, []).append(str(func))
        return out


PC_CASES = [
    Relaxations(),
    Relaxations(backward=BackwardPathway.LEARNED, derivative=DerivativeUse.DROPPED_EVERYWHERE,
                error_connections=ErrorConnections.LEARNED_PSI),
    Relaxations(backward=BackwardPathway.RANDOM, error_connections=ErrorConnections.LEARNED_PSI,
                error_to_value=ErrorToValue.PSI_TRANSPOSE, psi_placement=PsiPlacement.VALUE),
]


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("relaxations", PC_CASES, ids=["pc", "fully-relaxed", "fa-psi-value"])
def test_pc_step_never_leaves_the_meta_device(relaxations: Relaxations, fixed: bool) -> None:
    spec = PCSpec(sizes=SIZES, activation=Activation.TANH, relaxations=relaxations,
                  fixed_predictions=fixed, hidden_init=HiddenInit.RANDOM,
                  psi_init=PsiInit.IDENTITY_NOISE, inference_steps=3, output_precision=2.0)
    net = PredictiveCodingNetwork(spec, device="meta")
    assert {p.device.type for p in net.parameters()} == {"meta"}
    x0 = torch.empty(4, SIZES[0], device="meta")
    t = torch.empty(4, SIZES[-1], device="meta")
    audit = DeviceAudit()
    with audit, torch.no_grad():
        r = relax(net.params, spec, x0, t, generator=net.generator)
        energy(net.params, spec, r.x, r.forward)
        apply_update(net.params, spec, weight_update(net.params, spec, r.x, r.forward))
    assert audit.devices == {"meta"}, audit.ops_on.get("cpu")


def test_ar_and_backprop_never_leave_the_meta_device() -> None:
    spec = PCSpec(sizes=SIZES, activation=Activation.TANH, inference_steps=3,
                  relaxations=Relaxations(backward=BackwardPathway.LEARNED))
    ar = ActivationRelaxationNetwork(spec, device="meta")
    bp = BackpropNetwork(spec, device="meta")
    x0 = torch.empty(4, SIZES[0], device="meta")
    t = torch.empty(4, SIZES[-1], device="meta")
    audit = DeviceAudit()
    with audit:
        with torch.no_grad():
            r = ar_relax(ar.params, spec, x0, t, loss=Loss.MSE_SUM)
            apply_update(ar.params, spec, ar_update(ar.params, spec, r.x, r.forward))
        # the loss value is read back with float(): not possible on meta, so stop before
        with pytest.raises((NotImplementedError, RuntimeError)):
            gradients_and_loss(bp.params, spec, x0, t)
    assert audit.devices == {"meta"}, audit.ops_on.get("cpu")


def test_cpu_parameters_are_the_seeded_cpu_generator_draws() -> None:
    spec = PCSpec(sizes=SIZES, seed=7, init_scale=0.05, dtype="float32",
                  relaxations=Relaxations(backward=BackwardPathway.RANDOM))
    g = torch.Generator().manual_seed(7)
    expected = [torch.randn(o, i, generator=g, dtype=torch.float64).float() * 0.05
                for i, o in zip(SIZES[:-1], SIZES[1:])]
    for net in (PredictiveCodingNetwork(spec), PredictiveCodingNetwork(spec, device="cpu"),
                BackpropNetwork(spec, device=torch.device("cpu"))):
        for w, e in zip(net.params.weights, expected):
            assert w.device.type == "cpu"
            torch.testing.assert_close(w.detach(), e, rtol=0, atol=0)


def test_modules_state_dict_and_weights_only_checkpoints() -> None:
    spec = PCSpec(sizes=SIZES, activation=Activation.TANH, hidden_init=HiddenInit.RANDOM,
                  use_bias=True,
                  relaxations=Relaxations(backward=BackwardPathway.LEARNED,
                                          error_connections=ErrorConnections.LEARNED_PSI))
    net = PredictiveCodingNetwork(spec)
    assert isinstance(net, torch.nn.Module)
    sd = net.state_dict()
    assert set(sd) == {"W0", "W1", "W2", "b0", "b1", "b2", "B1", "B2", "psi1", "psi2",
                       "_extra_state"}
    assert [n for n, _ in net.named_parameters()] == [k for k in sd if k != "_extra_state"]
    assert all(not p.requires_grad for p in net.parameters())
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    other = PredictiveCodingNetwork(spec.replace(seed=spec.seed + 1))
    other.load_state_dict(loaded)
    for a, b in zip(net.parameters(), other.parameters()):
        assert torch.equal(a, b)
    # same generator state: both draw the same random hidden initialisation next
    x0, t = torch.rand(3, SIZES[0]), torch.rand(3, SIZES[-1])
    assert torch.equal(net.relax(x0, t).x[1], other.relax(x0, t).x[1])
    # the PCParams view follows in-place loads and device moves
    assert other.params.psi[1].data_ptr() == other.psi1.data_ptr()  # same storage
    other.to("meta")
    assert other.params.weights[0].device.type == "meta" and other.device.type == "meta"
    other.params.weights[0].add_(1.0)  # the view aliases the parameter
    assert other.params.weights[0].data_ptr() == other.W0.data_ptr()
    with pytest.raises(RuntimeError, match="Missing key"):
        net.load_state_dict({"W0": sd["W0"]})


def test_old_checkpoint_layout_still_loads() -> None:
    spec = PCSpec(sizes=SIZES)
    net = PredictiveCodingNetwork(spec)
    old = {"params": {k: v.clone() + 1 for k, v in net.params.tensors().items()},
           "generator": net.generator.get_state()}
    net.load_state_dict(old)
    assert torch.equal(net.params.weights[0], old["params"]["W0"])
    bp = BackpropNetwork(spec)
    bp.load_state_dict({"params": old["params"]})
    assert torch.equal(bp.params.weights[2], old["params"]["W2"])


def test_batches_follow_the_model_device_and_bad_devices_are_named() -> None:
    spec = PCSpec(sizes=SIZES)
    net = BackpropNetwork(spec, device="meta")
    assert net.predict(torch.rand(2, SIZES[0])).device.type == "meta"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA was asked for"):
            resolve_device("cuda")
    assert generator_on("meta", 0) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_matches_cpu_in_float64() -> None:
    from algorithms.data import load_dataset
    from algorithms.training import fit

    spec = PCSpec(sizes=(64, 20, 10), activation=Activation.TANH, dtype="float64",
                  batch_size=64, inference_steps=20)
    data = load_dataset("digits")
    cpu = PredictiveCodingNetwork(spec)
    gpu = PredictiveCodingNetwork(spec, params=cpu.params.clone(), device="cuda")
    assert {p.device.type for p in gpu.parameters()} == {"cuda"}
    rc, rg = fit(cpu, data, 1, progress=False), fit(gpu, data, 1, progress=False)
    assert abs(rc[0].energy - rg[0].energy) < 1e-9 * max(1.0, abs(rc[0].energy))
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-10, atol=1e-12)


def test_generative_pc_is_a_module_drawn_on_its_device() -> None:
    from algorithms.generative import GenerativePC, GenerativeSpec

    spec = GenerativeSpec(sizes=(8, 5, 3), inference_steps=3)
    cpu = GenerativePC(spec)
    g = torch.Generator().manual_seed(spec.seed)
    first = (torch.randn(8, 5, generator=g, dtype=torch.float64) * spec.init_std).to(
        spec.torch_dtype)
    assert torch.equal(cpu.theta[0], first)
    assert [k for k in cpu.state_dict()] == ["theta0", "theta1"]
    meta = GenerativePC(spec, device="meta")
    batch = torch.rand(4, 8)  # a CPU batch: infer moves it to the model's device
    audit = DeviceAudit()
    with audit:
        mu = meta.infer(batch)
        meta.decode(mu[-1])
    assert audit.devices == {"meta"}, audit.ops_on.get("cpu")
    with pytest.raises(ValueError, match="expected 2 matrices"):
        cpu.theta = [cpu.theta[0]]
