"""Op kinds of the rsnnc graph IR: one frozen dataclass per kind.

Parameters are read-only numpy arrays (float32 in the float domain, int64 once quantized);
choices are enums. Shapes never include time or batch. Every op knows the feature shape it
consumes (``in_shape``) and produces (``out_shape``); the verifier checks edges against them.

Neuron semantics are defined once in ``rsnn_compiler.neurons`` (each neuron op names its
``family``) and summarised in docs/ir.md. Every op kind (this module, ``fixed_ops``,
``conversion_ops``) is listed in ``rsnn_compiler.ir.catalogue``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rsnn_compiler.neurons import EXTENSIONS
from rsnn_compiler.neurons.enums import Comparator, Overflow, ResetMode  # noqa: F401 (re-exported)

Shape = tuple[int, ...]


#: the op kinds written by hand in ops / fixed_ops / conversion_ops
_KINDS = [
    ("INPUT", "input"),
    ("OUTPUT", "output"),
    ("AFFINE", "affine"),
    ("SCALE", "scale"),
    ("CONV1D", "conv1d"),
    ("CONV2D", "conv2d"),
    ("POOL", "pool"),
    ("FLATTEN", "flatten"),
    ("DELAY", "delay"),
    ("BATCHNORM", "batchnorm"),
    ("IDENTITY", "identity"),
    ("THRESHOLD", "threshold"),
    ("LIF", "lif"),
    ("IF", "if"),
    ("CUBA_LIF", "cuba_lif"),
    ("LI", "li"),
    ("CUBA_LI", "cuba_li"),
    ("ALIF", "alif"),
    ("QUANTIZE", "quantize"),
    ("FIXED_DENSE", "fixed_dense"),
    ("FIXED_CONV1D", "fixed_conv1d"),
    ("FIXED_CONV2D", "fixed_conv2d"),
    ("FIXED_LIF", "fixed_lif"),
    ("FIXED_ALIF", "fixed_alif"),
    ("FIXED_LI", "fixed_li"),
    ("FIXED_DUAL_IF", "fixed_dual_if"),
    ("FIXED_MTN", "fixed_mtn"),
    ("DUAL_IF", "dual_if"),
    ("MTN", "mtn"),
] + [  # plus the neuron families added through the definition (ir/family_ops.py)
    (f"{prefix.upper()}{f.name.upper()}", f"{prefix}{f.name}")
    for e in EXTENSIONS for prefix, f in (("", e.float), ("fixed_", e.fixed)) if f is not None
]
OpKind = enum.Enum("OpKind", _KINDS, module=__name__, qualname="OpKind")
OpKind.__doc__ = "Every op kind of the IR (its value is the kind's name in files and text)."


class PoolMode(enum.Enum):
    SUM = "sum"
    AVG = "avg"
    MAX = "max"


def freeze_array(value, dtype=None) -> np.ndarray:
    """Copy ``value`` into a read-only array: bool stays bool, integers become int64, else float32."""
    arr = np.array(value, copy=True)
    if dtype is not None:
        arr = arr.astype(dtype)
    elif arr.dtype == np.bool_:
        pass
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64)
    else:
        arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    arr.setflags(write=False)
    return arr


def _tuple(value, n: int | None = None) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * (n or 1)
    return tuple(int(v) for v in value)


@dataclass(frozen=True, eq=False, kw_only=True)
class Op:
    """Base of every op. Subclasses declare ``kind`` and which fields are arrays."""

    kind: ClassVar[OpKind]
    array_fields: ClassVar[tuple[str, ...]] = ()
    optional_arrays: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self.array_fields:
            value = getattr(self, name)
            if value is None:
                if name not in self.optional_arrays:
                    raise ValueError(f"{type(self).__name__}: parameter '{name}' is required")
                continue
            object.__setattr__(self, name, freeze_array(value))
        check_shapes(self)

    def shape_problems(self) -> list[str]:
        """What is wrong with the shapes of this op's parameters (empty: nothing). Checked when
        the op is constructed (``check_shapes``) and reported by the verifier."""
        return []

    # --- shapes -------------------------------------------------------------------------
    @property
    def in_shape(self) -> Shape:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def out_shape(self) -> Shape:
        return self.in_shape

    # --- generic access -----------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Named array parameters (None for absent optional ones are skipped)."""
        out = {}
        for name in self.array_fields:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def attributes(self) -> dict[str, object]:
        """Non-array fields as JSON-friendly values (enums by value, tuples as lists)."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            if f.name in self.array_fields:
                continue
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def replace(self, **changes) -> "Op":
        return dataclasses.replace(self, **changes)

    @property
    def is_neuron(self) -> bool:
        return isinstance(self, NeuronOp)

    @property
    def is_stateful(self) -> bool:
        return isinstance(self, NeuronOp) or isinstance(self, Delay)


def check_shapes(op: Op) -> None:
    """Raise ValueError naming the first shape problem of ``op`` (called by every ``__post_init__``)."""
    problems = op.shape_problems()
    if problems:
        raise ValueError(f"{type(op).__name__}: {problems[0]}")


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------------------
# Interface and structural ops
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class Input(Op):
    """Graph input; at step t it emits x[t] of shape ``shape``."""

    kind: ClassVar[OpKind] = OpKind.INPUT
    shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _tuple(self.shape))
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return self.shape


@dataclass(frozen=True, eq=False, kw_only=True)
class Output(Op):
    """Graph output; records the summed value of its inputs at every step."""

    kind: ClassVar[OpKind] = OpKind.OUTPUT
    shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _tuple(self.shape))
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return self.shape


@dataclass(frozen=True, eq=False, kw_only=True)
class Identity(Op):
    """y = x. Importers may produce it; canonicalize removes it."""

    kind: ClassVar[OpKind] = OpKind.IDENTITY
    shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _tuple(self.shape))
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return self.shape


@dataclass(frozen=True, eq=False, kw_only=True)
class Affine(Op):
    """y = W x + b, W shaped (out, in); ``bias`` None means a pure dense (linear) layer."""

    kind: ClassVar[OpKind] = OpKind.AFFINE
    array_fields: ClassVar[tuple[str, ...]] = ("weight", "bias")
    optional_arrays: ClassVar[tuple[str, ...]] = ("bias",)
    weight: np.ndarray
    bias: np.ndarray | None = None

    @property
    def in_shape(self) -> Shape:
        return (int(self.weight.shape[1]),) if self.weight.ndim == 2 else ()

    @property
    def out_shape(self) -> Shape:
        return (int(self.weight.shape[0]),) if self.weight.ndim == 2 else ()

    def shape_problems(self) -> list[str]:
        return dense_shape_problems(self.weight, bias=self.bias)


def dense_shape_problems(weight: np.ndarray, **per_output: np.ndarray | None) -> list[str]:
    """A (out, in) weight and one value per output for each array of ``per_output``."""
    if weight.ndim != 2:
        return [f"weight must be 2-D (out, in), got shape {weight.shape}"]
    out = []
    for name, arr in per_output.items():
        if arr is not None and arr.shape != (weight.shape[0],):
            out.append(f"{name} shape {arr.shape} does not match weight rows {weight.shape[0]};"
                       f" {name} needs one value per output")
    return out


@dataclass(frozen=True, eq=False, kw_only=True)
class Scale(Op):
    """y = s * x elementwise."""

    kind: ClassVar[OpKind] = OpKind.SCALE
    array_fields: ClassVar[tuple[str, ...]] = ("scale",)
    scale: np.ndarray

    @property
    def in_shape(self) -> Shape:
        return tuple(int(d) for d in self.scale.shape)


@dataclass(frozen=True, eq=False, kw_only=True)
class _Conv(Op):
    """PyTorch-style cross-correlation on (C, *spatial) features (no batch)."""

    array_fields: ClassVar[tuple[str, ...]] = ("weight", "bias")
    optional_arrays: ClassVar[tuple[str, ...]] = ("bias",)
    spatial_dims: ClassVar[int] = 0
    weight: np.ndarray
    bias: np.ndarray | None = None
    input_shape: Shape  # (C_in, *spatial)
    stride: Shape = (1,)
    padding: Shape = (0,)
    dilation: Shape = (1,)
    groups: int = 1

    def __post_init__(self) -> None:
        n = self.spatial_dims
        object.__setattr__(self, "input_shape", _tuple(self.input_shape))
        for name in ("stride", "padding", "dilation"):
            value = _tuple(getattr(self, name), n)
            if len(value) == 1 and n > 1:
                value = value * n
            object.__setattr__(self, name, value)
        object.__setattr__(self, "groups", int(self.groups))
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return self.input_shape

    def shape_problems(self) -> list[str]:
        n = self.spatial_dims
        if self.weight.ndim != n + 2:
            return [f"weight must be {n + 2}-D, got shape {self.weight.shape}"]
        if len(self.input_shape) != n + 1:
            return [f"input_shape {self.input_shape} must be (C, {n} spatial dims)"]
        out = []
        if self.groups < 1 or self.input_shape[0] != self.weight.shape[1] * self.groups:
            out.append(f"input has {self.input_shape[0]} channels but weight expects"
                       f" {self.weight.shape[1]} x groups {self.groups}")
        for name in self.array_fields[1:]:
            arr = getattr(self, name)
            if arr is not None and arr.shape != (self.weight.shape[0],):
                out.append(f"{name} shape {arr.shape} must be ({self.weight.shape[0]},)")
        return out

    @property
    def out_shape(self) -> Shape:
        spatial = []
        kernel = self.weight.shape[2:]
        for i in range(self.spatial_dims):
            size = self.input_shape[1 + i] + 2 * self.padding[i]
            eff = self.dilation[i] * (kernel[i] - 1) + 1
            spatial.append((size - eff) // self.stride[i] + 1)
        return (int(self.weight.shape[0]), *spatial)


@dataclass(frozen=True, eq=False, kw_only=True)
class Conv1d(_Conv):
    kind: ClassVar[OpKind] = OpKind.CONV1D
    spatial_dims: ClassVar[int] = 1


@dataclass(frozen=True, eq=False, kw_only=True)
class Conv2d(_Conv):
    kind: ClassVar[OpKind] = OpKind.CONV2D
    spatial_dims: ClassVar[int] = 2


@dataclass(frozen=True, eq=False, kw_only=True)
class Pool(Op):
    """Sum / average / max pooling over 1 or 2 spatial dims of (C, *spatial); zero padding,
    floor output size, average counts padded cells (PyTorch ``count_include_pad=True``)."""

    kind: ClassVar[OpKind] = OpKind.POOL
    mode: PoolMode
    kernel: Shape
    stride: Shape
    padding: Shape = (0,)
    input_shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", PoolMode(self.mode))
        object.__setattr__(self, "input_shape", _tuple(self.input_shape))
        n = len(self.input_shape) - 1
        for name in ("kernel", "stride", "padding"):
            value = _tuple(getattr(self, name), n)
            if len(value) == 1 and n > 1:
                value = value * n
            object.__setattr__(self, name, value)
        super().__post_init__()

    @property
    def spatial_dims(self) -> int:
        return len(self.input_shape) - 1

    @property
    def in_shape(self) -> Shape:
        return self.input_shape

    @property
    def out_shape(self) -> Shape:
        spatial = []
        for i in range(self.spatial_dims):
            size = self.input_shape[1 + i] + 2 * self.padding[i]
            spatial.append((size - self.kernel[i]) // self.stride[i] + 1)
        return (self.input_shape[0], *spatial)


@dataclass(frozen=True, eq=False, kw_only=True)
class Flatten(Op):
    """Row-major flatten of feature dims ``start_dim..end_dim`` (batch not counted)."""

    kind: ClassVar[OpKind] = OpKind.FLATTEN
    input_shape: Shape
    start_dim: int = 0
    end_dim: int = -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", _tuple(self.input_shape))
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return self.input_shape

    @property
    def out_shape(self) -> Shape:
        n = len(self.input_shape)
        s = self.start_dim % n if n else 0
        e = self.end_dim % n if n else 0
        merged = math.prod(self.input_shape[s : e + 1])
        return (*self.input_shape[:s], merged, *self.input_shape[e + 1 :])


@dataclass(frozen=True, eq=False, kw_only=True)
class Delay(Op):
    """y[t] = x[t - steps] (zero before the first ``steps`` steps)."""

    kind: ClassVar[OpKind] = OpKind.DELAY
    shape: Shape
    steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _tuple(self.shape))
        object.__setattr__(self, "steps", int(self.steps))
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return self.shape


@dataclass(frozen=True, eq=False, kw_only=True)
class BatchNorm(Op):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per channel (axis 0 of the features)."""

    kind: ClassVar[OpKind] = OpKind.BATCHNORM
    array_fields: ClassVar[tuple[str, ...]] = ("mean", "var", "gamma", "beta")
    mean: np.ndarray
    var: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float = 1e-5
    shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _tuple(self.shape))
        object.__setattr__(self, "eps", float(self.eps))
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return self.shape

    def shape_problems(self) -> list[str]:
        channels = self.shape[0] if self.shape else 0
        return [f"'{p}' must have one value per channel ({channels})"
                for p, arr in self.arrays().items() if arr.shape != (channels,)]

    def channel_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (scale, shift) with y = scale*x + shift, computed in float64."""
        scale = self.gamma.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.eps)
        shift = self.beta.astype(np.float64) - scale * self.mean.astype(np.float64)
        return scale, shift


# --------------------------------------------------------------------------------------
# Neurons
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class NeuronOp(Op):
    """A stateful population; every array parameter has the population's shape."""

    state_names: ClassVar[tuple[str, ...]] = ("v",)
    spiking: ClassVar[bool] = True
    #: the neuron family (``rsnn_compiler.neurons``) whose definition gives this op its meaning;
    #: empty for ``Threshold`` (stateless)
    family: ClassVar[str] = ""

    @property
    def shape(self) -> Shape:
        return tuple(int(d) for d in getattr(self, self.array_fields[0]).shape)

    def shape_problems(self) -> list[str]:
        ref = self.shape
        return [f"parameter '{p}' has shape {a.shape} but the population is {ref};"
                " give every neuron parameter one value per neuron"
                for p, a in self.arrays().items() if a.shape != ref]

    @property
    def in_shape(self) -> Shape:
        return self.shape


@dataclass(frozen=True, eq=False, kw_only=True)
class Threshold(NeuronOp):
    """Stateless Heaviside: s = [x > theta] (or >=)."""

    kind: ClassVar[OpKind] = OpKind.THRESHOLD
    array_fields: ClassVar[tuple[str, ...]] = ("theta",)
    state_names: ClassVar[tuple[str, ...]] = ()
    theta: np.ndarray
    comparator: Comparator = Comparator.GT

    def __post_init__(self) -> None:
        object.__setattr__(self, "comparator", Comparator(self.comparator))
        super().__post_init__()


@dataclass(frozen=True, eq=False, kw_only=True)
class _Spiking(NeuronOp):
    reset: ResetMode = ResetMode.ZERO
    comparator: Comparator = Comparator.GT

    def __post_init__(self) -> None:
        object.__setattr__(self, "reset", ResetMode(self.reset))
        object.__setattr__(self, "comparator", Comparator(self.comparator))
        super().__post_init__()


@dataclass(frozen=True, eq=False, kw_only=True)
class LIF(_Spiking):
    """v' = beta*v + gain*x + bias; s = [v' > theta]; reset per ``reset``."""

    kind: ClassVar[OpKind] = OpKind.LIF
    family: ClassVar[str] = "lif"
    array_fields: ClassVar[tuple[str, ...]] = ("beta", "gain", "bias", "theta", "v_reset", "v_init")
    beta: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    v_reset: np.ndarray
    v_init: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class IF(_Spiking):
    """v' = v + gain*x + bias; s = [v' > theta]; reset per ``reset``."""

    kind: ClassVar[OpKind] = OpKind.IF
    family: ClassVar[str] = "if"
    array_fields: ClassVar[tuple[str, ...]] = ("gain", "bias", "theta", "v_reset", "v_init")
    gain: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    v_reset: np.ndarray
    v_init: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class CubaLIF(_Spiking):
    """i = alpha*i + gain_i*x; v' = beta*v + gain_v*i + bias; fire and reset v (i untouched)."""

    kind: ClassVar[OpKind] = OpKind.CUBA_LIF
    family: ClassVar[str] = "cuba_lif"
    array_fields: ClassVar[tuple[str, ...]] = (
        "alpha", "beta", "gain_i", "gain_v", "bias", "theta", "v_reset", "v_init",
    )
    state_names: ClassVar[tuple[str, ...]] = ("i", "v")
    alpha: np.ndarray
    beta: np.ndarray
    gain_i: np.ndarray
    gain_v: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    v_reset: np.ndarray
    v_init: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class LI(NeuronOp):
    """Leaky integrator readout: v = beta*v + gain*x + bias; emits v (no spike)."""

    kind: ClassVar[OpKind] = OpKind.LI
    family: ClassVar[str] = "li"
    spiking: ClassVar[bool] = False
    array_fields: ClassVar[tuple[str, ...]] = ("beta", "gain", "bias", "v_init")
    beta: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    v_init: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class CubaLI(NeuronOp):
    """i = alpha*i + gain_i*x; v = beta*v + gain_v*i + bias; emits v."""

    kind: ClassVar[OpKind] = OpKind.CUBA_LI
    family: ClassVar[str] = "cuba_li"
    spiking: ClassVar[bool] = False
    array_fields: ClassVar[tuple[str, ...]] = ("alpha", "beta", "gain_i", "gain_v", "bias", "v_init")
    state_names: ClassVar[tuple[str, ...]] = ("i", "v")
    alpha: np.ndarray
    beta: np.ndarray
    gain_i: np.ndarray
    gain_v: np.ndarray
    bias: np.ndarray
    v_init: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class ALIF(_Spiking):
    """Adaptive LIF: v' = beta*v + gain*x + bias; theta_eff = theta + kappa*a;
    s = [v' > theta_eff]; reset (subtract uses theta_eff); then a = rho*a + s."""

    kind: ClassVar[OpKind] = OpKind.ALIF
    family: ClassVar[str] = "alif"
    array_fields: ClassVar[tuple[str, ...]] = (
        "beta", "gain", "bias", "theta", "rho", "kappa", "v_reset", "v_init",
    )
    state_names: ClassVar[tuple[str, ...]] = ("v", "a")
    beta: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    rho: np.ndarray
    kappa: np.ndarray
    v_reset: np.ndarray
    v_init: np.ndarray


def broadcast_params(shape: Shape, **given) -> dict[str, np.ndarray]:
    """Broadcast scalar or per-neuron values to float32 arrays of ``shape``."""
    return {
        key: np.broadcast_to(np.asarray(value, dtype=np.float32), shape).copy()
        for key, value in given.items()
    }
