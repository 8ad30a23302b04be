"""Reference interpreter for fixed-point graphs: the executable form of docs/fixed-point.md.

Timing is the float interpreter's: per step t, nodes run in ``topology.evaluation_order``; a
node's input is the exact integer sum of ``value[src][t - delay]`` over its incoming edges (zero
before step 0). Everything is numpy int64; integer matmul/einsum in numpy is exact (no BLAS).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed import arith as A
from rsnn_compiler.interpreter.float_interp import check_inputs
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir import topology
from rsnn_compiler.ir.fixed_ops import (
    FixedALIF, FixedDense, FixedDualIF, FixedLI, FixedLIF, FixedMultiThreshold, FixedNeuron,
    Quantize, _CurrentNeuron, _FixedConv,
)
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import (
    Comparator, Delay, Flatten, Identity, Input, Op, Output, Pool, PoolMode, ResetMode,
)

I64 = np.int64


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


def apply_stateless(op: Op, x: np.ndarray, stats: dict | None = None, name: str = "") -> np.ndarray:
    """Evaluate a stateless op on an int64 batch ``x`` shaped (batch, *in_shape).

    ``stats`` (optional) counts accumulator overflow events under ``"acc/<name>"``.
    """
    if isinstance(op, (Output, Identity)) or (isinstance(op, Delay) and op.steps == 0):
        return x
    if isinstance(op, Quantize):
        return quantize_input(op, x)
    if isinstance(op, FixedDense):
        return _synapse_out(op, x @ op.weight.T, stats, f"acc/{name}")
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
# Neurons
# --------------------------------------------------------------------------------------
class FixedState:
    """Per-run integer state of one population (batch-first)."""

    def __init__(self, op: FixedNeuron, batch: int, name: str = "", stats: dict | None = None):
        self.name, self.stats = name, stats
        shape = (batch, *op.shape)
        self.u = np.zeros(shape, I64)
        self.v = np.broadcast_to(op.v_init, shape).astype(I64)
        self.a = np.zeros(shape, I64)
        self.c = np.zeros(shape, I64)
        self.s = np.zeros(shape, I64)

    def ovf(self, y: np.ndarray, bits: int, mode, state: str) -> np.ndarray:
        """overflow(y) that also counts changed elements as ``stats["<state>/<node>"]``."""
        out = A.overflow(y, bits, mode)
        _count(self.stats, f"{state}/{self.name}", y, out)
        return out

    def record(self, op: FixedNeuron) -> dict[str, np.ndarray]:
        names = {"i": self.u, "v": self.v, "a": self.a, "c": self.c}
        return {n: names[n].copy() for n in op.state_names}


def _cmp(v: np.ndarray, theta, comparator: Comparator) -> np.ndarray:
    return (v >= theta if comparator is Comparator.GE else v > theta).astype(I64)


def _bias(op) -> np.ndarray:
    return A.shift(op.bias_mant, op.bias_exp)


def _integrate(op: _CurrentNeuron, st: FixedState, x: np.ndarray) -> np.ndarray:
    """u update, then base = ovf_v(decay(v, dv) + u + b) (docs §3.4)."""
    drive = x << op.input_shift
    st.u = st.ovf(A.decay(st.u, op.du + op.du_offset) + drive, op.u_bits, op.u_overflow, "i")
    return st.ovf(A.decay(st.v, op.dv) + st.u + _bias(op), op.v_bits, op.v_overflow, "v")


def _lif(op: FixedLIF, st: FixedState, x: np.ndarray) -> np.ndarray:
    base = _integrate(op, st, x)
    theta = op.vth << op.vth_shift
    if isinstance(op, FixedALIF):
        theta = theta + st.a
    ovf = lambda y: st.ovf(y, op.v_bits, op.v_overflow, "v")  # noqa: E731
    cmp, mode = op.comparator, op.reset
    if mode is ResetMode.ZERO:
        s = _cmp(base, theta, cmp)
        v = np.where(s > 0, op.v_reset, base)
    elif mode is ResetMode.SUBTRACT:
        s = _cmp(base, theta, cmp)
        v = ovf(base - theta * s)
    elif mode is ResetMode.SUBTRACT_DEFERRED:
        v = ovf(base - theta * st.s)
        s = _cmp(v, theta, cmp)
    elif mode is ResetMode.SUBTRACT_NODELAY:
        r = _cmp(st.v, theta, cmp)
        m = ovf(base - theta * r)
        s = _cmp(m, theta, cmp)
        v = ovf(m - theta * (s - r))
    elif mode is ResetMode.ZERO_HOLD:
        v = np.where(st.s > 0, 0, base)
        s = _cmp(v, theta, cmp)
    else:  # NONE
        v = base
        s = _cmp(v, theta, cmp)
    if isinstance(op, FixedALIF):
        st.a = st.ovf(A.decay(st.a, op.da) + op.a_inc * s, op.v_bits, op.v_overflow, "a")
    st.v, st.s = v.astype(I64), s
    return s


def _dual_if(op: FixedDualIF, st: FixedState, x: np.ndarray) -> np.ndarray:
    ovf = lambda y: st.ovf(y, op.v_bits, op.v_overflow, "v")  # noqa: E731
    m = ovf(st.v + (x << op.input_shift) + _bias(op))
    theta, theta_neg = op.vth << op.vth_shift, op.vth_neg << op.vth_shift
    pos = _cmp(m, theta, op.comparator)
    neg = ((m < theta_neg) & (st.c > 0)).astype(I64)
    s = pos - neg * (1 - pos)
    st.v = ovf(m - s * theta)
    st.c = st.c + s
    st.s = s
    return s


def _mtn(op: FixedMultiThreshold, st: FixedState, x: np.ndarray) -> np.ndarray:
    ovf = lambda y: st.ovf(y, op.v_bits, op.v_overflow, "v")  # noqa: E731
    m = ovf(st.v + (x << op.input_shift) + _bias(op))
    theta = op.vth << op.vth_shift
    n = np.clip(A.floor_div(m, theta), 0, op.levels)
    if op.reset is ResetMode.ZERO:
        st.v = np.broadcast_to(op.v_init, m.shape).astype(I64)
    else:
        st.v = ovf(m - n * theta)
    st.s = n
    return n


def step_neuron(op: FixedNeuron, st: FixedState, x: np.ndarray) -> np.ndarray:
    """Advance ``st`` one step on the summed int64 input ``x``; return the node's output."""
    if isinstance(op, FixedLI):
        st.v = _integrate(op, st, x)
        return st.v
    if isinstance(op, FixedLIF):
        return _lif(op, st, x)
    if isinstance(op, FixedDualIF):
        return _dual_if(op, st, x)
    if isinstance(op, FixedMultiThreshold):
        return _mtn(op, st, x)
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


def run_fixed(graph: Graph, x: np.ndarray, record: bool = True, stats: dict | None = None) -> RunResult:
    """Run a fixed graph on ``x`` shaped (time, batch, *input_shape); results are int64.

    If ``stats`` is a dict it receives overflow counts: ``"<state>/<node>"`` (i, v, a) and
    ``"acc/<synapse>"`` = number of elements whose value the overflow rule changed.
    """
    if graph.attrs.domain is not Domain.FIXED:
        raise UserInputError("run_fixed needs a fixed-point graph; quantize it or use run_float")
    x = _input_values(graph, check_inputs(graph, x))
    steps, batch = x.shape[0], x.shape[1]
    order = topology.evaluation_order(graph)
    in_edges = {n: graph.in_edges(n) for n in graph.nodes}
    neurons = {
        n: FixedState(op, batch, n, stats) for n, op in graph.nodes.items() if isinstance(op, FixedNeuron)
    }
    delayed = [n for n, op in graph.nodes.items() if isinstance(op, Delay) and op.steps >= 1]
    values: dict[str, list[np.ndarray]] = {n: [] for n in graph.nodes}
    delay_inputs: dict[str, list[np.ndarray]] = {n: [] for n in delayed}
    states: dict[str, list[np.ndarray]] = {}

    def gather(name: str, t: int) -> np.ndarray:
        total = None
        for e in in_edges[name]:
            if t - e.delay >= 0:
                v = values[e.src][t - e.delay]
                total = v if total is None else total + v
        if total is None:
            return np.zeros((batch, *graph.nodes[name].in_shape), dtype=I64)
        return total

    for t in range(steps):
        for name in order:
            op = graph.nodes[name]
            if isinstance(op, Input):
                y = x[t]
            elif name in delay_inputs:
                k = t - op.steps
                y = delay_inputs[name][k] if k >= 0 else np.zeros((batch, *op.shape), I64)
            elif isinstance(op, FixedNeuron):
                y = step_neuron(op, neurons[name], gather(name, t).astype(I64))
                if record:
                    for sname, val in neurons[name].record(op).items():
                        states.setdefault(f"{sname}/{name}", []).append(val)
            else:
                y = apply_stateless(op, gather(name, t), stats, name)
            values[name].append(y)
        for name in delayed:
            delay_inputs[name].append(gather(name, t))

    def stack(seq: list[np.ndarray]) -> np.ndarray:
        return np.stack(seq).astype(np.float64 if seq[0].dtype.kind == "f" else I64)

    result = RunResult(out=stack(values[graph.output_name]))
    if record:
        result.values = {n: stack(v) for n, v in values.items()}
        result.spikes = {
            n: result.values[n]
            for n, op in graph.nodes.items()
            if isinstance(op, FixedNeuron) and op.spiking
        }
        result.states = {k: np.stack(v) for k, v in states.items()}
    return result
