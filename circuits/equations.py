"""Named Brian2 equation strings for the rate microcircuits.

Every state variable is dimensionless (``: 1``); one inference step is one Brian2 time step
``STEP`` (0.1 ms), and a value neuron's membrane constant is ``tau_v = STEP / gamma``, so
Euler integration gives exactly the Jacobi iteration ``x <- x + gamma * dx`` of the torch
backend. Phase signals are functions of time (``TimedArray``s supplied in the run
namespace):

* ``settling(t)`` (1 during the feedforward sweep): value neurons copy the prediction
  arriving from their error neuron (``pred``) and latch it as ``vbar``;
* ``relaxing(t)`` (1 during the ``T`` inference steps): value neurons descend the energy;
* both 0 on the final *hold* step of a sample, so every summed input is recomputed at the
  relaxed values before the learning step reads them.

Activation strings (``f`` and ``f'`` of an error neuron's summed input ``a``) come from
:data:`F` and :data:`DF`, the Brian2 twins of :class:`algorithms.activations.Activation`.
"""

from __future__ import annotations

from algorithms.activations import Activation

__all__ = ["AR_INPUT", "AR_UNIT", "CLAMP", "CLAMPED_VALUE", "DF", "ERROR_NEURON", "F",
           "GENERATIVE_ERROR", "GENERATIVE_PATHWAY", "GENERATIVE_PLASTICITY", "GENERATIVE_SOURCE",
           "GENERATIVE_STORE", "GENERATIVE_VALUE", "PSI_PREDICTION_INPUT", "STORE_AR",
           "STORE_ERRORS", "STORE_PREDICTION", "VALUE_NEURON",
           "activation_strings"]

F: dict[Activation, str] = {
    Activation.LINEAR: "({a})",
    Activation.RELU: "(({a}) * int(({a}) > 0))",
    Activation.TANH: "tanh({a})",
    Activation.SIGMOID: "(1.0 / (1.0 + exp(-({a}))))",
}
"""``f(a)`` as a Brian2 expression template (``{a}`` is the summed input)."""

DF: dict[Activation, str] = {
    Activation.LINEAR: "1.0",
    Activation.RELU: "(1.0 * int(({a}) > 0))",
    Activation.TANH: "(1.0 - tanh({a})**2)",
    Activation.SIGMOID: "(exp(-({a})) / (1.0 + exp(-({a})))**2)",
}
"""``f'(a)``; ``relu'(0) = 0`` as in torch autograd."""


def activation_strings(act: Activation, a: str = "a") -> tuple[str, str]:
    """``(f(a), f'(a))`` as Brian2 expressions of the variable named ``a``."""
    return F[act].format(a=a), DF[act].format(a=a)


CLAMPED_VALUE = """
v : 1       # clamped to the data (input image or label): CLAMP at each sample's first step
u = v : 1   # signal sent up the forward synapses
"""
"""A clamped value population (``V_0`` holds the image, ``V_L`` the label)."""

CLAMP = "{var} = {source}(t, i)"
"""Run once per sample (``groups`` slot, before every summed input): the clamped population
takes the new sample. The learning step at the ``start`` of the same step still sees the
previous sample."""

VALUE_NEURON = """
dv/dt = relaxing(t) * (fb - own) / tau_v + settling(t) * (pred - v) / step : 1
dvbar/dt = settling(t) * (pred - vbar) / step : 1   # latched feedforward value
fb : 1     # bottom-up error from the layer above:  B_l e_{{l+1}}         (summed)
own : 1    # own error (or psi^T eps under PSI_TRANSPOSE)                (summed)
pred : 1   # prediction f(a_l) from the own error neuron, used to settle  (summed)
u = {u} : 1  # what the forward synapses read: v, or vbar under fixed predictions
"""
"""A hidden value population ``V_l``: ``dv = gamma * (-eps_l + B_l e_{l+1})`` while relaxing,
``v = f(a_l)`` while settling."""

ERROR_NEURON = """
a = a_in + b : 1              # summed top-down input  W_{{l-1}} u_{{l-1}} + b
mu_now = {f} : 1              # prediction f(a)
eps_now = vin - {mu_hat} : 1  # prediction error  v - f(a), psi v - f(a) or v - psi f(a)
e_inf_now = {e_inf} : 1       # error sent down during inference (f'(a) eps or eps)
e_learn_now = {e_learn} : 1   # postsynaptic factor of the Hebbian update
mu : 1                        # the error neuron's outputs, stored once per step (STORE_ERRORS)
eps : 1
e_inf : 1
e_learn : 1
a_in : 1                  # (summed) from the forward synapses
vin : 1                   # (summed) from the own value neuron (one-to-one, or psi v)
b : 1                     # bias (plastic when the spec has biases)
b_acc : 1                 # accumulated bias update of the current batch
{extra}"""
"""An error population ``E_l`` (``l = 1..L``): algebraic (``tau_eps -> 0``): its outputs are
functions of the summed inputs computed earlier in the same step, stored once per step by
:data:`STORE_ERRORS` so that synapses read a number instead of re-evaluating ``f'`` per
synapse."""

PSI_PREDICTION_INPUT = """
pin : 1                   # (summed) psi mu: the own layer's stored predictions through psi
"""
"""Added to a hidden error population when dense ``psi`` multiplies the prediction
(``PsiPlacement.PREDICTION``): its error is ``eps = vin - pin`` (``vin = v``)."""

STORE_PREDICTION = "mu = mu_now"
"""Per-step code of an error population whose layer's ``psi`` reads the prediction: ``mu`` is
stored before the ``psi`` sum (``ORDER_PREDICTION``), then :data:`STORE_ERRORS` runs."""

STORE_ERRORS = "mu = mu_now\neps = eps_now\ne_inf = e_inf_now\ne_learn = e_learn_now"
"""Per-step code of an error population (between the two summed-input stages)."""

STORE_AR = "hx = hx_now\nhx_learn = hx_learn_now"
"""Per-step code of an activation-relaxation population (between the two stages)."""

AR_INPUT = """
x : 1        # clamped to the image (CLAMP once per sample)
xbar = x : 1
"""
"""``X_0``: the clamped input of an activation-relaxation circuit."""

AR_UNIT = """
dx/dt = {relax_term} + settling(t) * ({x_settle} - x) / step : 1
dxbar/dt = settling(t) * ({f} - xbar) / step : 1   # latched forward activity f(a)
dabar/dt = settling(t) * (a - abar) / step : 1     # latched forward input a
a = a_in + b : 1          # input from the layer below (forward synapses read xbar)
acur = acur_in + b : 1    # the same input recomputed from the current activities x
h = {h} : 1               # gain on the activity sent down while relaxing
h_learn = {h_learn} : 1   # gain in the weight update
hx_now = h * x : 1
hx_learn_now = h_learn * x : 1
hx : 1                    # stored once per step (STORE_AR): what synapses read
hx_learn : 1
a_in : 1                  # (summed) W xbar_below
acur_in : 1               # (summed) W x_below
fb : 1                    # (summed) B (h x) from the layer above
b : 1
b_acc : 1
{extra}
"""
"""An activation-relaxation population ``X_l`` (``l = 1..L``). Hidden layers settle to the
forward activity (or 0) and relax ``dx = gamma (-x + B (h x)_above)``; the output layer
settles to the loss gradient ``dL/dxbar_L`` and stays clamped there."""


# ------------------------------------------------------------- generative (unsupervised)
# Circuits of ``circuits.generative``: every node is a value population, every prediction a
# pathway into an error population of the node it predicts, and a node may have several
# error populations (split errors) and several outgoing pathways, so the summed inputs are
# named per pathway (Brian2 allows one summed variable per target variable).

GENERATIVE_VALUE = """
dv/dt = relaxing(t) * (fb - own) / tau_v + settling(t) * shift * motion / step : 1
fb = {fb} : 1         # bottom-up: W' (f'(a) pi eps) summed over the pathways v predicts through
own = {own} : 1       # own precision-weighted errors pi eps, one per error population of v
motion = {motion} : 1 # the next order's value (the shift operator D), 0 without one
{summed}
"""
"""A free value population: ``dv = gamma (-sum pi eps + sum W' f'(a) pi eps)`` while
relaxing; in the predict step (``settling``, dynamical circuits) ``v += shift * D v``. The
``{summed}`` lines declare one summed input per incoming pathway."""

GENERATIVE_ERROR = """
mu_now = {prediction} : 1   # the sum of the predictions f(a) reaching this population (0: zero prior)
eps_now = vin - mu_now : 1  # prediction error
pe_now = prec * eps_now : 1 # precision-weighted error, sent to the own value population
vin : 1                     # (summed) one-to-one from the own value population
prec : 1 (constant)         # precision pi (0: an unobserved order)
mu : 1                      # stored once per step (store code)
eps : 1
pe : 1
predicted : 1               # the prediction latched at the first inference step (dynamical)
{per_source}
"""
"""An error population. ``{per_source}`` holds, per incoming prediction pathway ``k``, its
summed input ``a_k`` and the gain-weighted error ``g_k = f_k'(a_k) pe`` it sends back (the
postsynaptic factor of that pathway's Hebbian rule)."""

GENERATIVE_SOURCE = """
a_{k} : 1                         # (summed) W v from the predicting population
g_{k}_now = {df} * pe_now : 1     # f'(a) pi eps, sent back through pathway {k}
g_{k} : 1                         # stored once per step
"""

GENERATIVE_STORE = "mu = mu_now\neps = eps_now\npe = pe_now\n{stores}"
"""Store code of an error population (``{stores}``: ``g_k = g_k_now`` per source), plus
``predicted += latching(t) * (mu_now - predicted)``."""

GENERATIVE_PATHWAY = """
w : 1
dw_acc : 1
a_{k}_post = w * v_pre : 1 (summed)       # the prediction's summed input
fb_{k}_pre = w * g_{k}_post : 1 (summed)  # the bottom-up error, through the same synapse
"""
"""A prediction pathway ``k`` (value -> error): the top-down prediction and, on the same
synapse, the transposed bottom-up error."""

GENERATIVE_PLASTICITY = """
g_acc = acc_gate(t)
g_apply = apply_gate(t) * batch_scale(t)
dw_acc += g_acc * g_{k}_post * v_pre
w = w + eta * g_apply * dw_acc
dw_acc = dw_acc * int(apply_gate(t) == 0)
"""
"""Hebbian: postsynaptic gain-weighted error x presynaptic value, accumulated per sample
and applied per batch scaled by ``batch_scale`` (``1/B`` for a batch mean, 1 online)."""


# ----------------------------------------------------------------------------- spiking
# Every spiking population codes one signed quantity ``q`` per unit with an ON/OFF pair of
# spike trains: the ON cell fires at ``max_rate * clip(q / range, 0, 1)`` and the OFF cell at
# ``max_rate * clip(-q / range, 0, 1)`` (neurons cannot fire at negative rates). The pair
# shares its unit's dendritic compartment; its two spike trains are Brian2 events ``on`` and
# ``off`` of one NeuronGroup, so every pathway has an ON and an OFF synaptic pathway. A
# receiving neuron decodes a pathway with an exponential synaptic trace of time constant
# ``tau_s``: each ON spike adds ``w * c`` and each OFF spike ``-w * c`` with
# ``c = range / (max_rate * tau_s)``, so the trace's mean is ``sum_i w_i q_i``.
#
# Phase gates are ``TimedArray``s over one sample period, read at ``tp``, the time within
# the current sample (SAMPLE_TIME), so their size never depends on the number of samples.

SAMPLE_TIME = "tp = (t + 0.5 * dt) % sample_time : second   # time within the sample\n"
"""Added to every spiking population: the argument of its phase gates."""

LEARNING = "learning((t + 0.5 * dt) % sample_time)"
"""The plasticity gate in synaptic code (1 in the hold window of a learning run)."""

SPIKE_CODE = """
q_on = clip(({q}) / {rng}, 0, 1) : 1      # ON cell's share of the maximum rate
q_off = clip(-({q}) / {rng}, 0, 1) : 1    # OFF cell's share
"""
"""The ON/OFF split of a signed quantity ``{q}`` with coding range ``{rng}``."""

LIF_PAIR = """
I_on = 1 / (1 - exp(lif_k / clip(q_on * rate_dt, 1e-12, 1))) : 1
I_off = 1 / (1 - exp(lif_k / clip(q_off * rate_dt, 1e-12, 1))) : 1
dm_on/dt = (I_on - m_on) / tau_m : 1      # ON cell's membrane (threshold 1)
dm_off/dt = (I_off - m_off) / tau_m : 1   # OFF cell's membrane
"""
"""Leaky integrate-and-fire ON/OFF cells, reset by subtraction. The drive ``I`` inverts the
Euler-discretised f-I curve: from ``m = 0`` the membrane crosses 1 after exactly
``1 / (rate * dt)`` steps (``lif_k = ln(1 - dt / tau_m)``, ``rate_dt = max_rate * dt``), so a
constant ``q`` fires at ``max_rate * q / range`` up to one step's rounding, which the
subtractive reset carries over to the next interval."""

LIF_EVENTS = {"on": "m_on > 1", "off": "m_off > 1"}
LIF_RESETS = {"on": "m_on -= 1", "off": "m_off -= 1"}
POISSON_PAIR = """
n_on : 1    # spikes of the ON population in this step (POISSON_DRAW)
n_off : 1   # spikes of the OFF population
"""
POISSON_DRAW = "n_on = poisson(q_on * rate_dt * cells)\nn_off = poisson(q_off * rate_dt * cells)"
"""Poisson ON/OFF populations of ``cells`` cells each: the step's spike counts (the
superposition of independent Poisson cells is Poisson), drawn before the events."""
POISSON_EVENTS = {"on": "n_on > 0", "off": "n_off > 0"}

SPIKING_CLAMPED = """
v : 1                     # clamped to the data (CLAMP once per sample)
u = v : 1                 # what its spikes code
vbar = v : 1              # its latched value (the same: it is clamped)
dtr/dt = -tr / tau_s : 1  # trace of its own spikes (decodes u): presynaptic factor of plasticity
count : 1                 # ON minus OFF spikes in the hold window (readout)
"""
"""A clamped spiking value population (image or label)."""

SPIKING_VALUE = """
dv/dt = relaxing(tp) * (fb - own) / tau_v + settling(tp) * (pred - v) / tau_settle : 1
dvbar/dt = settling(tp) * (pred - vbar) / tau_settle : 1   # latched feedforward value
dfb/dt = -fb / tau_s : 1    # bottom-up error B e_{{l+1}}: trace of the error spikes above
down/dt = -own / tau_s : 1  # own error eps_l (or psi^T eps_l): trace of its error spikes
dtr/dt = -tr / tau_s : 1    # trace of its own spikes (decodes u)
pred : 1                    # (summed, one-to-one) the own error unit's prediction, settling only
count : 1                   # ON minus OFF spikes in the hold window (readout)
u = v : 1                   # what its spikes code
"""
"""A hidden spiking value population ``V_l``: while relaxing ``tau_v dv/dt = B e_{l+1} -
eps_l`` with both errors decoded from spike traces; while settling it follows the dendritic
prediction of its own error unit (the feedforward sweep); in the hold window it is still."""

SPIKING_ERROR = """
da_in/dt = -a_in / tau_s : 1   # W u + ... from the layer below: trace of value spikes
dvin/dt = -vin / tau_s : 1     # own value (or psi v): trace of value spikes
a = a_in + b : 1
dabar/dt = settling(tp) * (a - abar) / tau_settle : 1   # latched at the end of settling
mu = {f} : 1                   # dendritic prediction f(a), or f(abar) under fixed predictions
eps = vin - {mu_hat} : 1       # the error its ON/OFF pair codes (mu, or psi mu: pin)
gain = {gain} : 1              # f'(a) or 1: efficacy of its spikes on the way down
gain_learn = {gain_learn} : 1  # f'(a) or 1: postsynaptic factor of plasticity
dmu_hold/dt = holding(tp) * mu / hold_time : 1   # mean prediction over the hold window
b : 1
b_acc : 1
count : 1                      # ON minus OFF spikes in the hold window (readout)
{extra}"""
"""A spiking error population ``E_l``: a dendrite decodes the prediction and the own value
from spike traces; its ON/OFF pair codes ``eps = v - f(a)`` within ``range_e`` (``psi v -
f(a)`` with ``psi`` on the value, ``v - psi f(a)`` with ``psi`` on the prediction)."""

SPIKING_PSI_INPUT = """
dpin/dt = -pin / tau_s : 1     # psi mu: trace of the layer's prediction spikes through psi
"""
"""Added to a hidden spiking error population when ``psi`` multiplies the prediction."""

SPIKING_PREDICTION = """
mu : 1                    # (summed, one-to-one) its error unit's dendritic prediction f(a)
dtr/dt = -tr / tau_s : 1  # trace of its own spikes (decodes mu): presynaptic factor of psi
count : 1                 # ON minus OFF spikes in the hold window (readout)
"""
"""A prediction pair population ``P_l`` (``psi`` on the prediction only): part of the error
units of layer ``l``, its ON/OFF pairs code each unit's prediction ``mu = f(a)`` within
``range_v`` and carry it through the dense ``psi`` to every error unit of the layer."""

SPIKING_AR_INPUT = """
x : 1                     # clamped to the image (CLAMP once per sample)
xbar = x : 1
u = x : 1                 # what its spikes code
dtr/dt = -tr / tau_s : 1  # trace of its own spikes
count : 1                 # ON minus OFF spikes in the hold window (readout)
"""
"""``X_0`` of a spiking activation-relaxation circuit."""

SPIKING_AR_UNIT = """
dx/dt = {relax_term} + settling(tp) * ({x_settle} - x) / tau_settle : 1
dxbar/dt = settling(tp) * ({f} - xbar) / tau_settle : 1   # latched forward activity f(a)
dabar/dt = settling(tp) * (a - abar) / tau_settle : 1     # latched forward input a
da_in/dt = -a_in / tau_s : 1   # W x_below: trace of the spikes below (forward, then current)
dfb/dt = -fb / tau_s : 1       # B (h x)_above: trace of the spikes above
dtr/dt = -tr / tau_s : 1       # trace of its own spikes
a = a_in + b : 1
h = {h} : 1                    # efficacy of its spikes on the way down
h_learn = {h_learn} : 1        # gain in the plasticity
u = x : 1                      # what its spikes code
b : 1
b_acc : 1
count : 1
{extra}
"""
"""A spiking activation-relaxation population ``X_l``: settles to ``f(a)`` (the output to
``dL/dxbar_L``), relaxes ``tau_v dx/dt = -x + B (h x)_above``, with every inter-layer
signal decoded from spike traces. The forward trace decodes ``W xbar`` while settling
(latched as ``abar``) and ``W x`` afterwards (``acur`` of R5/R7)."""
