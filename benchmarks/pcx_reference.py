"""PCX (the JAX predictive-coding library) as an optional reference point for our benchmarks.

PCX (``pip install pcx``, https://github.com/liukidar/pcx; Pinchetti et al. 2024,
"Benchmarking Predictive Coding Networks -- Made Simple") publishes a wall-clock comparison of
its predictive coding (PC) against backprop (BP) on an MNIST MLP. This module re-runs that
setting, written by us against PCX's public API (``pcx`` 0.6.x: ``pcx.predictive_coding``,
``pcx.nn``, ``pcx.functional``, ``pcx.utils``), so that a benchmark can time PCX's PC and BP in
the same process, on the same single CPU thread, as our torch PC.

Nothing happens at import time: jax, optax and pcx are imported inside the functions, so the
module imports without them and PCX stays an optional benchmark dependency. Check
:func:`available` first.

Single thread. JAX sizes its CPU thread pools when its backend starts, so the thread limit must
be in place before ``import jax``: call :func:`configure_single_thread` first (it refuses to run
once jax is imported). It sets ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1"`` (plus ``OMP_NUM_THREADS=1``), the usual recipe. On jax/jaxlib
0.4.38 those flags alone do NOT stop a large matmul from running on two threads (measured:
two threads each busy for half the work, with or without the thunk runtime or async dispatch),
so the helper also pins the process (all its threads) to one CPU with ``os.sched_setaffinity``.
Pinned, a 2000x2000 matmul ran on one thread, and during training the busy threads (Python's
plus XLA's workers, about three) share the one core: their CPU shares sum to ~1.0 of wall time.
:func:`run_pcx_mlp` reports those shares (``busy_threads``), so a run shows the limit held. Torch in the
same process also needs ``torch.set_num_threads(1)``; the pinning holds it to the same CPU.

Install that works (Python 3.11, a separate venv; CPU only):

    pip install torch==2.13.0        # the local CPU wheel, first
    pip install pcx                  # pcx 0.6.3 -> jax/jaxlib 0.4.38, equinox 0.11.12, optax 0.2.5
    pip install 'numpy<2.4'          # brian2 needs it; jax 0.4.38 and pcx are happy with 2.3.5
    pip install -e . --no-deps

(pcx 0.6.3 on PyPI pins ``jax<0.5``, ``equinox<0.12``, ``optax<0.3``.)
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

#: PCX's own MNIST MLP benchmark settings, so our torch side can match them.
#:
#: Source: liukidar/pcx, tag ``v0.6.1`` (the benchmark paper's code release, then named pcax),
#: ``examples/s6_computational_resources/time_benchmarking/MLP/mnist/PC_SE.py`` with
#: ``PC_SE.yaml`` (PC) and ``BP_SE.py`` with ``BP_SE.yaml`` (BP); their ``clock.py`` times
#: each training epoch (``time.perf_counter_ns`` around the epoch loop, data loading included,
#: no ``block_until_ready``) and reports mean and std over epochs, dropping the first (JIT
#: compile). T=8 comes from their accuracy runs,
#: ``examples/discriminative_experiments/MLP/mnist/L_PC_SE_mnist.yaml`` (same optimiser
#: settings, 25 epochs). Their published epoch times (GPU): PC 0.99 s, BP 0.98 s.
#:
#: Semantics (PC): ``h`` of each hidden layer starts at the feedforward value; the output
#: layer's ``h`` is clamped to the one-hot target (``beta`` = 1). The energy is
#: ``E = mean over the batch of sum_l 1/2 ||h_l - u_l||^2`` with ``u_l = W_l f(h_{l-1}) + b_l``
#: (``f`` = identity into the output layer, input = the image). T steps of SGD with momentum on
#: the hidden ``h``, the momentum reset every batch; then one AdamW step on dE/dW at the final
#: ``h``. E is a batch MEAN, but PCX's script steps ``h`` with ``optim_h.step(model, g, True)``,
#: i.e. ``scale_by_batch_size=True`` in pcax 0.6.1, which multiplies the h gradient by the batch
#: size: each sample's ``h`` moves by ``x_lr`` times its OWN energy gradient dE_i/dh_i
#: (independent of the batch size; checked by :func:`check_inference_step_scale`), while the
#: weight gradient is the batch mean. (Without that factor, h would move 128x less and PC
#: reaches only ~83% on MNIST in 6 epochs, measured.) BP minimises
#: ``mean over the batch of ||y - onehot||^2`` (no 1/2) with AdamW. Both use the learning-rate
#: schedule ``optax.warmup_cosine_decay_schedule(init=lr, peak=1.1 lr, warmup = 10% of all
#: steps, decay over all steps, end=0.1 lr)``. Inputs are normalised ``(x - 0.5) / 0.5`` to
#: [-1, 1]. Layers are ``pcx.nn.Linear`` (equinox init: U(+-1/sqrt(fan_in)) for W and b).
PCX_BENCHMARK_HPARAMS: dict[str, Any] = {
    "source": ("github.com/liukidar/pcx tag v0.6.1: examples/s6_computational_resources/"
               "time_benchmarking/MLP/mnist/{PC_SE,BP_SE}.{py,yaml}; T=8 from "
               "examples/discriminative_experiments/MLP/mnist/L_PC_SE_mnist.yaml"),
    "sizes": (784, 128, 128, 128, 10),
    "activation": "gelu",  # jax.nn.gelu, i.e. the tanh approximation
    "batch_size": 128,
    "drop_last": True,
    "epochs": 6,
    "input_normalisation": "(x - 0.5) / 0.5",
    "T_time_benchmark": 5,
    "T_accuracy_runs": 8,
    "pc": {
        "output_energy": "se (1/2 squared error), output h clamped to the one-hot target",
        "energy_reduction": "mean over batch for W; h gradient rescaled by batch size, so "
                            "each h follows its own sample's energy gradient",
        "x_optimizer": "optax.sgd, momentum reset every batch",
        "x_lr": 0.010534787245955935,
        "x_momentum": 0.65,
        "w_optimizer": "optax.adamw",
        "w_lr": 0.0002968930522737348,
        "w_weight_decay": 0.0003550241114984682,
        "published_best_test_accuracy": 0.9841746687889099,
    },
    "bp": {
        "loss": "sum of squared error per sample (no 1/2), mean over batch",
        "w_optimizer": "optax.adamw",
        "w_lr": 0.00027487989229471686,
        "w_weight_decay": 0.0051207238497154115,
        "published_best_test_accuracy": 0.9845753312110901,
    },
    "lr_schedule": ("optax.warmup_cosine_decay_schedule(init_value=lr, peak_value=1.1*lr, "
                    "warmup_steps=0.1*batches_per_epoch*epochs, "
                    "decay_steps=batches_per_epoch*epochs, end_value=0.1*lr, exponent=1.0)"),
    "published_epoch_seconds": {"pc_T5": 0.9924658188, "bp": 0.9834424874},
}

_SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def available() -> bool:
    """True when jax, optax, equinox and pcx can be imported (nothing is imported here)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("jax", "jaxlib", "optax", "equinox", "pcx"))


def configure_single_thread(cpu: int | None = None, pin: bool = True) -> dict[str, Any]:
    """Limit JAX (and the rest of this process) to one CPU thread. Call BEFORE ``import jax``.

    Sets ``XLA_FLAGS`` (appending ``--xla_cpu_multi_thread_eigen=false
    intra_op_parallelism_threads=1`` to what is there), ``OMP_NUM_THREADS=1`` and, with ``pin``,
    pins every thread of the process to one CPU (``cpu``, default the lowest CPU the process may
    use now). On jax 0.4.38 the flags alone leave matmuls on two threads; the pinning is what
    makes XLA size its pools to one core. Pinning also binds torch in this process to that CPU,
    so the scheduler cannot move the benchmark off a core another process is busy on: check the
    load. Returns what it set.
    """
    if "jax" in sys.modules:
        raise RuntimeError("configure_single_thread() must run before jax is imported")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " " + _SINGLE_THREAD_XLA_FLAGS).strip()
    os.environ["OMP_NUM_THREADS"] = "1"
    done: dict[str, Any] = {"XLA_FLAGS": os.environ["XLA_FLAGS"], "OMP_NUM_THREADS": "1",
                            "pinned_cpu": None}
    if pin and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        target = allowed[0] if cpu is None else cpu
        # sched_setaffinity acts on one thread: pin every thread that exists now (torch's or
        # numpy's pools may already run); threads started later inherit the mask.
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), {target})
            except (ProcessLookupError, PermissionError):
                pass
        done["pinned_cpu"] = target
    return done


def thread_cpu_ticks() -> dict[int, int]:
    """CPU time (clock ticks) used so far by each thread of this process (Linux /proc)."""
    ticks: dict[int, int] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[int(tid)] = int(fields[11]) + int(fields[12])
    return ticks


def _busy_threads(before: dict[int, int], after: dict[int, int], wall: float) -> list[float]:
    """Per-thread CPU share of ``wall`` (0.0-1.0) for threads above 5%, busiest first."""
    hz = os.sysconf("SC_CLK_TCK")
    shares = [(after[t] - before.get(t, 0)) / hz / wall for t in after] if wall > 0 else []
    return sorted((round(s, 3) for s in shares if s > 0.05), reverse=True)


def _activation(name: str | Callable) -> Callable:
    import jax
    import jax.numpy as jnp

    if callable(name):
        return name
    table = {"tanh": jnp.tanh, "gelu": jax.nn.gelu, "relu": jax.nn.relu,
             "sigmoid": jax.nn.sigmoid, "leaky_relu": jax.nn.leaky_relu}
    if name not in table:
        raise ValueError(f"activation must be one of {sorted(table)} or a callable, got {name!r}")
    return table[name]


def _build(sizes: tuple[int, ...], act: Callable) -> dict[str, Any]:
    """PCX models and jitted steps for PC and BP (defined here so jax/pcx load lazily)."""
    import jax
    import pcx as px
    import pcx.functional as pxf
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    class PCMLP(pxc.EnergyModule):
        def __init__(self) -> None:
            super().__init__()
            self.act = px.static(act)
            self.layers = [pxnn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
            self.vodes = [pxc.Vode() for _ in sizes[1:]]  # se_energy everywhere
            self.vodes[-1].h.frozen = True  # the output h is clamped, never inferred

        def __call__(self, x, y):
            for vode, layer in zip(self.vodes[:-1], self.layers[:-1]):
                x = vode(self.act(layer(x)))
            self.vodes[-1](self.layers[-1](x))
            if y is not None:
                self.vodes[-1].set("h", y)
            return self.vodes[-1].get("u")

    class BPMLP(px.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = px.static(act)
            self.layers = [pxnn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = self.act(layer(x))
            return self.layers[-1](x)

    batched_vodes = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))

    @pxf.vmap(batched_vodes, in_axes=(0, 0), out_axes=0)
    def pc_forward(x, y, *, model):
        return model(x, y)

    @pxf.vmap(batched_vodes, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
    def pc_energy(x, *, model):
        out = model(x, None)
        return jax.lax.pmean(model.energy(), "batch"), out

    free_h = pxu.M_hasnot(pxc.VodeParam, frozen=True)

    @pxf.jit(static_argnums=0)
    def pc_train(steps, x, y, *, model, optim_h, optim_w):
        model.train()
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            pc_forward(x, y, model=model)
        optim_h.init(free_h(model))
        for _ in range(steps):
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                _, g = pxf.value_and_grad(free_h.to([False, True]), has_aux=True)(
                    pc_energy)(x, model=model)
            # PCX's script: optim_h.step(..., scale_by_batch_size=True) in pcax 0.6.1.
            optim_h.step(model, g["model"], scale_by=x.shape[0])
        optim_h.clear()
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            (e, _), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]),
                                           has_aux=True)(pc_energy)(x, model=model)
        optim_w.step(model, g["model"])
        return e

    @pxf.jit()
    def pc_predict(x, *, model):
        model.eval()
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            return pc_forward(x, None, model=model).argmax(axis=-1)

    @pxf.vmap({"model": None}, in_axes=0, out_axes=0)
    def bp_forward(x, *, model):
        return model(x)

    @pxf.vmap({"model": None}, in_axes=(0, 0), out_axes=(None, 0), axis_name="batch")
    def bp_loss(x, y, *, model):
        out = model(x)
        return jax.lax.pmean(((out - y) ** 2).sum(), "batch"), out

    @pxf.jit()
    def bp_train(x, y, *, model, optim_w):
        model.train()
        with pxu.step(model):
            (loss, _), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]),
                                              has_aux=True)(bp_loss)(x, y, model=model)
        optim_w.step(model, g["model"])
        return loss

    @pxf.jit()
    def bp_predict(x, *, model):
        model.eval()
        with pxu.step(model):
            return bp_forward(x, model=model).argmax(axis=-1)

    return dict(PCMLP=PCMLP, BPMLP=BPMLP, pc_forward=pc_forward, pc_energy=pc_energy,
                pc_train=pc_train, pc_predict=pc_predict, bp_train=bp_train,
                bp_predict=bp_predict, free_h=free_h)


def _layer_arrays(model) -> list[tuple[Any, Any]]:
    """(W, b) jax arrays of a PCX MLP's pcx.nn.Linear layers (W is out x in)."""
    return [(layer.nn.weight.get(), layer.nn.bias.get()) for layer in model.layers]


def _plain_jax_bp(init: list[tuple[Any, Any]], act: Callable, tx) -> tuple[Callable, Callable, Any]:
    """A plain jax + optax BP of the same MLP and loss (no PCX transforms), for overhead."""
    import jax
    import jax.numpy as jnp
    import optax

    params = [(jnp.array(w), jnp.array(b)) for w, b in init]

    def forward(params, x):
        for w, b in params[:-1]:
            x = act(x @ w.T + b)
        w, b = params[-1]
        return x @ w.T + b

    def loss(params, x, y):
        return jnp.mean(jnp.sum((forward(params, x) - y) ** 2, axis=-1))

    @jax.jit
    def step(params, opt_state, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    @jax.jit
    def predict(params, x):
        return forward(params, x).argmax(axis=-1)

    return step, predict, (params, tx.init(params))


def check_inference_step_scale(batch_size: int = 4, seed: int = 0) -> float:
    """Ratio of PCX's per-sample h update to ``x_lr`` times that sample's own dE_i/dh.

    Builds a small PC MLP, runs one inference step of plain SGD (no momentum) exactly as
    :func:`run_pcx_mlp` does (batch-mean energy, h gradient scaled by the batch size), and
    compares the change of the first hidden h with the per-sample energy gradient computed by
    hand. Returns the ratio: 1.0 means each h follows its own sample's gradient (PCX's
    benchmark); without the scaling it would be ``1 / batch_size``.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import pcx as px
    import pcx.functional as pxf
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    px.RKG.seed(seed)
    sizes = (6, 5, 4, 3)
    f = _build(sizes, jnp.tanh)
    model = f["PCMLP"]()
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(batch_size, sizes[0])), jnp.float32)
    y = jnp.asarray(np.eye(3)[rng.integers(0, 3, batch_size)], jnp.float32)
    lr = 0.1
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        f["pc_forward"](x, y, model=model)
    h = [v.h.get() for v in model.vodes]
    (w0, b0), (w1, b1), (w2, b2) = _layer_arrays(model)
    # Perturb h1 so the hidden errors are not all zero, then one SGD step on PCX's energy.
    h1 = h[0] + 0.3
    model.vodes[0].h.set(h1)

    def sample_energy(h1, h2, xi, yi):
        u1 = jnp.tanh(w0 @ xi + b0)
        u2 = jnp.tanh(w1 @ h1 + b1)
        u3 = w2 @ h2 + b2
        return 0.5 * (jnp.sum((h1 - u1) ** 2) + jnp.sum((h2 - u2) ** 2) + jnp.sum((yi - u3) ** 2))

    grad_h1 = jax.vmap(jax.grad(sample_energy), in_axes=(0, 0, 0, 0))(h1, h[1], x, y)
    optim_h = pxu.Optim(lambda: optax.sgd(lr))

    @pxf.jit()
    def one_step(x, *, model, optim_h):
        optim_h.init(f["free_h"](model))
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            _, g = pxf.value_and_grad(f["free_h"].to([False, True]), has_aux=True)(
                f["pc_energy"])(x, model=model)
        optim_h.step(model, g["model"], scale_by=x.shape[0])
        optim_h.clear()

    one_step(x, model=model, optim_h=optim_h)
    moved = h1 - model.vodes[0].h.get()
    return float(jnp.sum(moved * grad_h1) / (lr * jnp.sum(grad_h1 * grad_h1)))


def run_pcx_mlp(train_x, train_y, test_x, test_y, *, hidden: tuple[int, ...] = (128, 128, 128),
                activation: str | Callable = "tanh", steps: int = 5, batch_size: int = 128,
                epochs: int = 2, seed: int = 0, x_lr: float | None = None,
                x_momentum: float | None = None, pc_w_lr: float | None = None,
                pc_w_weight_decay: float | None = None, bp_w_lr: float | None = None,
                bp_w_weight_decay: float | None = None, normalise: bool = True,
                bp: str = "pcx", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train PCX's PC and a BP twin on the same data and report time per sample and accuracy.

    The caller must limit threads BEFORE jax is imported, i.e. call
    :func:`configure_single_thread` (which sets
    ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``,
    ``OMP_NUM_THREADS=1`` and pins the process to one CPU; the flags alone do not keep jax
    0.4.38 on one thread) before anything imports jax; otherwise timings are multi-threaded.
    ``busy_threads`` in the result shows how many threads did work while timing.

    Args:
        train_x, test_x: float32 arrays (n, 784), pixels in [0, 1] (flattened images).
        train_y, test_y: integer labels (n,).
        hidden: hidden layer widths (PCX: 128, 128, 128).
        activation: "tanh" (default; our torch side has no GELU), "gelu" (PCX's benchmark),
            "relu", "sigmoid", "leaky_relu", or a jax callable.
        steps: inference steps T per batch (PCX: 5 in the timing runs, 8 in accuracy runs).
        epochs: epochs of each model; the first includes JIT compilation and is timed apart.
            The learning-rate schedule spans ``epochs`` as in PCX's scripts.
        x_lr, x_momentum, pc_w_lr, pc_w_weight_decay, bp_w_lr, bp_w_weight_decay: default to
            :data:`PCX_BENCHMARK_HPARAMS`.
        normalise: map pixels to [-1, 1] by ``(x - 0.5) / 0.5`` as PCX does.
        bp: "pcx" (BP written with PCX's modules and transforms, as PCX's BP_SE.py), "jax"
            (plain jax + optax, same init, loss and optimiser), or "both".
        log: optional callable for progress lines.

    Epochs of the models alternate (PC, BP, BP, PC, ...) so that load drift hits both alike.
    An epoch is ``n // batch_size`` full batches (drop_last) in a fresh permutation shared by
    all models; the permuted arrays are built before the clock starts, so the timed region is
    the training steps only (host arrays passed straight to the jitted steps), ended by
    ``block_until_ready``. The first call of each training step (trace + compile + one step)
    is reported as ``compile_s``; steady-state numbers are over epochs 2.. (for epochs=1: over
    batches 2.. of epoch 1).

    Returns a dict: versions, settings, and per model (``pc``, ``bp_pcx``/``bp_jax``):
    ``compile_s``, ``first_epoch_s``, ``epoch_s`` (steady epochs), ``mean_epoch_s``,
    ``us_per_sample``, ``test_accuracy`` per epoch; ``pc_bp_ratio`` (PC / BP steady epoch time,
    per BP kind); ``busy_threads`` (CPU share of each busy thread over the timed region).
    """
    import importlib.metadata as md

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import pcx as px
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    if bp not in ("pcx", "jax", "both"):
        raise ValueError(f"bp must be 'pcx', 'jax' or 'both', got {bp!r}")
    hp = PCX_BENCHMARK_HPARAMS
    x_lr = hp["pc"]["x_lr"] if x_lr is None else x_lr
    x_momentum = hp["pc"]["x_momentum"] if x_momentum is None else x_momentum
    pc_w_lr = hp["pc"]["w_lr"] if pc_w_lr is None else pc_w_lr
    if pc_w_weight_decay is None:
        pc_w_weight_decay = hp["pc"]["w_weight_decay"]
    bp_w_lr = hp["bp"]["w_lr"] if bp_w_lr is None else bp_w_lr
    if bp_w_weight_decay is None:
        bp_w_weight_decay = hp["bp"]["w_weight_decay"]
    say = log or (lambda s: None)

    def prep(x):
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
        return (x - 0.5) / 0.5 if normalise else x

    train_x, test_x = prep(train_x), prep(test_x)
    train_y = np.asarray(train_y).astype(np.int64)
    test_y = np.asarray(test_y).astype(np.int64)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    sizes = (train_x.shape[1], *hidden, n_classes)
    act = _activation(activation)
    n_batches = len(train_x) // batch_size
    if n_batches < 2:
        raise ValueError("need at least two batches of training data")
    onehot = np.eye(n_classes, dtype=np.float32)

    def schedule(lr):
        return optax.warmup_cosine_decay_schedule(
            init_value=lr, peak_value=1.1 * lr, warmup_steps=0.1 * n_batches * epochs,
            decay_steps=n_batches * epochs, end_value=0.1 * lr, exponent=1.0)

    f = _build(sizes, act)

    # Same initial weights for every model: reseed PCX's key generator before each build.
    px.RKG.seed(seed)
    pc_model = f["PCMLP"]()
    with pxu.step(pc_model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        f["pc_forward"](jnp.zeros((batch_size, sizes[0])), None, model=pc_model)
    pc_optim_h = pxu.Optim(lambda: optax.sgd(x_lr, momentum=x_momentum))
    pc_optim_w = pxu.Optim(lambda: optax.adamw(schedule(pc_w_lr), weight_decay=pc_w_weight_decay),
                           pxu.M(pxnn.LayerParam)(pc_model))

    px.RKG.seed(seed)
    bp_model = f["BPMLP"]()
    bp_optim_w = pxu.Optim(lambda: optax.adamw(schedule(bp_w_lr), weight_decay=bp_w_weight_decay),
                           pxu.M(pxnn.LayerParam)(bp_model))

    models: dict[str, dict[str, Any]] = {}

    def pc_step(xb, yb):
        return f["pc_train"](steps, xb, yb, model=pc_model, optim_h=pc_optim_h,
                             optim_w=pc_optim_w)

    def pc_sync():
        jax.block_until_ready(_layer_arrays(pc_model))

    def pc_pred(xb):
        return f["pc_predict"](xb, model=pc_model)

    models["pc"] = dict(step=pc_step, sync=pc_sync, predict=pc_pred)

    if bp in ("pcx", "both"):
        def bpx_step(xb, yb):
            return f["bp_train"](xb, yb, model=bp_model, optim_w=bp_optim_w)

        def bpx_sync():
            jax.block_until_ready(_layer_arrays(bp_model))

        def bpx_pred(xb):
            return f["bp_predict"](xb, model=bp_model)

        models["bp_pcx"] = dict(step=bpx_step, sync=bpx_sync, predict=bpx_pred)

    if bp in ("jax", "both"):
        tx = optax.adamw(schedule(bp_w_lr), weight_decay=bp_w_weight_decay)
        jstep, jpredict, jstate = _plain_jax_bp(_layer_arrays(bp_model), act, tx)
        state = {"params": jstate[0], "opt": jstate[1]}

        def bpj_step(xb, yb):
            state["params"], state["opt"], loss = jstep(state["params"], state["opt"], xb, yb)
            return loss

        def bpj_sync():
            jax.block_until_ready(state["params"])

        def bpj_pred(xb):
            return jpredict(state["params"], xb)

        models["bp_jax"] = dict(step=bpj_step, sync=bpj_sync, predict=bpj_pred)

    for rec in models.values():
        rec.update(compile_s=None, first_epoch_s=None, epoch_s=[], test_accuracy=[],
                   batch_s_after_first=None)

    # Test set in full batches of batch_size (the last one padded) so that evaluation uses
    # the shapes training compiled for and never triggers a recompile of the training step.
    n_test = len(test_x)
    pad = (-n_test) % batch_size
    test_xp = np.concatenate([test_x, np.zeros((pad, test_x.shape[1]), np.float32)])

    def evaluate(rec) -> float:
        preds = [np.asarray(rec["predict"](test_xp[i:i + batch_size]))
                 for i in range(0, len(test_xp), batch_size)]
        return float(np.mean(np.concatenate(preds)[:n_test] == test_y))

    rng = np.random.default_rng(seed)
    thread_before = thread_cpu_ticks()
    timed_wall = 0.0
    names = list(models)
    for epoch in range(epochs):
        perm = rng.permutation(len(train_x))[: n_batches * batch_size]
        ex = np.ascontiguousarray(train_x[perm])
        ey = onehot[train_y[perm]]
        bounds = [(i * batch_size, (i + 1) * batch_size) for i in range(n_batches)]
        batches = [(ex[a:b], ey[a:b]) for a, b in bounds]
        order = names if epoch % 2 == 0 else names[::-1]
        for name in order:
            rec = models[name]
            t0 = time.perf_counter()
            start = 0
            if epoch == 0:
                rec["step"](*batches[0])
                rec["sync"]()
                rec["compile_s"] = time.perf_counter() - t0
                start = 1
            t1 = time.perf_counter()
            for xb, yb in batches[start:]:
                rec["step"](xb, yb)
            rec["sync"]()
            t2 = time.perf_counter()
            timed_wall += t2 - t0
            if epoch == 0:
                rec["first_epoch_s"] = t2 - t0
                rec["batch_s_after_first"] = (t2 - t1) / (n_batches - 1)
            else:
                rec["epoch_s"].append(t2 - t1)
            rec["test_accuracy"].append(evaluate(rec))
            say(f"epoch {epoch + 1} {name}: {t2 - t0:.2f} s, test acc "
                f"{rec['test_accuracy'][-1]:.4f}")
    busy = _busy_threads(thread_before, thread_cpu_ticks(), timed_wall)

    out_models: dict[str, Any] = {}
    for name, rec in models.items():
        if rec["epoch_s"]:
            mean_epoch = float(np.mean(rec["epoch_s"]))
        else:  # one epoch only: scale the steady batches of epoch 1
            mean_epoch = rec["batch_s_after_first"] * n_batches
        out_models[name] = {
            "compile_s": rec["compile_s"],
            "first_epoch_s": rec["first_epoch_s"],
            "epoch_s": rec["epoch_s"],
            "mean_epoch_s": mean_epoch,
            "std_epoch_s": float(np.std(rec["epoch_s"])) if rec["epoch_s"] else None,
            "us_per_sample": mean_epoch / (n_batches * batch_size) * 1e6,
            "test_accuracy": rec["test_accuracy"],
        }
    ratios = {name: out_models["pc"]["mean_epoch_s"] / out_models[name]["mean_epoch_s"]
              for name in out_models if name != "pc"}
    return {
        "versions": {pkg: md.version(pkg) for pkg in ("pcx", "jax", "jaxlib", "equinox", "optax",
                                                       "numpy")},
        "jax_backend": jax.default_backend(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "cpu_affinity": (sorted(os.sched_getaffinity(0))
                         if hasattr(os, "sched_getaffinity") else None),
        "busy_threads": busy,
        "settings": {
            "sizes": sizes, "activation": getattr(act, "__name__", str(act)),
            "steps": steps, "batch_size": batch_size, "epochs": epochs, "seed": seed,
            "batches_per_epoch": n_batches, "samples_per_epoch": n_batches * batch_size,
            "normalise": "(x - 0.5) / 0.5" if normalise else None,
            "pc": {"x_optimizer": f"optax.sgd(lr={x_lr}, momentum={x_momentum}), reset per batch",
                   "h_step": "x_lr * dE_i/dh_i per sample (batch-mean gradient x batch size)",
                   "w_optimizer": f"optax.adamw(warmup-cosine lr={pc_w_lr}, "
                                  f"weight_decay={pc_w_weight_decay})",
                   "energy": "batch mean of sum_l 1/2||h_l - u_l||^2, output h = one-hot"},
            "bp": {"w_optimizer": f"optax.adamw(warmup-cosine lr={bp_w_lr}, "
                                  f"weight_decay={bp_w_weight_decay})",
                   "loss": "batch mean of ||y - onehot||^2"},
            "lr_schedule": hp["lr_schedule"],
            "hparams_source": hp["source"],
        },
        "models": out_models,
        "pc_bp_ratio": ratios,
    }


if __name__ == "__main__":  # pragma: no cover - manual run: python -m benchmarks.pcx_reference
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 8])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--bp", default="both")
    parser.add_argument("--train-limit", type=int, default=None)
    args = parser.parse_args()
    pinned = configure_single_thread()
    import torch

    torch.set_num_threads(1)
    from algorithms.data import load_dataset

    data = load_dataset("mnist", args.data_dir)
    tx, ty = data.train_x.numpy(), data.train_y.numpy()
    if args.train_limit:
        tx, ty = tx[: args.train_limit], ty[: args.train_limit]
    for t in args.steps:
        with open("/proc/loadavg") as fh:
            load_before = fh.read().split()[:3]
        res = run_pcx_mlp(tx, ty, data.test_x.numpy(), data.test_y.numpy(), steps=t,
                          epochs=args.epochs, activation=args.activation, bp=args.bp,
                          log=lambda s: print(s, file=sys.stderr, flush=True))
        with open("/proc/loadavg") as fh:
            res["loadavg_before_after"] = [load_before, fh.read().split()[:3]]
        res["single_thread_config"] = pinned
        print(json.dumps(res, indent=1, default=str), flush=True)
