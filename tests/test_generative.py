"""Hierarchical generative PC: every rule against autograd of the free energy; the decode of an
encode of a training digit beats the mean-image baseline."""

from __future__ import annotations

import pytest
import torch

from algorithms.activations import Activation
from algorithms.data import load_dataset
from algorithms.generative import (GenerativePC, GenerativeSpec, energy, inference_direction,
                                   weight_directions)


@pytest.mark.parametrize("prior", [0.0, 0.7])
def test_every_rule_is_minus_the_autograd_gradient(prior: float) -> None:
    spec = GenerativeSpec(sizes=(7, 5, 3), activations=(Activation.SIGMOID, Activation.TANH),
                          prior_precision=prior, dtype="float64")
    g = torch.Generator().manual_seed(0)
    theta = [torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True),
             torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)]
    mu = [torch.rand(4, n, generator=g, dtype=torch.float64, requires_grad=True)
          for n in spec.sizes]
    F = energy(spec, theta, mu).sum()
    F.backward()
    with torch.no_grad():
        d = inference_direction(spec, theta, mu)
        w = weight_directions(spec, theta, mu)
    for l in (1, 2):
        torch.testing.assert_close(d[l], -mu[l].grad, rtol=1e-12, atol=1e-12)
    for l in (0, 1):  # the rule is the batch mean
        torch.testing.assert_close(w[l], -theta[l].grad / 4, rtol=1e-12, atol=1e-12)


def test_reconstruction_through_the_bottleneck_beats_the_mean_image() -> None:
    """Digits (64 pixels, scaled to [0, 1]) through a 10-d latent after 20 epochs: the
    reconstruction MSE of dec(enc(o)) on training digits is below half the mean-image
    baseline's (measured: 0.22 of it)."""
    data = load_dataset("digits")
    x = data.train_x.double()
    spec = GenerativeSpec(sizes=(64, 40, 10), learning_rate=2.0, prior_precision=0.1,
                          dtype="float64")
    model = GenerativePC(spec)
    order = torch.Generator().manual_seed(0)
    for _ in range(20):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), 64):
            model.train_batch(x[perm[i:i + 64]])
    sample = x[:300]
    recon = model.decode(model.encode(sample, steps=200))
    mse = float(((recon - sample) ** 2).mean())
    baseline = float(((x.mean(0) - sample) ** 2).mean())
    assert mse < 0.5 * baseline, (mse, baseline)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="activations"):
        GenerativeSpec(sizes=(4, 3, 2), activations=(Activation.SIGMOID,))
    with pytest.raises(ValueError, match=r"shape \(batch, 784\)"):
        GenerativePC(GenerativeSpec()).encode(torch.zeros(2, 10))
