"""Float ops in torch with the reference interpreter's exact arithmetic (float_interp.py).

Same torch calls, operands and operation order as ``rsnn_compiler.interpreter.float_interp``,
with parameters converted to tensors once instead of every step. Elementwise float32 ops are
correctly rounded, so results are bit-identical to the interpreter on the CPU (reductions —
matmul, conv — use the same kernels with the same shapes there). On CUDA, reductions sum in a
different order: results are float32-accurate but not bit-identical to the CPU.

Neuron updates (``s_prev`` = previous spikes; several input edges are added one at a time onto
the decayed state in edge-list order):
    LIF base = ((beta*v + g*x_1) + g*x_2 ...) + bias     IF  base = (v + g*x_1 ...) + bias
    CubaLIF i = (alpha*i + g_i*x_1 ...); base = (beta*v + g_v*i) + bias
    ALIF theta_eff = theta + kappa*a; after firing a = rho*a + s
    resets: zero / subtract / subtract_deferred / subtract_nodelay / zero_hold / none
    DualThresholdIF / MultiThreshold (conversion neurons): m = (v + x_1 ...) + bias, then as
    ``interpreter/conversion_neurons.py``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_interp import fire_and_reset, fires
from rsnn_compiler.ir.conversion_ops import DualThresholdIF, MultiThreshold
from rsnn_compiler.ir.ops import (
    ALIF, IF, LI, LIF, Affine, BatchNorm, Comparator, Conv1d, Conv2d, CubaLI, CubaLIF, Delay,
    Flatten, Identity, NeuronOp, Op, Output, Pool, PoolMode, ResetMode, Scale, Threshold,
)

F32 = torch.float32


def _t(arr, device) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.float32)).to(device)


def stateless_kernel(op: Op, device):
    """A callable ``x -> y`` evaluating a stateless float op (interpreter ``apply_stateless``)."""
    if isinstance(op, (Output, Identity)) or (isinstance(op, Delay) and op.steps == 0):
        return _identity
    if isinstance(op, Affine):
        w, b = _t(op.weight, device), None if op.bias is None else _t(op.bias, device)
        return lambda x: F.linear(x, w, b)
    if isinstance(op, Scale):
        s = _t(op.scale, device)
        return lambda x: x * s
    if isinstance(op, (Conv1d, Conv2d)):
        conv = F.conv1d if isinstance(op, Conv1d) else F.conv2d
        w, b = _t(op.weight, device), None if op.bias is None else _t(op.bias, device)
        return lambda x: conv(x, w, b, op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, Pool):
        return _pool_kernel(op, device)
    if isinstance(op, Flatten):
        n = len(op.input_shape)
        s, e = op.start_dim % n + 1, op.end_dim % n + 1
        return lambda x: torch.flatten(x, s, e)
    if isinstance(op, BatchNorm):
        mean, var, gamma, beta = (_t(a, device) for a in (op.mean, op.var, op.gamma, op.beta))
        return lambda x: F.batch_norm(x, mean, var, gamma, beta, False, 0.0, op.eps)
    if isinstance(op, Threshold):
        theta = _t(op.theta, device)
        return lambda x: fires(x, theta, op.comparator)
    raise UserInputError(f"the GPU runtime cannot evaluate {type(op).__name__} in a float graph")


def _identity(x):
    return x


def _pool_kernel(op: Pool, device):
    two_d = op.spatial_dims == 2
    if op.mode is PoolMode.AVG:
        fn = F.avg_pool2d if two_d else F.avg_pool1d
        return lambda x: fn(x, op.kernel, op.stride, op.padding, count_include_pad=True)
    if op.mode is PoolMode.MAX:
        fn = F.max_pool2d if two_d else F.max_pool1d
        if op.padding and max(op.padding) > 0:
            pad = [p for p in reversed(op.padding) for _ in (0, 1)]
            return lambda x: fn(F.pad(x, pad, value=-math.inf), op.kernel, op.stride)
        return lambda x: fn(x, op.kernel, op.stride)
    channels = op.input_shape[0]
    ones = torch.ones((channels, 1, *op.kernel), dtype=F32, device=device)
    conv = F.conv2d if two_d else F.conv1d
    return lambda x: conv(x, ones, None, op.stride, op.padding, 1, channels)


class _Gain:
    """``x`` when every gain is 1 (no multiply, as the interpreter), else ``gain * x``."""

    def __init__(self, gain: np.ndarray, device):
        self.t = None if bool((np.asarray(gain) == 1).all()) else _t(gain, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.t is None else self.t * x


FLOAT_NEURONS = (LIF, IF, CubaLIF, LI, CubaLI, ALIF, DualThresholdIF, MultiThreshold)


class FloatState:
    __slots__ = ("v", "i", "a", "c", "s")


class FloatNeuronKernel:
    """One float population; ``step`` takes the per-edge input terms in edge-list order."""

    takes_terms = True

    def __init__(self, op: NeuronOp, device):
        if not isinstance(op, FLOAT_NEURONS):
            raise UserInputError(f"the GPU runtime cannot evaluate {type(op).__name__}")
        self.op = op
        self.device = device
        self.state_names = op.state_names
        p = lambda name: _t(getattr(op, name), device) if hasattr(op, name) else None  # noqa: E731
        self.beta, self.alpha, self.bias = p("beta"), p("alpha"), p("bias")
        self.theta, self.kappa, self.rho = p("theta"), p("kappa"), p("rho")
        self.v_reset, self.v_init = p("v_reset"), p("v_init")
        self.theta_neg = p("theta_neg")
        cuba = isinstance(op, (CubaLIF, CubaLI))
        self.gain = _Gain(op.gain, device) if hasattr(op, "gain") else None
        self.gain_i = _Gain(op.gain_i, device) if cuba else None
        self.gain_v = _Gain(op.gain_v, device) if cuba else None

    def init(self, batch: int) -> FloatState:
        shape = (batch, *self.op.shape)
        st = FloatState()
        zeros = torch.zeros(shape, dtype=F32, device=self.device)
        st.v = self.v_init.expand(shape).clone()
        st.i, st.a, st.c, st.s = zeros, zeros, zeros, zeros
        return st

    def states(self, st: FloatState) -> dict[str, torch.Tensor]:
        return {n: getattr(st, n) for n in self.state_names}

    @staticmethod
    def _acc(acc: torch.Tensor, gain: _Gain, xs: list[torch.Tensor]) -> torch.Tensor:
        for x in xs:
            acc = acc + gain(x)
        return acc

    def _current(self, st: FloatState, xs: list[torch.Tensor]) -> torch.Tensor:
        st.i = self._acc(self.alpha * st.i, self.gain_i, xs)
        return self.gain_v(st.i)

    def step(self, st: FloatState, xs: list[torch.Tensor]) -> torch.Tensor:
        op = self.op
        if isinstance(op, (DualThresholdIF, MultiThreshold)):
            return self._conversion(st, xs)
        if isinstance(op, LI):
            st.v = self._acc(self.beta * st.v, self.gain, xs) + self.bias
            return st.v
        if isinstance(op, CubaLI):
            st.v = self.beta * st.v + self._current(st, xs) + self.bias
            return st.v
        if isinstance(op, CubaLIF):
            drive = self._current(st, xs)
            base = self.beta * st.v + drive + self.bias
        elif isinstance(op, IF):
            base = self._acc(st.v, self.gain, xs) + self.bias
        else:  # LIF, ALIF
            base = self._acc(self.beta * st.v, self.gain, xs) + self.bias
        theta = self.theta + self.kappa * st.a if isinstance(op, ALIF) else self.theta
        v, s = fire_and_reset(op.reset, op.comparator, base, theta, self.v_reset, st.v, st.s)
        if isinstance(op, ALIF):
            st.a = self.rho * st.a + s
        st.v, st.s = v, s
        return s

    def _conversion(self, st: FloatState, xs: list[torch.Tensor]) -> torch.Tensor:
        op, theta = self.op, self.theta
        m = st.v
        for x in xs:
            m = m + x
        m = m + self.bias
        if isinstance(op, DualThresholdIF):
            pos = (m >= theta) if op.comparator is Comparator.GE else (m > theta)
            neg = (m < self.theta_neg) & (st.c > 0) & ~pos
            s = pos.to(F32) - neg.to(F32)
            st.v = m - theta * s
            st.c = st.c + s
        else:
            s = torch.clamp(torch.floor(m / theta), 0.0, float(op.levels))
            st.v = self.v_init.expand_as(m).clone() if op.reset is ResetMode.ZERO else m - theta * s
        st.s = s
        return s
