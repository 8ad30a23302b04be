"""Fixed-point ops in torch: the equations of docs/fixed-point.md §2–§3, batched.

Neurons are their families in ``rsnn_compiler.neurons.fixed_dynamics`` run with a primitive set:
``TorchInt`` (exact int64 tensors, used by the runtime) or ``gpu.qat.DualOps`` (exact int64
values plus a straight-through float surrogate for training). Every primitive is the integer
rule of ``neurons/intmath.py``:

    trunc_shift(x, n) = sign(x)·(|x| >> n)      decay(x, d) = trunc_shift(x·(4096 − d), 12)
    shift(x, e) = x·2^e (e ≥ 0) | x >> −e        overflow ∈ {wrap, wrap_once, saturate, saturate_sym}

Parameters are converted to device tensors once (``Population``); a step allocates only the
new state tensors and never writes in place, so recorded tensors stay valid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.arith import DECAY_ONE, DECAY_SHIFT, Overflow, signed_range
from rsnn_compiler.ir.dynamics import population
from rsnn_compiler.ir.fixed_ops import (
    FixedDense, FixedDualIF, FixedLI, FixedLIF, FixedMultiThreshold, FixedNeuron, Quantize,
    _FixedConv,
)
from rsnn_compiler.ir.ops import Comparator, Delay, Flatten, Identity, Op, Output, Pool, PoolMode

from rsnn_compiler.backends.gpu.exact import ExactLinear, LinearPlan, cap

I64 = torch.int64
INT64_MIN = -(1 << 63)


def _i64(arr, device) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.int64)).to(device)


# --------------------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------------------
class TorchInt:
    """The integer primitive set of ``neurons.family`` on int64 torch tensors of ``device``.

    With ``scalars=True`` (the runtime's neuron kernels) a parameter whose value is the same for
    every neuron is bound as a Python int: torch broadcasts it without a parameter tensor and the
    primitives skip work it makes trivial (the same int64 results, fewer kernel calls per step).
    """

    def __init__(self, device=None, scalars: bool = False):
        self.device = torch.device("cpu") if device is None else device
        self.scalars = scalars

    def param(self, name: str, value: np.ndarray) -> torch.Tensor | int:
        arr = np.asarray(value, dtype=np.int64)
        if self.scalars and arr.size and (arr == arr.flat[0]).all():
            return int(arr.flat[0])
        return _i64(arr, self.device)

    def initial(self, value, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
        if value is None:
            return torch.zeros((batch, *shape), dtype=I64, device=self.device)
        if isinstance(value, int):
            return torch.full((batch, *shape), value, dtype=I64, device=self.device)
        return value.expand((batch, *shape)).clone()

    @staticmethod
    def let(value, name: str = ""):
        return value

    @staticmethod
    def trunc_shift(x: torch.Tensor, n: int) -> torch.Tensor:
        """sign(x)·(|x| >> n) = x / 2^n rounded toward zero: one integer division (C truncation)."""
        return torch.div(x, 1 << n, rounding_mode="trunc") if n else x

    @staticmethod
    def decay(x: torch.Tensor, d) -> torch.Tensor:
        if isinstance(d, int) and d == DECAY_ONE:  # x·0: a state with no memory (e.g. du = 4095)
            return torch.zeros_like(x)
        return TorchInt.trunc_shift(x * (DECAY_ONE - d), DECAY_SHIFT)

    @staticmethod
    def mul_shift(a, b, n: int) -> torch.Tensor:
        """trunc0(a*b / 2^n)."""
        return TorchInt.trunc_shift(a * b, n)

    @staticmethod
    def lshift(x: torch.Tensor, n: int) -> torch.Tensor:
        return x << n if n else x

    @staticmethod
    def shift(x: torch.Tensor, mul: torch.Tensor, rsh: torch.Tensor) -> torch.Tensor:
        """Per-channel ``shift(x, e)``: ``mul = 2^max(e, 0)``, ``rsh = max(−e, 0)``."""
        return (x * mul) >> rsh

    @staticmethod
    def ovf(x: torch.Tensor, bits: int, mode: Overflow, state: str = "") -> torch.Tensor:
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
    def full_like(value, like: torch.Tensor) -> torch.Tensor:
        if isinstance(value, int):
            return torch.full_like(like, value)
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


class _NoMemory:
    """``decay(x, 4096)`` in the runtime: a state with no memory is the additive zero, so the
    definition's ``decay(i, du) + y`` is ``y`` itself and ``decay(a, d) - y`` is ``-y`` (every
    use of ``decay`` in the neuron definitions adds or subtracts it)."""

    def __add__(self, other):
        return other

    __radd__ = __add__

    def __sub__(self, other):
        return -other

    def __rsub__(self, other):
        return other


NO_MEMORY = _NoMemory()


class RuntimeInt(TorchInt):
    """``TorchInt`` for the runtime's neuron kernels: the same int64 values with fewer kernel
    calls per step.

    - ``decay(x, d)`` with a per-neuron ``d`` multiplies by ``4096 - d`` computed once per
      parameter tensor, not once per step; ``decay(x, 4096)`` is ``NO_MEMORY`` (no zero tensor,
      no addition of it);
    - on the CPU, ``ovf`` under a wrapping rule (wrap, wrap_once) first reads the tensor's min and
      max (one call): when every value is already in the rule's range the rule is the identity;
      when no value of a wrap_once state is more than one wrap out, wrap_once is the modular wrap
      (three calls instead of six). (Not on CUDA, where reading the bounds would synchronise
      every step.)
    """

    def __init__(self, device=None, scalars: bool = True):
        super().__init__(device, scalars)
        self._keep: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def decay(self, x: torch.Tensor, d) -> torch.Tensor:
        if isinstance(d, torch.Tensor):
            cached = self._keep.get(id(d))
            if cached is None or cached[0] is not d:
                cached = self._keep[id(d)] = (d, DECAY_ONE - d)
            return TorchInt.trunc_shift(x * cached[1], DECAY_SHIFT)
        if d == DECAY_ONE:
            return NO_MEMORY
        return TorchInt.decay(x, d)

    @staticmethod
    def ovf(x: torch.Tensor, bits: int, mode: Overflow, state: str = "") -> torch.Tensor:
        if mode in (Overflow.WRAP, Overflow.WRAP_ONCE) and bits < 64 and x.device.type == "cpu" and x.numel():
            lo, hi = (int(v) for v in torch.aminmax(x))
            half = 1 << (bits - 1)
            if mode is Overflow.WRAP and -half <= lo and hi <= half - 1:
                return x  # wrap: [-2^(b-1), 2^(b-1)) is left as it is
            if mode is Overflow.WRAP_ONCE and -half < lo and hi <= half:
                return x  # wrap_once: (-2^(b-1), 2^(b-1)] is left as it is
            if mode is Overflow.WRAP_ONCE and -3 * half < lo and hi <= 3 * half:
                # at most one wrap is needed anywhere: then wrap_once is the modular wrap into
                # (-2^(b-1), 2^(b-1)]: ((x + 2^(b-1) - 1) mod 2^b) - (2^(b-1) - 1), three calls
                return ((x + (half - 1)) & ((half << 1) - 1)) - (half - 1)
        return overflow(x, bits, mode)


def neuron_kernel(op: FixedNeuron, device):
    """Runtime kernel of one fixed population (int64): its family run with ``RuntimeInt``."""
    return population(RuntimeInt(device, scalars=True), op)


# --------------------------------------------------------------------------------------
# Stateless ops
# --------------------------------------------------------------------------------------
def quantize_values(op: Quantize, x: torch.Tensor, dtype: torch.dtype = I64) -> torch.Tensor:
    """clip(floor(x·2^shift + ½), lo, hi) in float64 (exact: power-of-two scale), as int64 (or
    ``dtype``: float32 holds the integers exactly when the limits are below 2^24)."""
    lo, hi = op.limits
    y = torch.floor(x.to(torch.float64) * float(2.0 ** op.shift) + 0.5)
    return torch.clamp(y, float(lo), float(hi)).to(dtype)


class QuantizeKernel:
    """The runtime's Quantize: int64 values, or float32 when ``out_float`` (plan_carriers)."""

    def __init__(self, op: Quantize):
        self.op = op
        self.out_float = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_values(self.op, x, torch.float32 if self.out_float else I64)


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
        self.linear = ExactLinear(_i64(op.weight, device), fn, events=isinstance(op, FixedDense))
        self.mul, self.rsh = _shift_tensors(op.weight_exp, tail, device)
        self.bias = None if op.bias is None else _i64(op.bias, device).reshape(self.mul.shape)
        self.plan = LinearPlan("int64")
        e = np.asarray(op.weight_exp, dtype=np.int64).reshape(-1)
        self.exp = int(e[0]) if e.size and (e == e[0]).all() else None  # one exponent: one shift
        self.bias_bound = int(np.abs(np.asarray(op.bias, dtype=np.int64)).max()) if op.bias is not None and np.size(op.bias) else 0
        self.in_range = False  # set by ``set_bound``: the accumulator rule is the identity
        self.scaled: ExactLinear | None = None  # W·2^e when the whole rule is one left shift (set_bound)
        self.cache_casts = False  # keep the input's float copy on it (GraphRuntime: runs that do not record)
        self.out_float = False  # give the exact product as float32 (GraphRuntime.plan_carriers)

    def set_bound(self, plan: LinearPlan, sum_bound: int) -> None:
        """The plan, and whether ``|shift(W ⊛ x, e) + bias| <= 2^(acc_bits-1) - 1`` is proven for
        ``|W ⊛ x| <= sum_bound`` (then every overflow mode leaves the value unchanged)."""
        self.plan = plan
        e_max = int(np.max(self.op.weight_exp)) if np.size(self.op.weight_exp) else 0
        shifted = sum_bound << e_max if e_max >= 0 else -((-sum_bound) >> -e_max)  # ceil for e < 0
        self.in_range = shifted + self.bias_bound <= (1 << (self.op.acc_bits - 1)) - 1
        # one exponent e > 0, no bias, in range: y = (W·x)·2^e = (W·2^e)·x. With the weights
        # scaled once, every partial sum is k·2^e with the same integers k the plan bounds, which
        # float32 / float64 hold exactly (a power of two only moves the exponent): no shift call.
        fold = self.exp is not None and self.exp > 0 and self.bias is None and self.in_range and plan.limbs == 1
        if fold and self.scaled is None:
            self.scaled = ExactLinear(self.linear.weight << self.exp, self.linear.fn, events=self.linear.events)
        elif not fold:
            self.scaled = None

    def direct_float32(self) -> bool:
        """Whether the whole rule is the product itself in float32 (one-limb float32 plan, weights
        pre-scaled or no shift, no bias, proven in range): its float32 result is then exact."""
        if self.plan.dtype != "float32" or self.plan.limbs != 1:
            return False
        return self.scaled is not None or (self.exp == 0 and self.bias is None and self.in_range)

    def out(self, ops, acc):
        y = ops.shift(acc, self.mul, self.rsh)
        if self.bias is not None:
            y = y + self.bias
        return ops.ovf(y, self.op.acc_bits, self.op.acc_overflow)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scaled is not None:
            return self.scaled.apply(x, self.plan, self.cache_casts, self.out_float)
        if self.out_float:  # direct_float32: the product is the rule
            return self.linear.apply(x, self.plan, self.cache_casts, True)
        acc = self.linear.apply(x, self.plan, self.cache_casts)
        if self.exp is None or self.bias is not None or not self.in_range:
            return self.out(TorchInt, acc)
        # one exponent, no bias, proven in range: shift(acc, e) is the whole rule
        return acc << self.exp if self.exp > 0 else (acc >> -self.exp if self.exp < 0 else acc)


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
        return QuantizeKernel(op)
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
