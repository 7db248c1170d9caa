"""The shared vocabulary: one frozen, typed spec that builds every model.

The same :class:`PCSpec` builds the PyTorch rate network (``algorithms.pc``), its backprop
twin (``algorithms.backprop``) and, later, the Brian2 circuit (``circuits``). Biological
relaxations are orthogonal typed options collected in :class:`Relaxations`.

Layer indexing follows the data: layer 0 is the input (clamped image), layer ``L`` the
output (clamped label during training). Weight ``W_l`` (shape ``n_{l+1} x n_l``) carries
layer ``l`` forward to *predict* layer ``l+1``. This is the thesis's supervised "reverse"
network of section 3.5 (image at the top, label at the bottom) with the generative index
flipped: the thesis's ``theta_{l+1}`` predicting layer ``l`` is our ``W`` predicting the
next layer towards the label.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import torch

from .activations import Activation

__all__ = [
    "Activation",
    "BackwardPathway",
    "BatchReduction",
    "DerivativeUse",
    "ErrorConnections",
    "ErrorToValue",
    "ForwardPass",
    "HiddenInit",
    "PassValue",
    "PCSpec",
    "PsiInit",
    "PsiPlacement",
    "Relaxations",
    "SpecError",
]


class SpecError(ValueError):
    """An invalid spec value or combination; the message names the field."""


class BackwardPathway(Enum):
    """How bottom-up errors reach a value neuron (thesis 3.5.1).

    ``TRANSPOSE``: through ``W^T``, the forward synapses themselves (weight transport).
    ``RANDOM``: through a fixed random matrix (feedback alignment, a control).
    ``LEARNED``: through an independent matrix ``B`` learned by the transposed Hebbian
    rule ``dB = x e^T`` (thesis eq. for theta-tilde), optionally with decay.
    """

    TRANSPOSE = "transpose"
    RANDOM = "random"
    LEARNED = "learned"


class DerivativeUse(Enum):
    """Where the nonlinear derivative ``f'`` enters the rules (thesis 3.5.2).

    ``KEPT``: everywhere (standard PC). ``DROPPED_IN_INFERENCE``: the bottom-up message
    uses ``eps`` instead of ``f'(a) * eps`` (thesis default). ``DROPPED_EVERYWHERE``: the
    weight (and learned backward weight) updates drop it too.
    """

    KEPT = "kept"
    DROPPED_IN_INFERENCE = "inference"
    DROPPED_EVERYWHERE = "inference+weights"


class ErrorConnections(Enum):
    """The value-to-error pathway of hidden layers (thesis 3.5.3, eqs 3.39-3.40).

    ``ONE_TO_ONE``: ``eps = x - mu_hat``. ``LEARNED_PSI``: a dense, learned ``psi`` on the
    prediction (``eps = x - psi mu_hat``, the authors' code) or on the value
    (``eps = psi x - mu_hat``, eq. 3.39), as :class:`PsiPlacement` says. ``RANDOM_PSI``: the
    same dense ``psi``, fixed (the thesis's control).
    """

    ONE_TO_ONE = "one_to_one"
    LEARNED_PSI = "learned_psi"
    RANDOM_PSI = "random_psi"


class PsiPlacement(Enum):
    """Which signal a dense error connection ``psi`` multiplies (issue 13).

    ``PREDICTION``: the authors' code (RelaxedPredictiveCoding ``main.py``):
    ``eps = x - psi mu_hat``. The value neuron hears its error one-to-one (``-eps``, no
    ``psi``), bottom-up messages and ``W`` updates carry no ``psi``, and ``psi`` learns by the
    authors' rule ``dpsi = -1/2 eps mu_hat^T`` (their ``error_weights -= lr * outs^T eps``;
    the 1/2 because their other updates carry the 2 of an energy without 1/2). That rule is
    *not* a descent direction of the energy: ``-dF/dpsi = +eps mu_hat^T``.
    ``VALUE``: thesis eq. 3.39 as written: ``eps = psi x - mu_hat``, ``dpsi = -eps x^T``
    (the energy's descent direction), and the value neuron hears ``-eps`` (or ``-psi^T eps``
    under ``ErrorToValue.PSI_TRANSPOSE``). The own-layer Jacobian of the value dynamics is
    then ``-psi`` (or ``-psi^T psi``): with the reference ``|N(0, 0.05^2)|`` start and
    ``IDENTITY`` error-to-value it is unstable.
    """

    PREDICTION = "prediction"
    VALUE = "value"


class ErrorToValue(Enum):
    """How a value neuron hears its own layer's error (spec A-17).

    ``IDENTITY``: one-to-one ``-eps`` (thesis eq. 3.37 and the reference code).
    ``PSI_TRANSPOSE``: ``-psi^T eps``, the exact gradient when ``psi`` is dense.
    """

    IDENTITY = "identity"
    PSI_TRANSPOSE = "psi_transpose"


class PassValue(Enum):
    """Whether a quantity is read from the stored forward pass or computed from the current
    (relaxing) activity: activation relaxation's frozen-feedforward-pass options (thesis
    6.4.2, R5-R8). Predictive coding expresses the same choice with ``fixed_predictions``."""

    FROZEN = "frozen"
    CURRENT = "current"


@dataclass(frozen=True)
class ForwardPass:
    """What activation relaxation reads from the forward pass.

    ``gain_in_relaxation``: ``f'`` in the relaxation (R5 makes it ``CURRENT``).
    ``gain_in_update``: ``f'`` in the weight update (R6). ``presynaptic_in_update``: the
    presynaptic activity of the weight update (R8: the relaxed activity instead of the
    forward one).
    """

    gain_in_relaxation: PassValue = PassValue.FROZEN
    gain_in_update: PassValue = PassValue.FROZEN
    presynaptic_in_update: PassValue = PassValue.FROZEN

    def __post_init__(self) -> None:
        for name in ("gain_in_relaxation", "gain_in_update", "presynaptic_in_update"):
            _check_enum(self, name, PassValue)

    @property
    def all_frozen(self) -> bool:
        return self == ForwardPass()


class HiddenInit(Enum):
    """Initial hidden values before relaxation: feedforward pass, or ``N(0, init_scale^2)``."""

    FEEDFORWARD = "feedforward"
    RANDOM = "random"


class PsiInit(Enum):
    """Initial dense ``psi``: ``|N(0, s^2)|`` (reference code), ``N(0, s^2)``, identity, or
    identity plus ``N(0, s^2 / n)`` noise (``n`` = layer width, so the perturbation's
    operator norm is about ``2 s`` whatever the width)."""

    ABS_NORMAL = "abs_normal"
    NORMAL = "normal"
    IDENTITY = "identity"
    IDENTITY_NOISE = "identity_noise"


class BatchReduction(Enum):
    """Whether Hebbian updates are summed or averaged over the minibatch (spec A-12)."""

    SUM = "sum"
    MEAN = "mean"


@dataclass(frozen=True)
class Relaxations:
    """The biological relaxations, each orthogonal to the others.

    ``kp_decay`` is the Kolen-Pollack decay ``lambda``: with ``LEARNED`` backward weights
    both ``W`` and ``B`` lose ``eta * lambda`` of themselves per update, so ``B - W^T``
    shrinks as ``(1 - eta*lambda)^t``. Not in the thesis; 0 by default.
    """

    backward: BackwardPathway = BackwardPathway.TRANSPOSE
    derivative: DerivativeUse = DerivativeUse.KEPT
    error_connections: ErrorConnections = ErrorConnections.ONE_TO_ONE
    error_to_value: ErrorToValue = ErrorToValue.IDENTITY
    psi_placement: PsiPlacement = PsiPlacement.PREDICTION
    kp_decay: float = 0.0
    forward_pass: ForwardPass = field(default_factory=ForwardPass)

    def __post_init__(self) -> None:
        _check_enum(self, "backward", BackwardPathway)
        _check_enum(self, "derivative", DerivativeUse)
        _check_enum(self, "error_connections", ErrorConnections)
        _check_enum(self, "error_to_value", ErrorToValue)
        _check_enum(self, "psi_placement", PsiPlacement)
        _check_real(self, "kp_decay", low=0.0, low_inclusive=True)
        if not isinstance(self.forward_pass, ForwardPass):
            raise SpecError(f"forward_pass: must be a ForwardPass, got {self.forward_pass!r}")
        if self.kp_decay > 0 and self.backward is not BackwardPathway.LEARNED:
            raise SpecError(
                "kp_decay: a decay only applies to learned backward weights "
                f"(backward=LEARNED), got backward={self.backward.name}"
            )
        if (
            self.error_to_value is ErrorToValue.PSI_TRANSPOSE
            and self.error_connections is ErrorConnections.ONE_TO_ONE
        ):
            raise SpecError(
                "error_to_value: PSI_TRANSPOSE needs dense error connections "
                "(error_connections=LEARNED_PSI or RANDOM_PSI)"
            )
        if (
            self.error_to_value is ErrorToValue.PSI_TRANSPOSE
            and self.psi_placement is not PsiPlacement.VALUE
        ):
            raise SpecError(
                "error_to_value: PSI_TRANSPOSE feeds psi^T eps back to the value neuron, the "
                "gradient of eps = psi x - mu_hat; it needs psi_placement=PsiPlacement.VALUE"
            )

    @property
    def has_psi(self) -> bool:
        """Whether hidden layers carry a dense value-to-error matrix ``psi``."""
        return self.error_connections is not ErrorConnections.ONE_TO_ONE

    @property
    def has_backward_weights(self) -> bool:
        """Whether bottom-up errors travel through a separate matrix ``B``."""
        return self.backward is not BackwardPathway.TRANSPOSE


DType = Literal["float32", "float64"]


@dataclass(frozen=True)
class PCSpec:
    """Everything that defines a supervised predictive-coding network and its training.

    Defaults follow ``shared/spec/ch3_predictive_coding.md`` section 5.1: 784-300-100-10,
    linear output, init ``N(0, 0.05^2)``, inference rate 0.1 for 100 steps, learning rate
    1e-3 on batch-summed updates, batch 64, incorrect labels smoothed to 0.1.

    Attributes:
        sizes: layer widths from input (index 0) to output (index -1).
        activation: hidden-layer nonlinearity ``f``.
        output_activation: nonlinearity of the predicted output layer (linear: A-18).
        init_scale: std of the Gaussian weight init (variance if ``init_scale_is_variance``).
        psi_init: initial dense value-to-error matrices (only with dense error connections).
        use_bias: additive biases on each forward map (A-19; off in the thesis).
        inference_rate: Euler step ``gamma = dt / tau_mu`` of the value-neuron dynamics.
        inference_steps: relaxation iterations per minibatch before the weight update.
        learning_rate: ``eta`` for every plastic synapse.
        batch_size: samples relaxed in parallel and reduced into one update.
        batch_reduction: sum (thesis relaxed runs) or mean of the per-sample updates.
        label_smoothing: target value of every incorrect class (the correct one is 1.0);
            0 gives plain one-hot targets.
        output_precision: ``pi``, the precision of the output (label) error: the energy's
            output term is ``pi/2 ||x_L - mu_hat_L||^2`` and the output error neuron carries
            ``pi (x_L - mu_hat_L)``. Weight updates are divided by ``pi`` so the learning rate
            keeps its meaning; as ``pi -> 0`` (weak clamping) PC's update approaches the
            backprop gradient even with recomputed predictions. 1 in the thesis.
        update_clamp: if set, clamp each reduced update elementwise to ``+-update_clamp``
            before scaling by ``learning_rate`` (the reference code's 50; A-24).
        fixed_predictions: freeze predictions, gains and presynaptic values at the
            feedforward pass during relaxation (the fixed-prediction assumption, A-15).
        hidden_init: how hidden value neurons start each relaxation.
        relaxations: the biological relaxations.
        seed: seeds weight init, random hidden init and data order.
        dtype: floating-point precision of the torch backend.
    """

    sizes: tuple[int, ...] = (784, 300, 100, 10)
    activation: Activation = Activation.RELU
    output_activation: Activation = Activation.LINEAR
    init_scale: float = 0.05
    init_scale_is_variance: bool = False
    psi_init: PsiInit = PsiInit.ABS_NORMAL
    use_bias: bool = False
    inference_rate: float = 0.1
    inference_steps: int = 100
    learning_rate: float = 1e-3
    batch_size: int = 64
    batch_reduction: BatchReduction = BatchReduction.SUM
    label_smoothing: float = 0.1
    output_precision: float = 1.0
    update_clamp: float | None = None
    fixed_predictions: bool = False
    hidden_init: HiddenInit = HiddenInit.FEEDFORWARD
    relaxations: Relaxations = field(default_factory=Relaxations)
    seed: int = 0
    dtype: DType = "float32"

    def __post_init__(self) -> None:
        sizes = self.sizes
        if not isinstance(sizes, tuple):
            raise SpecError(f"sizes: must be a tuple of ints, got {type(sizes).__name__}")
        if len(sizes) < 2:
            raise SpecError(f"sizes: need at least an input and an output layer, got {sizes}")
        for n in sizes:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise SpecError(f"sizes: every layer width must be a positive int, got {sizes}")
        _check_enum(self, "activation", Activation)
        _check_enum(self, "output_activation", Activation)
        _check_enum(self, "psi_init", PsiInit)
        _check_enum(self, "batch_reduction", BatchReduction)
        _check_enum(self, "hidden_init", HiddenInit)
        _check_real(self, "init_scale", low=0.0)
        _check_real(self, "inference_rate", low=0.0, high=1.0)
        _check_int(self, "inference_steps", low=0)
        _check_real(self, "learning_rate", low=0.0)
        _check_int(self, "batch_size", low=1)
        _check_real(self, "label_smoothing", low=0.0, low_inclusive=True, high=1.0,
                    high_inclusive=False)
        _check_real(self, "output_precision", low=0.0)
        if self.update_clamp is not None:
            _check_real(self, "update_clamp", low=0.0)
        _check_int(self, "seed", low=0)
        for flag in ("init_scale_is_variance", "use_bias", "fixed_predictions"):
            if not isinstance(getattr(self, flag), bool):
                raise SpecError(f"{flag}: must be a bool, got {getattr(self, flag)!r}")
        if not isinstance(self.relaxations, Relaxations):
            raise SpecError(
                f"relaxations: must be a Relaxations, got {type(self.relaxations).__name__}"
            )
        if self.dtype not in ("float32", "float64"):
            raise SpecError(f"dtype: must be 'float32' or 'float64', got {self.dtype!r}")

    # ----------------------------------------------------------------- derived values
    @property
    def n_layers(self) -> int:
        """``L``: the number of weight matrices (layers minus one)."""
        return len(self.sizes) - 1

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32

    @property
    def init_std(self) -> float:
        """Standard deviation of the weight init, whichever way ``init_scale`` is read."""
        return math.sqrt(self.init_scale) if self.init_scale_is_variance else self.init_scale

    def activation_of(self, layer: int) -> Activation:
        """Nonlinearity of the prediction arriving at ``layer`` (1..L)."""
        return self.output_activation if layer == self.n_layers else self.activation

    def replace(self, **changes: Any) -> PCSpec:
        """A copy with ``changes`` applied (and validated). ``relaxations`` fields may be
        given directly, e.g. ``spec.replace(backward=BackwardPathway.LEARNED)``."""
        relax_fields = {f.name for f in dataclasses.fields(Relaxations)}
        relax_changes = {k: changes.pop(k) for k in list(changes) if k in relax_fields}
        if relax_changes:
            base = changes.pop("relaxations", self.relaxations)
            changes["relaxations"] = dataclasses.replace(base, **relax_changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (enums as their values)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PCSpec:
        """The inverse of :meth:`to_dict` (validated; unknown keys raise ``SpecError``)."""
        return _from_jsonable(cls, d)


# --------------------------------------------------------------------- validation helpers
def _check_enum(obj: object, name: str, enum: type[Enum]) -> None:
    value = getattr(obj, name)
    if not isinstance(value, enum):
        choices = ", ".join(f"{enum.__name__}.{m.name}" for m in enum)
        raise SpecError(f"{name}: must be one of {choices}; got {value!r}")


def _check_real(
    obj: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = False,
    high_inclusive: bool = True,
) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{name}: must be a finite number, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = ">=" if low_inclusive else ">"
        raise SpecError(f"{name}: must be {bound} {low}, got {value!r}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        bound = "<=" if high_inclusive else "<"
        raise SpecError(f"{name}: must be {bound} {high}, got {value!r}")


def _check_int(obj: object, name: str, *, low: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(f"{name}: must be an int >= {low}, got {value!r}")


def _from_jsonable(cls: Any, d: dict[str, Any]) -> Any:
    """Rebuild dataclass ``cls`` from :func:`_jsonable` output: enums from their values,
    nested dataclasses recursively, lists back to tuples where the field is a tuple."""
    import typing

    if not isinstance(d, dict):
        raise SpecError(f"{cls.__name__}: expected a dict, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise SpecError(f"{cls.__name__}: unknown fields {unknown}")
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        t = hints[k]
        if isinstance(t, type) and issubclass(t, Enum):
            try:
                v = t(v)
            except ValueError:
                raise SpecError(f"{k}: {v!r} is not a {t.__name__} value") from None
        elif dataclasses.is_dataclass(t):
            v = _from_jsonable(t, v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
