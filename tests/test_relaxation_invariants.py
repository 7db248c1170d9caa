"""Invariants of the learned backward pathway (thesis 3.5.1) and of Kolen-Pollack decay."""

from __future__ import annotations

import pytest
import torch

from algorithms.pc import PredictiveCodingNetwork
from algorithms.spec import Activation, BackwardPathway, BatchReduction, PCSpec, Relaxations


def _train(spec: PCSpec, batches: int):
    net = PredictiveCodingNetwork(spec)
    offsets = [[net.params.backward[l] - net.params.weights[l].T
                for l in range(1, spec.n_layers)]]
    g = torch.Generator().manual_seed(0)
    for _ in range(batches):
        x0 = torch.rand(8, spec.sizes[0], generator=g, dtype=torch.float64)
        target = torch.rand(8, spec.sizes[-1], generator=g, dtype=torch.float64)
        net.train_batch(x0, target)
        offsets.append([net.params.backward[l] - net.params.weights[l].T
                        for l in range(1, spec.n_layers)])
    return net, offsets


@pytest.mark.parametrize("reduction", list(BatchReduction))
def test_learned_backward_offset_is_constant_without_decay(reduction):
    spec = PCSpec(sizes=(6, 9, 7, 3), activation=Activation.TANH, dtype="float64",
                  learning_rate=0.05, inference_steps=20, batch_reduction=reduction,
                  relaxations=Relaxations(backward=BackwardPathway.LEARNED))
    net, offsets = _train(spec, 10)
    start = net.params.weights[1].clone()
    for later in offsets[1:]:
        for o0, o in zip(offsets[0], later):
            torch.testing.assert_close(o, o0, rtol=0, atol=1e-13)
    assert not torch.equal(start, PredictiveCodingNetwork(spec).params.weights[1])  # learned


def test_learned_backward_offset_shrinks_geometrically_with_decay():
    eta, lam = 0.05, 0.5
    spec = PCSpec(sizes=(6, 9, 7, 3), activation=Activation.TANH, dtype="float64",
                  learning_rate=eta, inference_steps=20,
                  relaxations=Relaxations(backward=BackwardPathway.LEARNED, kp_decay=lam))
    _, offsets = _train(spec, 12)
    for t, later in enumerate(offsets):
        for o0, o in zip(offsets[0], later):
            torch.testing.assert_close(o, o0 * (1 - eta * lam) ** t, rtol=1e-10, atol=1e-14)


def test_random_feedback_stays_fixed():
    spec = PCSpec(sizes=(6, 9, 7, 3), dtype="float64", learning_rate=0.05, inference_steps=5,
                  relaxations=Relaxations(backward=BackwardPathway.RANDOM))
    net = PredictiveCodingNetwork(spec)
    before = [b.clone() for b in net.params.backward if b is not None]
    net.train_batch(torch.rand(4, 6, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64))
    after = [b for b in net.params.backward if b is not None]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_update_clamp_bounds_every_step():
    spec = PCSpec(sizes=(6, 9, 3), dtype="float64", learning_rate=1.0, inference_steps=5,
                  update_clamp=0.01, init_scale=1.0)
    net = PredictiveCodingNetwork(spec)
    before = {k: v.clone() for k, v in net.params.tensors().items()}
    net.train_batch(torch.rand(16, 6, dtype=torch.float64) * 10,
                    torch.rand(16, 3, dtype=torch.float64) * 10)
    for k, v in net.params.tensors().items():
        assert float((v - before[k]).abs().max()) <= 0.01 + 1e-15
