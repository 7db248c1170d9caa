"""Invalid specs are rejected at construction, naming the field; bad batches are refused."""

from __future__ import annotations

import math

import pytest
import torch

from algorithms.pc import PredictiveCodingNetwork
from algorithms.backprop import BackpropNetwork
from algorithms.spec import (Activation, BackwardPathway, ErrorConnections, ErrorToValue,
                             PCSpec, Relaxations, SpecError)


@pytest.mark.parametrize("field,value", [
    ("sizes", (784,)),
    ("sizes", (784, 0, 10)),
    ("sizes", [784, 10]),
    ("sizes", (784, 2.5, 10)),
    ("activation", "relu"),
    ("inference_rate", 0.0),
    ("inference_rate", 1.5),
    ("inference_rate", math.nan),
    ("inference_steps", -1),
    ("inference_steps", 2.0),
    ("learning_rate", -1e-3),
    ("learning_rate", math.inf),
    ("batch_size", 0),
    ("label_smoothing", 1.0),
    ("label_smoothing", -0.1),
    ("update_clamp", 0.0),
    ("init_scale", 0.0),
    ("seed", -1),
    ("dtype", "float16"),
    ("use_bias", 1),
    ("relaxations", "learned"),
])
def test_invalid_values_name_the_field(field, value):
    with pytest.raises(SpecError, match=f"^{field}:"):
        PCSpec(**{field: value})


def test_invalid_relaxation_combinations():
    with pytest.raises(SpecError, match="^kp_decay:"):
        Relaxations(kp_decay=0.1)  # decay without learned backward weights
    with pytest.raises(SpecError, match="^error_to_value:"):
        Relaxations(error_to_value=ErrorToValue.PSI_TRANSPOSE)
    with pytest.raises(SpecError, match="^backward:"):
        Relaxations(backward="learned")  # type: ignore[arg-type]
    ok = Relaxations(backward=BackwardPathway.LEARNED, kp_decay=0.1,
                     error_connections=ErrorConnections.LEARNED_PSI)
    assert ok.has_psi and ok.has_backward_weights


def test_replace_validates_and_reaches_relaxation_fields():
    spec = PCSpec().replace(backward=BackwardPathway.LEARNED, activation=Activation.TANH)
    assert spec.relaxations.backward is BackwardPathway.LEARNED
    with pytest.raises(SpecError, match="^inference_steps:"):
        spec.replace(inference_steps=-3)
    with pytest.raises(AttributeError):
        spec.seed = 3  # type: ignore[misc]  # frozen


def test_variance_reading_of_init_scale():
    assert PCSpec(init_scale=0.05, init_scale_is_variance=True).init_std == pytest.approx(0.05**0.5)


@pytest.mark.parametrize("cls", [PredictiveCodingNetwork, BackpropNetwork])
def test_bad_batches_are_refused(cls):
    net = cls(PCSpec(sizes=(6, 5, 3), inference_steps=2))
    good_x, good_t = torch.rand(4, 6), torch.rand(4, 3)
    with pytest.raises(ValueError, match=r"input must have shape \(batch, 6\)"):
        net.train_batch(torch.rand(4, 7), good_t)
    with pytest.raises(ValueError, match=r"target must have shape \(batch, 3\)"):
        net.train_batch(good_x, torch.rand(4, 2))
    with pytest.raises(ValueError, match="4 samples but target has 3"):
        net.train_batch(good_x, torch.rand(3, 3))
    nan_x = good_x.clone()
    nan_x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="input contains NaN"):
        net.train_batch(nan_x, good_t)
    with pytest.raises(ValueError, match="input contains NaN"):
        net.predict(nan_x)
    with pytest.raises(ValueError, match="empty batch"):
        net.predict(torch.rand(0, 6))
    assert net.predict(good_x).shape == (4, 3)


def test_identical_forward_weights_across_relaxations():
    base = PCSpec(sizes=(6, 5, 4, 3), seed=7)
    a = PredictiveCodingNetwork(base).params.weights
    b = PredictiveCodingNetwork(base.replace(backward=BackwardPathway.LEARNED,
                                             error_connections=ErrorConnections.LEARNED_PSI)).params.weights
    c = BackpropNetwork(base).params.weights
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) and torch.equal(x, z)
