"""Fixed-point ops in torch: the equations of docs/fixed-point.md §2–§3, batched.

Neuron equations are written once against a primitive set ``ops``: ``IntOps`` (exact int64
tensors, used by the runtime) or ``gpu_qat.DualOps`` (exact int64 values plus a straight-through
float surrogate for training). Every primitive is the integer rule of ``fixed/arith.py``:

    trunc_shift(x, n) = sign(x)·(|x| >> n)      decay(x, d) = trunc_shift(x·(4096 − d), 12)
    shift(x, e) = x·2^e (e ≥ 0) | x >> −e        overflow ∈ {wrap, wrap_once, saturate, saturate_sym}

Parameters are converted to device tensors once (``NeuronParams``); a step allocates only the
new state tensors and never writes in place, so recorded tensors stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.arith import DECAY_ONE, DECAY_SHIFT, Overflow, signed_range
from rsnn_compiler.ir.fixed_ops import (
    FixedALIF, FixedDense, FixedDualIF, FixedLI, FixedLIF, FixedMultiThreshold, FixedNeuron,
    Quantize, _CurrentNeuron, _FixedConv,
)
from rsnn_compiler.ir.ops import Comparator, Delay, Flatten, Identity, Op, Output, Pool, PoolMode, ResetMode

from rsnn_compiler.backends.gpu.exact import ExactLinear, LinearPlan, cap

I64 = torch.int64
INT64_MIN = -(1 << 63)


def _i64(arr, device) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.int64)).to(device)


# --------------------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------------------
class IntOps:
    """Exact int64 primitives (docs/fixed-point.md §2) on torch tensors."""

    @staticmethod
    def trunc_shift(x: torch.Tensor, n: int) -> torch.Tensor:
        mag = x.abs() >> n
        return torch.where(x < 0, -mag, mag)

    @staticmethod
    def decay(x: torch.Tensor, mult: torch.Tensor) -> torch.Tensor:
        """``mult`` = 4096 − d (precomputed)."""
        return IntOps.trunc_shift(x * mult, DECAY_SHIFT)

    @staticmethod
    def lshift(x: torch.Tensor, n: int) -> torch.Tensor:
        return x << n if n else x

    @staticmethod
    def shift(x: torch.Tensor, mul: torch.Tensor, rsh: torch.Tensor) -> torch.Tensor:
        """Per-channel ``shift(x, e)``: ``mul = 2^max(e, 0)``, ``rsh = max(−e, 0)``."""
        return (x * mul) >> rsh

    @staticmethod
    def ovf(x: torch.Tensor, bits: int, mode: Overflow) -> torch.Tensor:
        return overflow(x, bits, mode)

    @staticmethod
    def cmp(v, theta, comparator: Comparator) -> torch.Tensor:
        return (v >= theta if comparator is Comparator.GE else v > theta).to(I64)

    @staticmethod
    def lt(a, b) -> torch.Tensor:
        return (a < b).to(I64)

    @staticmethod
    def positive(x) -> torch.Tensor:
        return (x > 0).to(I64)

    @staticmethod
    def fired(s) -> torch.Tensor:
        return s > 0

    @staticmethod
    def where(cond: torch.Tensor, a, b):
        return torch.where(cond, a, b)

    @staticmethod
    def floor_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.div(x, y, rounding_mode="floor")

    @staticmethod
    def clip(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return torch.clamp(x, lo, hi)

    @staticmethod
    def full_like(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return value.expand_as(like).clone()


def overflow(x: torch.Tensor, bits: int, mode: Overflow) -> torch.Tensor:
    """``arith.overflow`` on int64 tensors."""
    if mode is Overflow.WRAP:
        if bits >= 64:
            return x
        half = 1 << (bits - 1)
        return ((x + half) & ((1 << bits) - 1)) - half
    if mode is Overflow.WRAP_ONCE:
        half = 1 << (bits - 1)
        full = 1 << bits
        return torch.where(x > half, x - full, torch.where(x <= -half, x + full, x))
    if mode is Overflow.SATURATE:
        if bits >= 64:
            return x
        half = 1 << (bits - 1)
        return torch.clamp(x, -half, half - 1)
    half = 1 << (bits - 1)
    return torch.clamp(x, -(half - 1), half - 1)


# --------------------------------------------------------------------------------------
# Neurons
# --------------------------------------------------------------------------------------
@dataclass
class NeuronParams:
    """Per-neuron constants of one fixed population, as device tensors (pure functions of the op)."""

    op: FixedNeuron
    shape: tuple[int, ...]
    bias: torch.Tensor  # shift(bias_mant, bias_exp)
    v_init: torch.Tensor
    theta: torch.Tensor | None = None  # vth << vth_shift
    theta_neg: torch.Tensor | None = None
    v_reset: torch.Tensor | None = None
    du_mult: torch.Tensor | None = None  # 4096 - (du + du_offset)
    dv_mult: torch.Tensor | None = None  # 4096 - dv
    da_mult: torch.Tensor | None = None
    a_inc: torch.Tensor | None = None

    @classmethod
    def of(cls, op: FixedNeuron, device) -> "NeuronParams":
        t = lambda a: _i64(a, device)  # noqa: E731
        e = np.asarray(op.bias_exp, dtype=np.int64)
        bias = np.where(e >= 0, op.bias_mant << np.maximum(e, 0), op.bias_mant >> np.maximum(-e, 0))
        p = cls(op=op, shape=tuple(op.shape), bias=t(bias), v_init=t(op.v_init))
        if hasattr(op, "vth"):
            p.theta = t(op.vth << op.vth_shift)
        if isinstance(op, FixedDualIF):
            p.theta_neg = t(op.vth_neg << op.vth_shift)
        if isinstance(op, FixedLIF):
            p.v_reset = t(op.v_reset)
        if isinstance(op, _CurrentNeuron):
            p.du_mult = t(DECAY_ONE - (op.du + op.du_offset))
            p.dv_mult = t(DECAY_ONE - op.dv)
        if isinstance(op, FixedALIF):
            p.da_mult = t(DECAY_ONE - op.da)
            p.a_inc = t(op.a_inc)
        return p


@dataclass
class NeuronState:
    """u (recorded as ``i``), v, adaptation a, net count c, previous output s."""

    u: Any
    v: Any
    a: Any
    c: Any
    s: Any
    extra: dict = field(default_factory=dict)

    def record(self, names: tuple[str, ...]) -> dict[str, Any]:
        table = {"i": self.u, "v": self.v, "a": self.a, "c": self.c}
        return {n: table[n] for n in names}


def init_state(p: NeuronParams, batch: int, device) -> NeuronState:
    shape = (batch, *p.shape)
    zeros = torch.zeros(shape, dtype=I64, device=device)
    return NeuronState(u=zeros, v=p.v_init.expand(shape).clone(), a=zeros, c=zeros, s=zeros)


def _integrate(ops, p: NeuronParams, st: NeuronState, x):
    """u = ovf_u(decay(u, du+off) + (x << s)); return base = ovf_v(decay(v, dv) + u + b)."""
    op = p.op
    st.u = ops.ovf(ops.decay(st.u, p.du_mult) + ops.lshift(x, op.input_shift), op.u_bits, op.u_overflow)
    return ops.ovf(ops.decay(st.v, p.dv_mult) + st.u + p.bias, op.v_bits, op.v_overflow)


def _lif(ops, p: NeuronParams, st: NeuronState, x):
    op = p.op
    base = _integrate(ops, p, st, x)
    theta = p.theta + st.a if isinstance(op, FixedALIF) else p.theta
    ovf = lambda y: ops.ovf(y, op.v_bits, op.v_overflow)  # noqa: E731
    cmp, mode = op.comparator, op.reset
    if mode is ResetMode.ZERO:
        s = ops.cmp(base, theta, cmp)
        v = ops.where(ops.fired(s), p.v_reset, base)
    elif mode is ResetMode.SUBTRACT:
        s = ops.cmp(base, theta, cmp)
        v = ovf(base - s * theta)
    elif mode is ResetMode.SUBTRACT_DEFERRED:
        v = ovf(base - st.s * theta)
        s = ops.cmp(v, theta, cmp)
    elif mode is ResetMode.SUBTRACT_NODELAY:
        r = ops.cmp(st.v, theta, cmp)
        m = ovf(base - r * theta)
        s = ops.cmp(m, theta, cmp)
        v = ovf(m - (s - r) * theta)
    elif mode is ResetMode.ZERO_HOLD:
        v = ops.where(ops.fired(st.s), 0, base)
        s = ops.cmp(v, theta, cmp)
    else:  # NONE
        v = base
        s = ops.cmp(v, theta, cmp)
    if isinstance(op, FixedALIF):
        st.a = ovf(ops.decay(st.a, p.da_mult) + s * p.a_inc)
    st.v, st.s = v, s
    return s


def _dual_if(ops, p: NeuronParams, st: NeuronState, x):
    op = p.op
    ovf = lambda y: ops.ovf(y, op.v_bits, op.v_overflow)  # noqa: E731
    m = ovf(st.v + ops.lshift(x, op.input_shift) + p.bias)
    pos = ops.cmp(m, p.theta, op.comparator)
    neg = ops.lt(m, p.theta_neg) * ops.positive(st.c)
    s = pos - neg * (1 - pos)
    st.v = ovf(m - s * p.theta)
    st.c = st.c + s
    st.s = s
    return s


def _mtn(ops, p: NeuronParams, st: NeuronState, x):
    op = p.op
    ovf = lambda y: ops.ovf(y, op.v_bits, op.v_overflow)  # noqa: E731
    m = ovf(st.v + ops.lshift(x, op.input_shift) + p.bias)
    n = ops.clip(ops.floor_div(m, p.theta), 0, op.levels)
    if op.reset is ResetMode.ZERO:
        st.v = ops.full_like(p.v_init, m)
    else:
        st.v = ovf(m - n * p.theta)
    st.s = n
    return n


def neuron_step(ops, p: NeuronParams, st: NeuronState, x):
    """Advance ``st`` one step on the summed integer input ``x``; return the node's output."""
    op = p.op
    if isinstance(op, FixedLI):
        st.v = _integrate(ops, p, st, x)
        return st.v
    if isinstance(op, FixedLIF):
        return _lif(ops, p, st, x)
    if isinstance(op, FixedDualIF):
        return _dual_if(ops, p, st, x)
    if isinstance(op, FixedMultiThreshold):
        return _mtn(ops, p, st, x)
    raise UserInputError(f"the GPU runtime cannot evaluate {type(op).__name__}")


class FixedNeuronKernel:
    """Runtime kernel of one fixed population (int64)."""

    takes_terms = False

    def __init__(self, op: FixedNeuron, device):
        self.params = NeuronParams.of(op, device)
        self.device = device
        self.state_names = op.state_names

    def init(self, batch: int) -> NeuronState:
        return init_state(self.params, batch, self.device)

    def step(self, st: NeuronState, x: torch.Tensor) -> torch.Tensor:
        return neuron_step(IntOps, self.params, st, x)

    def states(self, st: NeuronState) -> dict[str, torch.Tensor]:
        return st.record(self.state_names)


# --------------------------------------------------------------------------------------
# Stateless ops
# --------------------------------------------------------------------------------------
def quantize_values(op: Quantize, x: torch.Tensor) -> torch.Tensor:
    """clip(floor(x·2^shift + ½), lo, hi) in float64 (exact: power-of-two scale), as int64."""
    lo, hi = op.limits
    y = torch.floor(x.to(torch.float64) * float(2.0 ** op.shift) + 0.5)
    return torch.clamp(y, float(lo), float(hi)).to(I64)


def _shift_tensors(weight_exp: np.ndarray, ndim_tail: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    e = np.asarray(weight_exp, dtype=np.int64).reshape((-1,) + (1,) * ndim_tail)
    mul = np.left_shift(np.int64(1), np.maximum(e, 0))
    return _i64(mul, device), _i64(np.maximum(-e, 0), device)


def _dense_fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.matmul(x, w.t())


def _conv_fn(op: _FixedConv):
    conv = F.conv1d if op.spatial_dims == 1 else F.conv2d

    def fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return conv(x, w, None, op.stride, op.padding, op.dilation, op.groups)

    return fn


class SynapseKernel:
    """FixedDense / FixedConv: y = ovf_acc(shift(W ⊛ x, weight_exp) + bias), exact."""

    def __init__(self, op: FixedDense | _FixedConv, device):
        self.op = op
        tail = 0 if isinstance(op, FixedDense) else op.spatial_dims
        fn = _dense_fn if isinstance(op, FixedDense) else _conv_fn(op)
        self.linear = ExactLinear(_i64(op.weight, device), fn)
        self.mul, self.rsh = _shift_tensors(op.weight_exp, tail, device)
        self.bias = None if op.bias is None else _i64(op.bias, device).reshape(self.mul.shape)
        self.plan = LinearPlan("int64")

    def out(self, ops, acc):
        y = ops.shift(acc, self.mul, self.rsh)
        if self.bias is not None:
            y = y + self.bias
        return ops.ovf(y, self.op.acc_bits, self.op.acc_overflow)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(IntOps, self.linear.apply(x, self.plan))


def pool_int(op: Pool, x: torch.Tensor) -> torch.Tensor:
    """Exact integer sum / max pooling (zero padding; max padding never wins)."""
    if op.mode is PoolMode.AVG:
        raise UserInputError("average pooling is not defined on integers; fold it into a layer")
    if any(op.padding):
        fill = INT64_MIN if op.mode is PoolMode.MAX else 0
        pad = [p for p in reversed(op.padding) for _ in (0, 1)]
        x = F.pad(x, pad, value=fill)
    win = x
    for i in range(op.spatial_dims):
        win = win.unfold(2 + i, op.kernel[i], op.stride[i])
    axes = tuple(range(-op.spatial_dims, 0))
    return win.amax(dim=axes) if op.mode is PoolMode.MAX else win.sum(dim=axes)


def flatten(op: Flatten, x: torch.Tensor) -> torch.Tensor:
    n = len(op.input_shape)
    return torch.flatten(x, op.start_dim % n + 1, op.end_dim % n + 1)


def stateless_kernel(op: Op, device):
    """A callable ``x -> y`` for a stateless op of a fixed graph."""
    if isinstance(op, (Output, Identity)) or (isinstance(op, Delay) and op.steps == 0):
        return _identity
    if isinstance(op, Quantize):
        return lambda x: quantize_values(op, x)
    if isinstance(op, (FixedDense, _FixedConv)):
        return SynapseKernel(op, device)
    if isinstance(op, Pool):
        return lambda x: pool_int(op, x)
    if isinstance(op, Flatten):
        return lambda x: flatten(op, x)
    raise UserInputError(f"the GPU runtime cannot evaluate {type(op).__name__} in a fixed graph")


def _identity(x):
    return x


# --------------------------------------------------------------------------------------
# Value bounds (to pick exact float strategies on CUDA)
# --------------------------------------------------------------------------------------
def output_bound(op: Op, in_bound: int) -> int:
    """max |y| given max |x| = in_bound (UNKNOWN where the op does not bound its output)."""
    if isinstance(op, (FixedLIF, FixedDualIF)):
        return 1
    if isinstance(op, FixedMultiThreshold):
        return int(op.levels)
    if isinstance(op, FixedLI):
        return _range_bound(op.v_bits, op.v_overflow)
    if isinstance(op, Quantize):
        lo, hi = op.limits
        return max(abs(lo), abs(hi))
    if isinstance(op, (FixedDense, _FixedConv)):
        return _range_bound(op.acc_bits, op.acc_overflow)
    if isinstance(op, Pool) and op.mode is PoolMode.SUM:
        return cap(in_bound * int(np.prod(op.kernel)))
    return in_bound


def _range_bound(bits: int, mode: Overflow) -> int:
    if mode is Overflow.WRAP_ONCE or bits >= 63:  # one wrap does not bound a far-out value
        return cap(1 << 63)
    lo, hi = signed_range(bits, mode)
    return max(abs(lo), abs(hi))
