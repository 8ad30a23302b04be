"""Reference interpreter for float graphs: the definition of what the IR means.

Per time step t, nodes are evaluated in ``topology.evaluation_order``. A node's input is the sum,
in edge-list order, of ``value[src][t - delay]`` over its incoming edges (zero before step 0).
A neuron with several input edges adds them one at a time onto its decayed state, in edge-list
order (snnTorch's ``beta*mem + input + recurrent(spk)``): LIF base = ((beta*v + gain*x_1) +
gain*x_2) + ... + bias, and likewise for the Cuba current i; with one input this is the formula
below.
Arithmetic is float32 on the CPU, each product and sum rounded separately (no fused
multiply-add), which reproduces snnTorch/PyTorch float32 spike for spike.

Neuron updates with ``s_prev`` the previous step's spikes and ``base`` the integrated membrane:
    LIF       base = beta*v + gain*x + bias
    IF        base = v + gain*x + bias
    CubaLIF   i = alpha*i + gain_i*x ;  base = beta*v + gain_v*i + bias
    ALIF      base as LIF; theta_eff = theta + kappa*a; after firing a = rho*a + s
    reset zero              s = cmp(base, theta); v = s ? v_reset : base
    reset subtract          s = cmp(base, theta); v = base - theta*s
    reset subtract_deferred v = base - theta*s_prev; s = cmp(v, theta)
    reset subtract_nodelay  r = cmp(v_prev, theta); b = base - theta*r; s = cmp(b, theta);
                            v = b - theta*(s - r)
    reset zero_hold         v = (1 - s_prev)*base; s = cmp(v, theta)
    reset none              v = base; s = cmp(v, theta)
    LI / CubaLI emit v (no spike); Threshold emits cmp(x, theta).
cmp is ``>`` (Comparator.GT) or ``>=`` (Comparator.GE).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.interpreter import conversion_neurons
from rsnn_compiler.ir import topology
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import (
    ALIF, IF, LI, LIF, Affine, BatchNorm, Comparator, Conv1d, Conv2d, CubaLI, CubaLIF, Delay,
    Flatten, Identity, Input, NeuronOp, Op, Output, Pool, PoolMode, ResetMode, Scale, Threshold,
)

DTYPE = torch.float32


def _t(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.float32))


def fires(v: torch.Tensor, theta: torch.Tensor, cmp: Comparator) -> torch.Tensor:
    """1.0 where v > theta (v >= theta for ``Comparator.GE``), else 0.0.

    Computed as clamp(sign(v - theta), 0) (GE: 1 - clamp(sign(theta - v), 0)): an IEEE difference
    of finite floats is zero only for equal operands and has the sign of their order, so this is
    exactly the comparison, and on CPU it costs a third of a comparison plus a bool-to-float cast.
    """
    if cmp is Comparator.GE:
        return 1.0 - (theta - v).sign_().clamp_(min=0)
    return (v - theta).sign_().clamp_(min=0)


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


class NeuronState:
    """Mutable per-run state of one neuron population (batch-first tensors)."""

    def __init__(self, op: NeuronOp, batch: int):
        shape = (batch, *op.shape)
        zeros = torch.zeros(shape, dtype=DTYPE)
        self.v = _t(op.v_init).expand(shape).clone() if hasattr(op, "v_init") else zeros.clone()
        self.i = zeros.clone()
        self.a = zeros.clone()
        self.s = zeros.clone()


def fire_and_reset(
    mode: ResetMode, cmp: Comparator, base: torch.Tensor, theta: torch.Tensor,
    v_reset: torch.Tensor, v_prev: torch.Tensor, s_prev: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spike and reset rules of the module docstring: returns the new (v, s)."""
    if mode is ResetMode.ZERO:
        s = fires(base, theta, cmp)
        return torch.where(s > 0, v_reset.expand_as(base), base), s
    if mode is ResetMode.SUBTRACT:
        s = fires(base, theta, cmp)
        return base - theta * s, s
    if mode is ResetMode.SUBTRACT_DEFERRED:
        v = base - theta * s_prev
        return v, fires(v, theta, cmp)
    if mode is ResetMode.SUBTRACT_NODELAY:
        r = fires(v_prev, theta, cmp)
        b = base - theta * r
        s = fires(b, theta, cmp)
        return b - theta * (s - r), s
    if mode is ResetMode.ZERO_HOLD:
        v = (1.0 - s_prev) * base
        return v, fires(v, theta, cmp)
    return base, fires(base, theta, cmp)  # ResetMode.NONE


def step_neuron(op: NeuronOp, st: NeuronState, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """Advance ``st`` by one step on input ``x`` (one tensor, or the per-edge terms in edge-list
    order); return the node's output (spikes or v)."""
    xs = x if isinstance(x, list) else [x]
    if conversion_neurons.handles(op):  # DualThresholdIF, MultiThreshold (docs/conversion.md)
        return conversion_neurons.step(op, st, xs)
    if isinstance(op, (LI, CubaLI)):
        if isinstance(op, LI):
            st.v = _accumulate(_t(op.beta) * st.v, op.gain, xs) + _t(op.bias)
        else:
            st.v = _t(op.beta) * st.v + _cuba_current(op, st, xs) + _t(op.bias)
        return st.v
    if isinstance(op, CubaLIF):
        drive = _cuba_current(op, st, xs)
        base = _t(op.beta) * st.v + drive + _t(op.bias)
    elif isinstance(op, IF):
        base = _accumulate(st.v, op.gain, xs) + _t(op.bias)
    elif isinstance(op, (LIF, ALIF)):
        base = _accumulate(_t(op.beta) * st.v, op.gain, xs) + _t(op.bias)
    else:
        raise UserInputError(f"the float interpreter cannot evaluate {type(op).__name__}")

    theta = _t(op.theta)
    if isinstance(op, ALIF):
        theta = theta + _t(op.kappa) * st.a
    v, s = fire_and_reset(op.reset, op.comparator, base, theta, _t(op.v_reset), st.v, st.s)
    if isinstance(op, ALIF):
        st.a = _t(op.rho) * st.a + s
    st.v, st.s = v, s
    return s


def _gain(gain: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return x if bool((gain == 1).all()) else _t(gain) * x


def _accumulate(acc: torch.Tensor, gain: np.ndarray, xs: list[torch.Tensor]) -> torch.Tensor:
    for x in xs:
        acc = acc + _gain(gain, x)
    return acc


def _cuba_current(op, st: NeuronState, xs: list[torch.Tensor]) -> torch.Tensor:
    st.i = _accumulate(_t(op.alpha) * st.i, op.gain_i, xs)
    return _gain(op.gain_v, st.i)


def _state_record(op: NeuronOp, st: NeuronState) -> dict[str, torch.Tensor]:
    return {name: getattr(st, name) for name in op.state_names}


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
    steps, batch = x.shape[0], x.shape[1]
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    order = topology.evaluation_order(graph)
    in_edges = {n: graph.in_edges(n) for n in graph.nodes}
    neurons = {n: NeuronState(op, batch) for n, op in graph.nodes.items() if isinstance(op, NeuronOp)}
    delayed = [n for n, op in graph.nodes.items() if isinstance(op, Delay) and op.steps >= 1]
    values: dict[str, list[torch.Tensor]] = {n: [] for n in graph.nodes}
    delay_inputs: dict[str, list[torch.Tensor]] = {n: [] for n in delayed}
    states: dict[str, list[torch.Tensor]] = {}

    def terms(name: str, t: int) -> list[torch.Tensor]:
        out = [values[e.src][t - e.delay] for e in in_edges[name] if t - e.delay >= 0]
        return out or [torch.zeros((batch, *graph.nodes[name].in_shape), dtype=DTYPE)]

    def gather(name: str, t: int) -> torch.Tensor:
        total = None
        for v in terms(name, t):
            total = v if total is None else total + v
        return total

    with torch.no_grad():
        for t in range(steps):
            for name in order:
                op = graph.nodes[name]
                if isinstance(op, Input):
                    y = xt[t]
                elif name in delay_inputs:
                    k = t - op.steps
                    y = delay_inputs[name][k] if k >= 0 else torch.zeros((batch, *op.shape), dtype=DTYPE)
                elif isinstance(op, NeuronOp) and not isinstance(op, Threshold):
                    y = step_neuron(op, neurons[name], terms(name, t))
                    if record:
                        for sname, val in _state_record(op, neurons[name]).items():
                            states.setdefault(f"{sname}/{name}", []).append(val.clone())
                else:
                    y = apply_stateless(op, gather(name, t))
                values[name].append(y)
            for name in delayed:
                delay_inputs[name].append(gather(name, t))

    def stack(seq: list[torch.Tensor]) -> np.ndarray:
        return torch.stack(seq).numpy()

    out = stack(values[graph.output_name])
    result = RunResult(out=out)
    if record:
        result.values = {n: stack(v) for n, v in values.items()}
        result.spikes = {
            n: result.values[n]
            for n, op in graph.nodes.items()
            if isinstance(op, NeuronOp) and op.spiking
        }
        result.states = {k: stack(v) for k, v in states.items()}
    return result
