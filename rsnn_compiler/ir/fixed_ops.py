"""Fixed-point op kinds: integer synapses, neurons and the input quantizer.

Each op fully describes its arithmetic (bit widths, overflow modes, shifts); a profile
(``rsnn_compiler.fixed.profiles``) only constrains the values, checked by
``rsnn_compiler.ir.verify_fixed``. Equations: docs/fixed-point.md §3 and the reference
interpreter ``rsnn_compiler.interpreter.fixed_interp``. All arrays are int64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.ir.ops import (
    Comparator, NeuronOp, Op, OpKind, ResetMode, Shape, _Conv, _tuple, check_shapes,
    dense_shape_problems, freeze_array,
)


def _int_arrays(op: Op) -> None:
    """Freeze array fields as int64 (floats with integral values are accepted, others refused)."""
    for name in op.array_fields:
        value = getattr(op, name)
        if value is None:
            if name not in op.optional_arrays:
                raise ValueError(f"{type(op).__name__}: parameter '{name}' is required")
            continue
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
                raise ValueError(f"{type(op).__name__}: parameter '{name}' must hold integers")
        object.__setattr__(op, name, freeze_array(arr, np.int64))


def _enum(op: Op, **fields: type) -> None:
    for name, cls in fields.items():
        object.__setattr__(op, name, cls(getattr(op, name)))


def _ints(op: Op, *names: str) -> None:
    for name in names:
        object.__setattr__(op, name, int(getattr(op, name)))


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedOp(Op):
    """Marker base: every fixed op stores int64 arrays."""

    def __post_init__(self) -> None:
        _int_arrays(self)
        check_shapes(self)


# --------------------------------------------------------------------------------------
# Input quantizer and synapses
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class Quantize(FixedOp):
    """y = clip(floor(x * 2^shift + 1/2), lo, hi): float features -> integers."""

    kind: ClassVar[OpKind] = OpKind.QUANTIZE
    shape: Shape
    shift: int = 0
    bits: int = 8
    signed: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _tuple(self.shape))
        _ints(self, "shift", "bits")
        object.__setattr__(self, "signed", bool(self.signed))
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return self.shape

    @property
    def limits(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedDense(FixedOp):
    """y[o] = ovf_acc(shift(sum_j W[o,j] x[j], weight_exp[o]) + bias[o])."""

    kind: ClassVar[OpKind] = OpKind.FIXED_DENSE
    array_fields: ClassVar[tuple[str, ...]] = ("weight", "weight_exp", "bias")
    optional_arrays: ClassVar[tuple[str, ...]] = ("bias",)
    weight: np.ndarray
    weight_exp: np.ndarray
    bias: np.ndarray | None = None
    weight_bits: int = 8
    acc_bits: int = 32
    acc_overflow: Overflow = Overflow.SATURATE

    def __post_init__(self) -> None:
        _ints(self, "weight_bits", "acc_bits")
        _enum(self, acc_overflow=Overflow)
        super().__post_init__()

    @property
    def in_shape(self) -> Shape:
        return (int(self.weight.shape[1]),) if self.weight.ndim == 2 else ()

    @property
    def out_shape(self) -> Shape:
        return (int(self.weight.shape[0]),) if self.weight.ndim == 2 else ()

    def shape_problems(self) -> list[str]:
        return dense_shape_problems(self.weight, weight_exp=self.weight_exp, bias=self.bias)


@dataclass(frozen=True, eq=False, kw_only=True)
class _FixedConv(_Conv):
    """y[c] = ovf_acc(shift(conv(x, W)[c], weight_exp[c]) + bias[c]); geometry as _Conv."""

    array_fields: ClassVar[tuple[str, ...]] = ("weight", "weight_exp", "bias")
    optional_arrays: ClassVar[tuple[str, ...]] = ("bias",)
    weight_exp: np.ndarray
    weight_bits: int = 8
    acc_bits: int = 32
    acc_overflow: Overflow = Overflow.SATURATE

    def __post_init__(self) -> None:
        _ints(self, "weight_bits", "acc_bits")
        _enum(self, acc_overflow=Overflow)
        super().__post_init__()  # _Conv normalises geometry, then freezes arrays
        _int_arrays(self)


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedConv1d(_FixedConv):
    kind: ClassVar[OpKind] = OpKind.FIXED_CONV1D
    spatial_dims: ClassVar[int] = 1


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedConv2d(_FixedConv):
    kind: ClassVar[OpKind] = OpKind.FIXED_CONV2D
    spatial_dims: ClassVar[int] = 2


# --------------------------------------------------------------------------------------
# Neurons
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class FixedNeuron(NeuronOp):
    """Common fixed-neuron attributes: input shift and membrane width/overflow."""

    input_shift: int = 6
    v_bits: int = 24
    v_overflow: Overflow = Overflow.SATURATE_SYM

    def __post_init__(self) -> None:
        _ints(self, "input_shift", "v_bits")
        _enum(self, v_overflow=Overflow)
        _int_arrays(self)
        check_shapes(self)


@dataclass(frozen=True, eq=False, kw_only=True)
class _CurrentNeuron(FixedNeuron):
    """Adds the current state u (recorded as ``i``): u = ovf_u(decay(u, du+du_offset) + (x<<s))."""

    du_offset: int = 1
    u_bits: int = 24
    u_overflow: Overflow = Overflow.WRAP_ONCE

    def __post_init__(self) -> None:
        _ints(self, "du_offset", "u_bits")
        _enum(self, u_overflow=Overflow)
        super().__post_init__()


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedLIF(_CurrentNeuron):
    """Lava-style CUBA LIF (LIF with du=4095, IF with dv=0); equations in docs/fixed-point.md §3.4."""

    kind: ClassVar[OpKind] = OpKind.FIXED_LIF
    family: ClassVar[str] = "lif"
    array_fields: ClassVar[tuple[str, ...]] = (
        "du", "dv", "bias_mant", "bias_exp", "vth", "v_reset", "v_init",
    )
    state_names: ClassVar[tuple[str, ...]] = ("i", "v")
    du: np.ndarray
    dv: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    vth: np.ndarray
    v_reset: np.ndarray
    v_init: np.ndarray
    reset: ResetMode = ResetMode.ZERO
    comparator: Comparator = Comparator.GT
    vth_shift: int = 6

    def __post_init__(self) -> None:
        _enum(self, reset=ResetMode, comparator=Comparator)
        _ints(self, "vth_shift")
        super().__post_init__()


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedALIF(FixedLIF):
    """FixedLIF with threshold theta + a; after firing a = ovf_v(decay(a, da) + a_inc*s)."""

    kind: ClassVar[OpKind] = OpKind.FIXED_ALIF
    family: ClassVar[str] = "alif"
    array_fields: ClassVar[tuple[str, ...]] = FixedLIF.array_fields + ("da", "a_inc")
    state_names: ClassVar[tuple[str, ...]] = ("i", "v", "a")
    da: np.ndarray
    a_inc: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedLI(_CurrentNeuron):
    """Leaky-integrator readout: FixedLIF's u and v without firing; emits v."""

    kind: ClassVar[OpKind] = OpKind.FIXED_LI
    family: ClassVar[str] = "li"
    spiking: ClassVar[bool] = False
    array_fields: ClassVar[tuple[str, ...]] = ("du", "dv", "bias_mant", "bias_exp", "v_init")
    state_names: ClassVar[tuple[str, ...]] = ("i", "v")
    du: np.ndarray
    dv: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    v_init: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedDualIF(FixedNeuron):
    """Dual-threshold IF: +1 if cmp(m, theta); -1 if m < theta_neg and count > 0 (§3.7)."""

    kind: ClassVar[OpKind] = OpKind.FIXED_DUAL_IF
    family: ClassVar[str] = "dual_if"
    array_fields: ClassVar[tuple[str, ...]] = ("bias_mant", "bias_exp", "vth", "vth_neg", "v_init")
    state_names: ClassVar[tuple[str, ...]] = ("v", "c")
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    vth: np.ndarray
    vth_neg: np.ndarray
    v_init: np.ndarray
    comparator: Comparator = Comparator.GE
    vth_shift: int = 6

    def __post_init__(self) -> None:
        _enum(self, comparator=Comparator)
        _ints(self, "vth_shift")
        super().__post_init__()


@dataclass(frozen=True, eq=False, kw_only=True)
class FixedMultiThreshold(FixedNeuron):
    """Multi-threshold (burst / SFN) neuron: n = clip(floor(m / theta), 0, levels) (§3.8)."""

    kind: ClassVar[OpKind] = OpKind.FIXED_MTN
    family: ClassVar[str] = "mtn"
    array_fields: ClassVar[tuple[str, ...]] = ("bias_mant", "bias_exp", "vth", "v_init")
    state_names: ClassVar[tuple[str, ...]] = ("v",)
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    vth: np.ndarray
    v_init: np.ndarray
    levels: int = 1
    reset: ResetMode = ResetMode.SUBTRACT
    vth_shift: int = 6

    def __post_init__(self) -> None:
        _enum(self, reset=ResetMode)
        _ints(self, "levels", "vth_shift")
        super().__post_init__()


FIXED_OP_CLASSES: tuple[type[Op], ...] = (
    Quantize, FixedDense, FixedConv1d, FixedConv2d, FixedLIF, FixedALIF, FixedLI, FixedDualIF,
    FixedMultiThreshold,
)
FIXED_NEURONS: tuple[type[NeuronOp], ...] = (
    FixedLIF, FixedALIF, FixedLI, FixedDualIF, FixedMultiThreshold,
)

_NEURON_DEFAULTS = {"du": 4095, "dv": 0, "bias_mant": 0, "bias_exp": 0, "v_reset": 0, "v_init": 0,
                    "da": 0, "a_inc": 0, "vth_neg": 0}


def make_neuron(cls: type[FixedNeuron], shape, **params) -> FixedNeuron:
    """Build a fixed neuron, broadcasting scalar parameters to ``shape``.

    Missing array parameters default to du=4095 (no current memory), dv=0, bias 0, v_reset=0,
    v_init=0, da=0, a_inc=0, vth_neg=0; ``vth`` is required where the op has one.
    """
    shape = _tuple(shape)
    kwargs = {}
    for name in cls.array_fields:
        value = params.pop(name, _NEURON_DEFAULTS.get(name))
        if value is None:
            raise ValueError(f"{cls.__name__}: parameter '{name}' is required")
        kwargs[name] = np.broadcast_to(np.asarray(value), shape).copy()
    return cls(**kwargs, **params)
