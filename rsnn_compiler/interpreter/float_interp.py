"""Reference interpreter for float graphs: the definition of what the IR means.

Timing is the one driver's (``interpreter.schedule``): per step t, nodes are evaluated in
``topology.evaluation_order``; a node's input is the sum, in edge-list order, of
``value[src][t - delay]`` over its incoming edges (zero before step 0). A neuron receives the
per-edge terms and adds them one at a time onto its decayed state, in edge-list order.
Neurons are their families in ``rsnn_compiler.neurons.float_dynamics`` (equations there and in
docs/ir.md) run with the float32 primitive set ``float_prims.TorchFloat``; every product and sum
is rounded separately (no fused multiply-add), which reproduces snnTorch/PyTorch float32 spike
for spike. Stateless ops are evaluated here (``apply_stateless``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_prims import TorchFloat, fires
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.interpreter.schedule import build_schedule, collect, execute, output_index, zero_inputs
from rsnn_compiler.ir.dynamics import population
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import (
    Affine, BatchNorm, Conv1d, Conv2d, Delay, Flatten, Identity, Op, Output, Pool,
    PoolMode, Scale, Threshold,
)

DTYPE = torch.float32


def _t(arr: np.ndarray, device=None) -> torch.Tensor:
    t = torch.from_numpy(np.array(arr, dtype=np.float32))
    return t if device is None else t.to(device)


def stateless_kernel(op: Op, device=None):
    """A callable ``x -> y`` evaluating a stateless op on batches ``x`` shaped (batch, *in_shape),
    with its parameters converted to tensors (on ``device``) once. The interpreter and the GPU
    runtime use it, so both make the same torch calls with the same operands."""
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
        s0, e0 = op.start_dim % n + 1, op.end_dim % n + 1
        return lambda x: torch.flatten(x, s0, e0)
    if isinstance(op, BatchNorm):
        mean, var, gamma, beta = (_t(a, device) for a in (op.mean, op.var, op.gamma, op.beta))
        return lambda x: F.batch_norm(x, mean, var, gamma, beta, False, 0.0, op.eps)
    if isinstance(op, Threshold):
        theta = _t(op.theta, device)
        return lambda x: fires(x, theta, op.comparator)
    raise UserInputError(f"the float interpreter cannot evaluate {type(op).__name__}")


def apply_stateless(op: Op, x: torch.Tensor) -> torch.Tensor:
    """Evaluate a stateless op on a batch ``x`` shaped (batch, *in_shape)."""
    return stateless_kernel(op)(x)


def _identity(x):
    return x


def _pool_kernel(op: Pool, device=None):
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
    ones = torch.ones((channels, 1, *op.kernel), dtype=DTYPE, device=device)
    conv = F.conv2d if two_d else F.conv1d
    return lambda x: conv(x, ones, None, op.stride, op.padding, 1, channels)


def check_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    shape = graph.nodes[graph.input_name].in_shape
    x = np.asarray(x)
    if x.ndim < 2 or tuple(x.shape[2:]) != tuple(shape):
        raise UserInputError(
            f"inputs have shape {tuple(x.shape)} but the graph expects (time, batch, {', '.join(map(str, shape))});"
            " reshape the data or rebuild the model"
        )
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise UserInputError("inputs contain NaN or Inf; clean the data before running")
    return x


def run_float(graph: Graph, x: np.ndarray, record: bool = True) -> RunResult:
    """Run ``graph`` on ``x`` shaped (time, batch, *input_shape)."""
    if graph.attrs.domain is not Domain.FLOAT:
        raise UserInputError("run_float needs a float graph; use the fixed-point interpreter")
    x = check_inputs(graph, x)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    prims = TorchFloat()
    slots = build_schedule(graph, lambda op, _name: population(prims, op), lambda op, _name: stateless_kernel(op))
    zeros = zero_inputs(slots, x.shape[1], lambda shape: torch.zeros(shape, dtype=DTYPE))
    output = output_index(slots, graph.output_name)
    with torch.no_grad():
        hist, states = execute(slots, xt, zeros, record, output)

    return collect(slots, hist, states, output, record, lambda seq: torch.stack(seq).numpy())
