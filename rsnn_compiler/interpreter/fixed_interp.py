"""Reference interpreter for fixed-point graphs: the executable form of docs/fixed-point.md.

Timing is the one driver's (``interpreter.schedule``): per step t, nodes run in
``topology.evaluation_order``; a node's input is the exact integer sum of ``value[src][t - delay]``
over its incoming edges (zero before step 0). Neurons are their families in
``rsnn_compiler.neurons.fixed_dynamics`` run with the numpy primitive set ``NumpyInt``.
Everything is numpy int64. Dense sums ``W x`` are exact integers: numpy's int64 matmul (no BLAS),
or a float32 / float64 matmul when every partial sum is provably an integer below 2^24 / 2^53
(``DenseSum``).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed import arith as A
from rsnn_compiler.interpreter.float_interp import check_inputs
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.interpreter.schedule import build_schedule, collect, execute, output_index, zero_inputs
from rsnn_compiler.ir.dynamics import population
from rsnn_compiler.ir.fixed_ops import FixedDense, Quantize, _FixedConv
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Delay, Flatten, Identity, Op, Output, Pool, PoolMode
from rsnn_compiler.neurons import NumpyInt

I64 = np.int64
FLOAT64_EXACT = 1 << 53  # integers below this add and multiply exactly in float64
FLOAT32_EXACT = 1 << 24  # ... in float32


# --------------------------------------------------------------------------------------
# Stateless ops
# --------------------------------------------------------------------------------------
def quantize_input(op: Quantize, x: np.ndarray) -> np.ndarray:
    """clip(floor(x * 2^shift + 1/2), lo, hi) in float64 (exact for power-of-two scales)."""
    lo, hi = op.limits
    y = np.floor(np.asarray(x, dtype=np.float64) * np.exp2(op.shift) + 0.5)
    return np.clip(y, lo, hi).astype(I64)


def _windows(x: np.ndarray, kernel, stride, dilation) -> np.ndarray:
    """(B, C, *out_spatial, *kernel) view of an already padded (B, C, *spatial) array."""
    n = len(kernel)
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    win = sliding_window_view(x, eff, axis=tuple(range(2, 2 + n)))
    sl = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
    sl += tuple(slice(None, None, d) for d in dilation)
    return win[sl]


def _pad(x: np.ndarray, padding, value: int = 0) -> np.ndarray:
    if not any(padding):
        return x
    width = ((0, 0), (0, 0)) + tuple((p, p) for p in padding)
    return np.pad(x, width, constant_values=value)


def conv_int(x: np.ndarray, op: _FixedConv) -> np.ndarray:
    """Exact integer cross-correlation (PyTorch conv semantics) of (B, C_in, *spatial)."""
    n = op.spatial_dims
    win = _windows(_pad(x, op.padding), op.weight.shape[2:], op.stride, op.dilation)
    g = op.groups
    cin = op.weight.shape[1]
    cout = op.weight.shape[0] // g
    letters = "ij"[:n]
    spatial = "hw"[:n]
    expr = f"bc{spatial}{letters},oc{letters}->bo{spatial}"
    outs = [
        np.einsum(expr, win[:, k * cin:(k + 1) * cin], op.weight[k * cout:(k + 1) * cout])
        for k in range(g)
    ]
    return np.concatenate(outs, axis=1).astype(I64)


def pool_int(x: np.ndarray, op: Pool) -> np.ndarray:
    if op.mode is PoolMode.AVG:
        raise UserInputError("average pooling is not defined on integers; fold it into a layer")
    fill = np.iinfo(I64).min if op.mode is PoolMode.MAX else 0
    win = _windows(_pad(x, op.padding, fill), op.kernel, op.stride, (1,) * op.spatial_dims)
    axes = tuple(range(-op.spatial_dims, 0))
    return (win.max(axis=axes) if op.mode is PoolMode.MAX else win.sum(axis=axes)).astype(I64)


def _count(stats: dict | None, key: str, before: np.ndarray, after: np.ndarray) -> None:
    if stats is not None:
        stats[key] = stats.get(key, 0) + int(np.count_nonzero(before != after))


def _synapse_out(op, acc: np.ndarray, stats: dict | None = None, key: str = "") -> np.ndarray:
    e = op.weight_exp.reshape((-1,) + (1,) * (acc.ndim - 2))
    y = A.shift(acc, e)
    if op.bias is not None:
        y = y + op.bias.reshape(e.shape)
    out = A.overflow(y, op.acc_bits, op.acc_overflow)
    _count(stats, key, y, out)
    return out


class DenseSum:
    """``x @ W.T`` exactly, for int64 ``x`` (batch, in) and integer ``W`` (out, in).

    When ``max|x| * max_o sum_j |W[o, j]| < 2^53`` (``2^24``) every product and partial sum is an
    integer float64 (float32) represents exactly, so a float64 (float32) matmul (torch's, under its
    thread setting: ``rsnn_compiler.threads``; any summation order, fused multiply-adds included)
    returns the exact sum; otherwise numpy's int64 matmul.
    """

    def __init__(self, weight: np.ndarray):
        self.weight = np.asarray(weight, dtype=I64)
        self.row_bound = int(np.abs(self.weight).sum(axis=1).max()) if self.weight.size else 0
        self._wt: dict[type, torch.Tensor] = {}  # W.T as float32 / float64

    def __call__(self, x: np.ndarray) -> np.ndarray:
        bound = (int(np.abs(x).max()) if x.size else 0) * self.row_bound
        if bound >= FLOAT64_EXACT:
            return x @ self.weight.T
        dtype = np.float32 if bound < FLOAT32_EXACT else np.float64
        if dtype not in self._wt:
            self._wt[dtype] = torch.from_numpy(np.ascontiguousarray(self.weight.T, dtype=dtype))
        return (torch.from_numpy(x.astype(dtype)) @ self._wt[dtype]).numpy().astype(I64)


def stateless_kernel(op: Op, stats: dict | None = None, name: str = ""):
    """A callable ``x -> y`` evaluating a stateless op on int64 batches (``apply_stateless``),
    with a dense layer's ``DenseSum`` prepared once."""
    if isinstance(op, FixedDense):
        dense = DenseSum(op.weight)
        return lambda x: _synapse_out(op, dense(x), stats, f"acc/{name}")
    return lambda x: apply_stateless(op, x, stats, name)


def apply_stateless(op: Op, x: np.ndarray, stats: dict | None = None, name: str = "") -> np.ndarray:
    """Evaluate a stateless op on an int64 batch ``x`` shaped (batch, *in_shape).

    ``stats`` (optional) counts accumulator overflow events under ``"acc/<name>"``.
    """
    if isinstance(op, (Output, Identity)) or (isinstance(op, Delay) and op.steps == 0):
        return x
    if isinstance(op, Quantize):
        return quantize_input(op, x)
    if isinstance(op, FixedDense):
        return _synapse_out(op, DenseSum(op.weight)(x), stats, f"acc/{name}")
    if isinstance(op, _FixedConv):
        return _synapse_out(op, conv_int(x, op), stats, f"acc/{name}")
    if isinstance(op, Pool):
        return pool_int(x, op)
    if isinstance(op, Flatten):
        n = len(op.input_shape)
        s, e = op.start_dim % n + 1, op.end_dim % n + 1
        return x.reshape(*x.shape[:s], -1, *x.shape[e + 1:])
    raise UserInputError(f"the fixed-point interpreter cannot evaluate {type(op).__name__}")


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------
def _input_values(graph: Graph, x: np.ndarray) -> np.ndarray:
    """x as float64 if only Quantize nodes read the input, else as exact int64."""
    name = graph.input_name
    readers = [graph.nodes[e.dst] for e in graph.out_edges(name)]
    if readers and all(isinstance(r, Quantize) for r in readers):
        return np.asarray(x, dtype=np.float64)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        return x.astype(I64)
    if not np.array_equal(x, np.round(x)):
        raise UserInputError(
            "this fixed-point graph takes integer inputs (its Input feeds integer ops directly);"
            " pass integers or add a Quantize node after the Input"
        )
    return x.astype(I64)


class _IntegerInput:
    """A neuron's population whose summed input is made exact int64 first."""

    def __init__(self, pop):
        self.pop, self.takes_terms, self.state_names = pop, False, pop.state_names

    def init(self, batch: int):
        return self.pop.init(batch)

    def step(self, st, x):
        return self.pop.step(st, x.astype(I64, copy=False))

    def states(self, st):
        return {k: v.copy() for k, v in self.pop.states(st).items()}


def run_fixed(graph: Graph, x: np.ndarray, record: bool = True, stats: dict | None = None) -> RunResult:
    """Run a fixed graph on ``x`` shaped (time, batch, *input_shape); results are int64.

    If ``stats`` is a dict it receives overflow counts: ``"<state>/<node>"`` (i, v, a) and
    ``"acc/<synapse>"`` = number of elements whose value the overflow rule changed.
    """
    if graph.attrs.domain is not Domain.FIXED:
        raise UserInputError("run_fixed needs a fixed-point graph; quantize it or use run_float")
    x = _input_values(graph, check_inputs(graph, x))

    def neuron(op, name):
        return _IntegerInput(population(NumpyInt(stats, name), op))

    slots = build_schedule(graph, neuron, lambda op, name: stateless_kernel(op, stats, name))
    zeros = zero_inputs(slots, x.shape[1], lambda shape: np.zeros(shape, I64))
    output = output_index(slots, graph.output_name)
    hist, states = execute(slots, x, zeros, record, output)

    def stack(seq: list[np.ndarray]) -> np.ndarray:
        return np.stack(seq).astype(np.float64 if seq[0].dtype.kind == "f" else I64)

    return collect(slots, hist, states, output, record, stack, np.stack)
