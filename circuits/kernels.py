"""numba kernels for what Brian2's generic synapse code makes slow.

Dense summed pathways (a matrix-vector product per step) and the Hebbian outer products, on
raw float64 arrays, plus :func:`pc_train_sample`: one whole sample of standard PC (settle,
relax, Hebbian update) in a single compiled call, the practical speed floor the benchmark
compares the circuit against. Activations are integer codes (:data:`ACT_CODE`) with the
same formulas as :mod:`circuits.equations`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from algorithms.activations import Activation

__all__ = ["ACT_CODE", "act", "apply_update", "dact", "error_signals", "error_signals_psi",
           "hebb", "matvec",
           "matvec_t", "pc_train_sample"]

ACT_CODE = {Activation.LINEAR: 0, Activation.RELU: 1, Activation.TANH: 2,
            Activation.SIGMOID: 3}

_jit = numba.njit(cache=False, fastmath=False, nogil=True)
_jit_sum = numba.njit(cache=False, fastmath={"reassoc", "contract"}, nogil=True)
"""For the dense sums: reassociation lets LLVM vectorise the reductions (the results differ
from a sequential sum by rounding only, ~1e-16 relative; NaN and inf still propagate)."""


@_jit
def act(code: int, a: float) -> float:
    if code == 0:
        return a
    if code == 1:
        return a if a > 0.0 else 0.0
    if code == 2:
        return math.tanh(a)
    return 1.0 / (1.0 + math.exp(-a))


@_jit
def dact(code: int, a: float) -> float:
    if code == 0:
        return 1.0
    if code == 1:
        return 1.0 if a > 0.0 else 0.0
    if code == 2:
        t = math.tanh(a)
        return 1.0 - t * t
    e = math.exp(-a)
    return e / ((1.0 + e) * (1.0 + e))


@_jit_sum
def matvec(w: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """``out = w @ x`` (``w``: ``n_out x n_in``)."""
    for j in range(w.shape[0]):
        s = 0.0
        for i in range(w.shape[1]):
            s += w[j, i] * x[i]
        out[j] = s


@_jit_sum
def matvec_t(w: np.ndarray, e: np.ndarray, out: np.ndarray) -> None:
    """``out = w.T @ e`` (``w``: ``n_e x n_out``)."""
    out[:] = 0.0
    for j in range(w.shape[0]):
        ej = e[j]
        for i in range(w.shape[1]):
            out[i] += w[j, i] * ej


@_jit
def error_signals(code: int, a_in: np.ndarray, b: np.ndarray, vin: np.ndarray,
                  gain_inf: bool, gain_learn: bool, eps: np.ndarray, e_inf: np.ndarray,
                  e_learn: np.ndarray) -> None:
    """The error neurons' subexpressions: ``eps = vin - f(a)``, ``e = f'(a) eps`` or ``eps``."""
    for j in range(a_in.shape[0]):
        a = a_in[j] + b[j]
        ej = vin[j] - act(code, a)
        g = dact(code, a)
        eps[j] = ej
        e_inf[j] = g * ej if gain_inf else ej
        e_learn[j] = g * ej if gain_learn else ej


@_jit
def error_signals_psi(code: int, a_in: np.ndarray, b: np.ndarray, vin: np.ndarray,
                      pin: np.ndarray, gain_inf: bool, gain_learn: bool, eps: np.ndarray,
                      e_inf: np.ndarray, e_learn: np.ndarray) -> None:
    """As :func:`error_signals` with ``psi`` on the prediction: ``eps = vin - pin`` where
    ``pin = psi f(a)`` was summed from the layer's stored predictions; gains ``f'(a)``."""
    for j in range(a_in.shape[0]):
        a = a_in[j] + b[j]
        ej = vin[j] - pin[j]
        g = dact(code, a)
        eps[j] = ej
        e_inf[j] = g * ej if gain_inf else ej
        e_learn[j] = g * ej if gain_learn else ej


@_jit_sum
def hebb(acc: np.ndarray, post: np.ndarray, pre: np.ndarray, sign: float) -> None:
    """``acc[j, i] += sign * post[j] * pre[i]``: a local pre x post product per synapse."""
    for j in range(acc.shape[0]):
        pj = sign * post[j]
        for i in range(acc.shape[1]):
            acc[j, i] += pj * pre[i]


@_jit_sum
def apply_update(w: np.ndarray, acc: np.ndarray, eta: float, decay: float, clamp: float) -> None:
    """``w <- w (1 - eta decay) + eta clip(acc, -clamp, clamp)``; ``acc <- 0``."""
    keep = 1.0 - eta * decay
    for j in range(w.shape[0]):
        for i in range(w.shape[1]):
            d = min(max(acc[j, i], -clamp), clamp)
            w[j, i] = w[j, i] * keep + eta * d
            acc[j, i] = 0.0


@_jit_sum
def pc_train_sample(weights: numba.typed.List, x0: np.ndarray, target: np.ndarray, code: int,
                    out_code: int, rate: float, steps: int, eta: float) -> None:
    """Standard PC on one sample, all in one call: feedforward init, ``steps`` Jacobi
    inference steps recomputing predictions, then ``W += eta e x^T`` in place.

    ``weights[l]``: ``n_{l+1} x n_l``. This is the single-sample numba floor of the benchmark,
    the same arithmetic as the circuit with ``batch_size = 1``."""
    L = len(weights)
    xs = [x0.copy()]
    for l in range(L):
        a = np.empty(weights[l].shape[0])
        matvec(weights[l], xs[l], a)
        c = out_code if l == L - 1 else code
        for j in range(a.shape[0]):
            a[j] = act(c, a[j])
        xs.append(a)
    xs[L] = target.copy()
    pre = [np.empty(w.shape[0]) for w in weights]
    eps = [np.empty(w.shape[0]) for w in weights]
    e = [np.empty(w.shape[0]) for w in weights]
    back = [np.empty(w.shape[1]) for w in weights]
    matvec(weights[0], xs[0], pre[0])  # the clamped input's prediction: once per sample
    for it in range(steps + 1):
        for l in range(L):
            if l > 0:
                matvec(weights[l], xs[l], pre[l])
            c = out_code if l == L - 1 else code
            for j in range(pre[l].shape[0]):
                ej = xs[l + 1][j] - act(c, pre[l][j])
                eps[l][j] = ej
                e[l][j] = dact(c, pre[l][j]) * ej
        if it == steps:
            break
        for l in range(1, L):
            matvec_t(weights[l], e[l], back[l])
            for i in range(xs[l].shape[0]):
                xs[l][i] += rate * (back[l][i] - eps[l - 1][i])
    for l in range(L):
        hebb(weights[l], e[l], xs[l], eta)
