"""The fused training steps (issue 14) against the composed pure rules.

``train_batch`` of PC and AR applies its Hebbian products straight into the weights
(``addmm_``) and reads the energy from the same error evaluation. The oracle is the
composition ``apply_update(weight_update(...))`` and ``energy(...)``, whose pieces
``tests/test_pc_rules.py`` and ``tests/test_activation_relaxation.py`` check against
autograd; here, in float64, the fused step must change every synapse the same way and
return the same energy, for every option the fusion branches on. The last test checks the
fused PC step directly against autograd.
"""

from __future__ import annotations

import pytest
import torch

from algorithms.ar import ActivationRelaxationNetwork, ar_relax, ar_update
from algorithms.backprop import gradients
from algorithms.graph import Loss, loss_value
from algorithms.pc import (PredictiveCodingNetwork, apply_update, energy, init_params, relax,
                           weight_update)
from algorithms.spec import (Activation, BackwardPathway, BatchReduction, DerivativeUse,
                             ErrorConnections, ErrorToValue, ForwardPass, PassValue, PCSpec,
                             PsiPlacement, Relaxations)

SIZES = (7, 6, 5, 4)

PC_RELAXATIONS = {
    "pc": Relaxations(),
    "learned-B-kp": Relaxations(backward=BackwardPathway.LEARNED, kp_decay=0.1),
    "fa": Relaxations(backward=BackwardPathway.RANDOM),
    "no-df-inference": Relaxations(derivative=DerivativeUse.DROPPED_IN_INFERENCE),
    "no-df": Relaxations(derivative=DerivativeUse.DROPPED_EVERYWHERE),
    "psi": Relaxations(error_connections=ErrorConnections.LEARNED_PSI),
    "psi-value-T": Relaxations(error_connections=ErrorConnections.LEARNED_PSI,
                               psi_placement=PsiPlacement.VALUE,
                               error_to_value=ErrorToValue.PSI_TRANSPOSE),
}


def _batch(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(9, SIZES[0], generator=g, dtype=torch.float64),
            torch.rand(9, SIZES[-1], generator=g, dtype=torch.float64))


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("name", list(PC_RELAXATIONS))
@pytest.mark.parametrize("extras", [{}, {"use_bias": True, "batch_reduction": BatchReduction.MEAN,
                                         "output_precision": 0.5, "activation": Activation.RELU,
                                         "output_activation": Activation.SIGMOID}],
                         ids=["plain", "bias-mean-precision-sigmoid"])
def test_pc_train_batch_equals_the_composed_rules(name: str, fixed: bool, extras: dict) -> None:
    spec = PCSpec(sizes=SIZES, activation=extras.pop("activation", Activation.TANH),
                  dtype="float64", inference_steps=7, learning_rate=0.05,
                  fixed_predictions=fixed, relaxations=PC_RELAXATIONS[name], **extras)
    x0, t = _batch()
    net = PredictiveCodingNetwork(spec)
    if spec.use_bias:  # non-zero biases, so the bias path is exercised
        for b in net.params.biases:
            b.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    ref = net.params.clone()
    r = relax(ref, spec, x0, t)
    expected_energy = float(energy(ref, spec, r.x, r.forward).sum())
    apply_update(ref, spec, weight_update(ref, spec, r.x, r.forward))
    got = net.train_batch(x0, t)
    assert got == pytest.approx(expected_energy, rel=1e-12)
    for k, v in ref.tensors().items():
        torch.testing.assert_close(net.params.tensors()[k], v, rtol=1e-12, atol=1e-14,
                                   msg=lambda m, k=k: f"{k}: {m}")


AR_RELAXATIONS = {
    "ar": Relaxations(),
    "learned-B": Relaxations(backward=BackwardPathway.LEARNED),
    "fa": Relaxations(backward=BackwardPathway.RANDOM),
    "r7": Relaxations(forward_pass=ForwardPass(gain_in_relaxation=PassValue.CURRENT,
                                               gain_in_update=PassValue.CURRENT)),
    "r8": Relaxations(forward_pass=ForwardPass(presynaptic_in_update=PassValue.CURRENT)),
    "no-df": Relaxations(derivative=DerivativeUse.DROPPED_EVERYWHERE),
}


@pytest.mark.parametrize("relax_input", [False, True])
@pytest.mark.parametrize("name", list(AR_RELAXATIONS))
def test_ar_train_batch_equals_the_composed_rules(name: str, relax_input: bool) -> None:
    r_ = AR_RELAXATIONS[name]
    if relax_input and r_.backward is not BackwardPathway.TRANSPOSE:
        pytest.skip("relax_input needs weight transport")
    spec = PCSpec(sizes=SIZES, activation=Activation.TANH, dtype="float64", use_bias=True,
                  inference_steps=9, learning_rate=0.05, relaxations=r_,
                  batch_reduction=BatchReduction.MEAN)
    x0, t = _batch(4)
    net = ActivationRelaxationNetwork(spec, loss=Loss.MSE_SUM, relax_input=relax_input)
    ref = net.params.clone()
    r = ar_relax(ref, spec, x0, t, loss=Loss.MSE_SUM, relax_input=relax_input)
    expected = float(loss_value(Loss.MSE_SUM, r.forward.values[-1], t))
    apply_update(ref, spec, ar_update(ref, spec, r.x, r.forward, relax_input=relax_input))
    assert net.train_batch(x0, t) == pytest.approx(expected, rel=1e-12)
    for k, v in ref.tensors().items():
        torch.testing.assert_close(net.params.tensors()[k], v, rtol=1e-12, atol=1e-14)


def test_fused_pc_step_is_sgd_on_the_backprop_loss_at_one_step_of_fixed_predictions() -> None:
    """Fixed predictions, hidden values at the forward pass, rate 1 and ``L - 1`` steps: PC's
    update is exactly backprop's (ch3, depth-many steps); the fused step equals SGD on
    autograd's gradient."""
    spec = PCSpec(sizes=SIZES, activation=Activation.TANH, dtype="float64", use_bias=True,
                  fixed_predictions=True, inference_rate=1.0, inference_steps=len(SIZES) - 2,
                  learning_rate=0.05)
    x0, t = _batch(5)
    net = PredictiveCodingNetwork(spec)
    grads = gradients(net.params.clone(), spec, x0, t)
    before = net.params.clone()
    net.train_batch(x0, t)
    for l in range(spec.n_layers):
        torch.testing.assert_close(net.params.weights[l],
                                   before.weights[l] - spec.learning_rate * grads.weights[l],
                                   rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(net.params.biases[l],
                                   before.biases[l] - spec.learning_rate * grads.biases[l],
                                   rtol=1e-12, atol=1e-14)
