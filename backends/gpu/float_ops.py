"""Float ops in torch with the reference interpreter's exact arithmetic (float_interp.py).

Stateless ops: the same torch calls, operands and operation order as
``rsnn_compiler.interpreter.float_interp``, with parameters converted to tensors once instead of
every step. Neurons: their families in ``rsnn_compiler.neurons.float_dynamics`` run with the
interpreter's primitive set ``TorchFloat`` on the runtime's device. Elementwise float32 ops are
correctly rounded, so results are bit-identical to the interpreter on the CPU (reductions —
matmul, conv — use the same kernels with the same shapes there). On CUDA, reductions sum in a
different order: results are float32-accurate but not bit-identical to the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_prims import TorchFloat, fires
from rsnn_compiler.ir.dynamics import has_family, population
from rsnn_compiler.ir.ops import (
    Affine, BatchNorm, Conv1d, Conv2d, Delay, Flatten, Identity, NeuronOp, Op, Output, Pool,
    PoolMode, Scale, Threshold,
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


def neuron_kernel(op: NeuronOp, device):
    """One float population: its family run with ``TorchFloat`` on ``device``."""
    if not has_family(op):
        raise UserInputError(f"the GPU runtime cannot evaluate {type(op).__name__}")
    return population(TorchFloat(device), op)
