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


def _t(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.float32))


def apply_stateless(op: Op, x: torch.Tensor) -> torch.Tensor:
    """Evaluate a stateless op on a batch ``x`` shaped (batch, *in_shape)."""
    if isinstance(op, (Output, Identity)) or (isinstance(op, Delay) and op.steps == 0):
        return x
    if isinstance(op, Affine):
        return F.linear(x, _t(op.weight), None if op.bias is None else _t(op.bias))
    if isinstance(op, Scale):
        return x * _t(op.scale)
    if isinstance(op, (Conv1d, Conv2d)):
        conv = F.conv1d if isinstance(op, Conv1d) else F.conv2d
        bias = None if op.bias is None else _t(op.bias)
        return conv(x, _t(op.weight), bias, op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, Pool):
        return _pool(op, x)
    if isinstance(op, Flatten):
        n = len(op.input_shape)
        return torch.flatten(x, op.start_dim % n + 1, op.end_dim % n + 1)
    if isinstance(op, BatchNorm):
        return F.batch_norm(x, _t(op.mean), _t(op.var), _t(op.gamma), _t(op.beta), False, 0.0, op.eps)
    if isinstance(op, Threshold):
        return fires(x, _t(op.theta), op.comparator)
    raise UserInputError(f"the float interpreter cannot evaluate {type(op).__name__}")


def _pool(op: Pool, x: torch.Tensor) -> torch.Tensor:
    two_d = op.spatial_dims == 2
    if op.mode is PoolMode.AVG:
        fn = F.avg_pool2d if two_d else F.avg_pool1d
        return fn(x, op.kernel, op.stride, op.padding, count_include_pad=True)
    if op.mode is PoolMode.MAX:
        if op.padding and max(op.padding) > 0:
            pad = [p for p in reversed(op.padding) for _ in (0, 1)]
            x = F.pad(x, pad, value=-math.inf)
        fn = F.max_pool2d if two_d else F.max_pool1d
        return fn(x, op.kernel, op.stride)
    channels = op.input_shape[0]
    ones = torch.ones((channels, 1, *op.kernel), dtype=DTYPE)
    conv = F.conv2d if two_d else F.conv1d
    return conv(x, ones, None, op.stride, op.padding, 1, channels)


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
    slots = build_schedule(graph, lambda op, _name: population(prims, op), _stateless_kernel)
    zeros = zero_inputs(slots, x.shape[1], lambda shape: torch.zeros(shape, dtype=DTYPE))
    output = output_index(slots, graph.output_name)
    with torch.no_grad():
        hist, states = execute(slots, xt, zeros, record, output)

    return collect(slots, hist, states, output, record, lambda seq: torch.stack(seq).numpy())


def _stateless_kernel(op: Op, _name: str):
    return lambda x: apply_stateless(op, x)
