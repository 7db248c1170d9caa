"""Minimal eager references for the speed benchmarks: the same updates as the library's
backprop twin, PC (fixed and recomputed predictions) and AR, written as plainly and leanly
as one would by hand (no checks, no options, in-place where natural, ``f'`` from the stored
``f``, frozen gains computed once, the constant output error of fixed predictions once).

Standard PC, tanh hidden layers, linear output, no biases, batch-summed updates, the loss
``1/2||y - T||^2`` (AR: ``||y - T||^2``, its default ``Loss.MSE_SUM``). Each ``step``
changes the weights in place like the library's ``train_batch`` and returns the same scalar
(summed energy or loss) as a float, so both sides pay the same one host sync per batch.
Benchmarks only; the tests check the library against autograd, not against these.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _dtanh(f: Tensor) -> Tensor:
    return 1.0 - f * f


def _forward(ws: list[Tensor], x0: Tensor) -> list[Tensor]:
    values = [x0]
    for l, w in enumerate(ws):
        a = values[-1] @ w.T
        values.append(a if l == len(ws) - 1 else torch.tanh(a))
    return values


def backprop_step(ws: list[Tensor], x0: Tensor, t: Tensor, lr: float) -> float:
    """Plain autograd SGD on ``1/2 sum ||y - T||^2``; ``ws`` require grad."""
    y = _forward(ws, x0)[-1]
    loss = 0.5 * ((y - t) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        for w in ws:
            w.sub_(w.grad, alpha=lr)
            w.grad = None
    return float(loss)


@torch.no_grad()
def pc_fixed_step(ws: list[Tensor], x0: Tensor, t: Tensor, lr: float, rate: float,
                  steps: int) -> float:
    """PC under the fixed-prediction assumption: predictions, gains and presynaptic values
    frozen at the forward pass; the output error is a constant."""
    mu = _forward(ws, x0)
    L = len(ws)
    gains = [None] + [_dtanh(mu[l]) for l in range(1, L)] + [None]
    x = [None] + [mu[l].clone() for l in range(1, L)]
    e_out = t - mu[L]
    for _ in range(steps):
        eps = [None] + [x[l] - mu[l] for l in range(1, L)]
        for l in range(1, L):
            e_next = e_out if l == L - 1 else gains[l + 1] * eps[l + 1]
            x[l].addmm_(e_next, ws[l], alpha=rate).sub_(eps[l], alpha=rate)
    eps = [None] + [x[l] - mu[l] for l in range(1, L)] + [e_out]
    energy = 0.5 * sum(float((e * e).sum()) for e in eps[1:])
    for l in range(L):
        post = eps[l + 1] if l == L - 1 else gains[l + 1] * eps[l + 1]
        ws[l].addmm_(post.T, mu[l], alpha=lr)
    return energy


@torch.no_grad()
def pc_recomputed_step(ws: list[Tensor], x0: Tensor, t: Tensor, lr: float, rate: float,
                       steps: int) -> float:
    """PC with predictions recomputed from the current values at every step (the thesis)."""
    mu = _forward(ws, x0)
    L = len(ws)
    x = [x0] + [mu[l].clone() for l in range(1, L)] + [t]

    def errors() -> tuple[list[Tensor], list[Tensor]]:
        eps, post = [x0], [x0]
        for l in range(1, L + 1):
            if l == 1:
                m = mu[1]
            else:
                a = x[l - 1] @ ws[l - 1].T
                m = a if l == L else torch.tanh(a)
            e = x[l] - m
            eps.append(e)
            post.append(e if l == L else _dtanh(m) * e)
        return eps, post

    for _ in range(steps):
        eps, post = errors()
        for l in range(1, L):
            x[l].addmm_(post[l + 1], ws[l], alpha=rate).sub_(eps[l], alpha=rate)
    eps, post = errors()
    energy = 0.5 * sum(float((e * e).sum()) for e in eps[1:])
    for l in range(L):
        ws[l].addmm_(post[l + 1].T, x[l], alpha=lr)
    return energy


@torch.no_grad()
def ar_step(ws: list[Tensor], x0: Tensor, t: Tensor, lr: float, rate: float,
            steps: int) -> float:
    """Exact activation relaxation (frozen gains, weight transport), Jacobi schedule, loss
    ``||y - T||^2`` (the output is clamped at ``2 (y - T)``)."""
    xbar = _forward(ws, x0)
    L = len(ws)
    gains = [None] + [_dtanh(xbar[l]) for l in range(1, L)] + [None]
    x = [None] + [xbar[l].clone() for l in range(1, L)] + [2.0 * (xbar[L] - t)]
    for _ in range(steps):
        down = [None] + [(x[l + 1] if l == L - 1 else gains[l + 1] * x[l + 1]) @ ws[l]
                         for l in range(1, L)]
        for l in range(1, L):
            x[l].mul_(1.0 - rate).add_(down[l], alpha=rate)
    loss = float(((xbar[L] - t) ** 2).sum())
    for l in range(L):
        post = x[l + 1] if l == L - 1 else gains[l + 1] * x[l + 1]
        ws[l].addmm_(post.T, xbar[l], alpha=-lr)
    return loss
