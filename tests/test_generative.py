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


def _laplace_free_energy(spec: GenerativeSpec, theta: list[torch.Tensor], o: torch.Tensor,
                         mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Appendix C: F(mu, sigma) = E(mu) + 1/2 tr(H(mu) sigma) - 1/2 ln|2 pi e sigma|, with the
    energy E = -ln p(o, mu) of a one-latent-layer model and H its Hessian in mu."""
    def E(m: torch.Tensor) -> torch.Tensor:
        return energy(spec, theta, [o, m[None]]).sum()

    H = torch.autograd.functional.hessian(E, mu, create_graph=True)
    return E(mu) + 0.5 * torch.trace(H @ sigma) - 0.5 * torch.logdet(
        2 * torch.pi * torch.e * sigma)


@pytest.mark.parametrize("act", [Activation.LINEAR, Activation.TANH])
def test_laplace_and_point_mass_give_the_same_mean_dynamics(act: Activation) -> None:
    """At the optimal covariance sigma* = H^-1, the Laplace free energy's gradient in mu equals
    the point-mass rule for a linear model (H does not depend on mu). For a nonlinear one the
    two differ by exactly 1/2 d ln|H| / d mu, the term the thesis drops (spec 1.4)."""
    spec = GenerativeSpec(sizes=(5, 3), activations=(act,), prior_precision=1.0,
                          dtype="float64")
    g = torch.Generator().manual_seed(3)
    theta = [torch.randn(5, 3, generator=g, dtype=torch.float64)]
    o = torch.randn(1, 5, generator=g, dtype=torch.float64)
    mu = torch.randn(3, generator=g, dtype=torch.float64)
    if act is not Activation.LINEAR:  # the Laplace expansion is about the mode (H > 0 there)
        for _ in range(3000):
            mu = mu + 0.1 * inference_direction(spec, theta, [o, mu[None]])[1][0]

    def E(m: torch.Tensor) -> torch.Tensor:
        return energy(spec, theta, [o, m[None]]).sum()

    H = torch.autograd.functional.hessian(E, mu)
    sigma_star = torch.linalg.inv(H)
    # sigma* minimises F over sigma: the gradient in sigma vanishes there
    s = sigma_star.clone().requires_grad_(True)
    (grad_sigma,) = torch.autograd.grad(_laplace_free_energy(spec, theta, o, mu, s), s)
    torch.testing.assert_close(grad_sigma, torch.zeros_like(grad_sigma), atol=1e-10, rtol=0)
    m = mu.clone().requires_grad_(True)
    (grad_mu,) = torch.autograd.grad(_laplace_free_energy(spec, theta, o, m, sigma_star), m)
    point_mass = -inference_direction(spec, theta, [o, mu[None]])[1][0]
    if act is Activation.LINEAR:
        torch.testing.assert_close(grad_mu, point_mass, rtol=1e-10, atol=1e-12)
    else:
        m2 = mu.clone().requires_grad_(True)
        half_logdet = 0.5 * torch.trace(
            torch.autograd.functional.hessian(E, m2, create_graph=True) @ sigma_star)
        (extra,) = torch.autograd.grad(half_logdet, m2)
        torch.testing.assert_close(grad_mu, point_mass + extra, rtol=1e-10, atol=1e-12)
        assert float(extra.abs().max()) > 1e-4  # the dropped term is real for tanh


def test_demo_runs_on_colour_images(tmp_path, monkeypatch) -> None:
    """The demo's CIFAR-10 path (no CIFAR files offline): a small synthetic 3-channel data
    set in the loaders' layout goes through training, the numbers and the figure."""
    import json

    import demos.generative as demo
    from algorithms.data import Dataset

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 10
    fake = Dataset("cifar10", torch.rand(40, 48, generator=g), labels,
                   torch.rand(40, 48, generator=g), labels, (4, 4),
                   tuple(str(c) for c in range(10)), channels=3)
    monkeypatch.setattr(demo, "load_dataset", lambda *a, **k: fake)
    assert demo.main(["--dataset", "cifar10", "--epochs", "1", "--hidden", "8",
                      "--latent", "3", "--out", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    assert numbers["sizes"] == [48, 8, 3]
    assert (tmp_path / "figures.png").stat().st_size > 10_000
