"""What the C target cannot represent: ``check_graph(graph) -> list[Diagnostic]`` (all at once).

Besides unsupported op kinds, widths and delays beyond ``CSpec``, it proves statically that every
exact intermediate of every update fits ``int64_t``. It propagates a bound on |value| of each
node's output through the graph (neurons and synapses are capped by their declared widths and
payloads, structural ops add or copy, iterated to a fixed point so loops are covered) and checks
each op's intermediates against the bound of its summed input. States are taken at their declared
width; for ``wrap_once`` this is the docs' precondition |x| < 3·2^(b−1) (docs/fixed-point.md §2).
"""

from __future__ import annotations

import numpy as np

from rsnn_compiler.ir.fixed_ops import (
    FixedALIF, FixedDense, FixedDualIF, FixedLI, FixedLIF, FixedMultiThreshold, FixedNeuron,
    Quantize, _CurrentNeuron, _FixedConv,
)
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.dynamics import family_of
from rsnn_compiler.ir.ops import Delay, Flatten, Identity, Input, Op, Output, Pool, PoolMode
from rsnn_compiler.target_api import Diagnostic

from rsnn_compiler.backends.c.plan import HOST_QUANTIZE, input_mode, make_plan
from rsnn_compiler.backends.c.spec import C_SPEC, CSpec

SUPPORTED = (  # every fixed neuron: its loop is generated from its family's definition
    Input, Output, Identity, Flatten, Delay, Pool, Quantize, FixedDense, _FixedConv, FixedNeuron,
)
INF = None  # an unbounded value


def _where(name: str, op: Op) -> str:
    return f"node '{name}' ({type(op).__name__})"


def _max_abs(arr) -> int:
    arr = np.asarray(arr, dtype=np.int64)
    return int(np.abs(arr).max()) if arr.size else 0


def _shift_bound(x: int, e: int) -> int:
    """Bound on |shift(v, e)| for |v| <= x."""
    return x << e if e >= 0 else (x >> -e) + 1


class _Synapse:
    """Per-exponent maxima of a synapse's row |W| sums and |bias| (for bound propagation)."""

    def __init__(self, op):
        w = np.abs(np.asarray(op.weight, dtype=np.int64)).reshape(op.weight.shape[0], -1)
        rows = w.sum(axis=1)
        bias = np.abs(op.bias) if op.bias is not None else np.zeros_like(rows)
        self.groups: list[tuple[int, int, int]] = []
        for e in sorted(set(int(v) for v in op.weight_exp)):
            sel = op.weight_exp == e
            self.groups.append((e, int(rows[sel].max()), int(bias[sel].max())))

    def acc(self, x: int) -> int:
        return max((r * x for _, r, _ in self.groups), default=0)

    def pre(self, x: int) -> int:
        """Bound on |shift(acc, e) + bias| before the accumulator overflow."""
        return max((_shift_bound(r * x, e) + b for e, r, b in self.groups), default=0)


def _state_half(bits: int) -> int:
    return 1 << (bits - 1)


def _output_bound(op: Op, x: int | None, syn: _Synapse | None, host: bool) -> int | None:
    """Bound on |output| of ``op`` given the bound ``x`` of its summed input."""
    if isinstance(op, Input):
        return 1 << 31  # rsnn_step takes int32_t inputs
    if isinstance(op, Quantize):
        lo, hi = op.limits
        return max(-lo, hi)
    if isinstance(op, (FixedDense, _FixedConv)):
        cap = _state_half(op.acc_bits)
        return cap if x is INF else min(cap, syn.pre(x))
    if isinstance(op, FixedMultiThreshold):
        return op.levels
    if isinstance(op, FixedNeuron):  # spikes are -1/0/1 (graded ones: mtn above); readouts emit v
        return 1 if op.spiking else _state_half(op.v_bits)
    if x is INF:
        return INF
    if isinstance(op, Pool) and op.mode is PoolMode.SUM:
        return x * int(np.prod(op.kernel))
    return x  # Output, Identity, Flatten, Delay, max Pool


def value_bounds(graph: Graph, syn: dict[str, _Synapse]) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """(output bound, summed-input bound) per node; None where a loop of structural ops can
    grow without limit."""
    host = input_mode(graph)[0] == HOST_QUANTIZE
    nodes = list(graph.nodes)
    in_edges = {n: graph.in_edges(n) for n in nodes}
    out_b: dict[str, int | None] = {n: 0 for n in nodes}

    def in_bound(n: str) -> int | None:
        total = 0
        for e in in_edges[n]:
            if out_b[e.src] is INF:
                return INF
            total += out_b[e.src]
        return total

    limit = 4 * len(nodes) + 200
    for _ in range(limit):
        changed = False
        for n in nodes:
            new = _output_bound(graph.nodes[n], in_bound(n), syn.get(n), host)
            if new != out_b[n]:
                out_b[n], changed = new, True
        if not changed:
            break
    else:  # still growing: the growing nodes sit on a loop without a width cap
        prev = dict(out_b)
        for n in nodes:
            out_b[n] = _output_bound(graph.nodes[n], in_bound(n), syn.get(n), host)
        for n in nodes:
            if out_b[n] != prev[n]:
                out_b[n] = INF
        for _ in range(len(nodes)):
            for n in nodes:
                out_b[n] = _output_bound(graph.nodes[n], in_bound(n), syn.get(n), host)
    return out_b, {n: in_bound(n) for n in nodes}


def _node_problems(name: str, op: Op, x: int | None, syn: _Synapse | None, host: bool,
                   spec: CSpec) -> list[Diagnostic]:
    where = _where(name, op)
    lim = spec.int64_limit
    out: list[Diagnostic] = []

    def add(problem: str, fix: str) -> None:
        out.append(Diagnostic(where, problem, fix))

    def width(attr: str) -> None:
        bits = getattr(op, attr)
        if not 1 <= bits <= spec.max_value_bits:
            add(f"{attr} = {bits} is outside 1..{spec.max_value_bits} (C keeps values in int64_t"
                " with headroom for one update)", f"requantize with {attr} <= {spec.max_value_bits}")

    if isinstance(op, (FixedDense, _FixedConv)):
        width("acc_bits")
        if _max_abs(op.weight_exp) > spec.max_shift:
            add(f"weight_exp {_max_abs(op.weight_exp)} exceeds +-{spec.max_shift}", "requantize the weights")
        elif x is not INF and syn.pre(x) > lim:
            add(f"the accumulator can reach {syn.pre(x):.3e} before its {op.acc_bits}-bit overflow,"
                " beyond int64", "lower weight_exp or the input range (acc_bits/payload bits) of this layer")
        if x is INF:
            add("its input can grow without bound (a loop of structural ops)", "put a neuron or synapse in the loop")
    elif isinstance(op, Quantize):
        if host:
            signed_ok = op.bits <= spec.input_bits if op.signed else op.bits < spec.input_bits
            if not signed_ok:
                add(f"{op.bits}-bit {'signed' if op.signed else 'unsigned'} codes do not fit the int32_t"
                    " input of rsnn_step", f"quantize inputs to at most {spec.input_bits} bits")
        else:
            if not 1 <= op.bits <= spec.max_value_bits:
                add(f"bits = {op.bits} outside 1..{spec.max_value_bits}", "use fewer bits")
            if abs(op.shift) > spec.max_shift:
                add(f"shift {op.shift} exceeds +-{spec.max_shift}", "use a smaller shift")
            elif op.shift < 0 and x is not INF and x + (1 << (-op.shift - 1)) > lim:
                add("rounding offset overflows int64", "lower the input range")
    elif isinstance(op, FixedNeuron):
        width("v_bits")
        squares = family_of(op).squares_states
        if squares and op.v_bits > 31:
            add(f"v_bits = {op.v_bits}: the family multiplies two states, whose product must fit"
                " int64_t", "requantize with v_bits <= 31")
        if isinstance(op, _CurrentNeuron):
            width("u_bits")
        if op.input_shift < 0 or op.input_shift > spec.max_shift:
            add(f"input_shift {op.input_shift} outside 0..{spec.max_shift}", "requantize the neuron")
        elif x is INF:
            add("its input can grow without bound (a loop of structural ops)", "put a synapse in the loop")
        elif x << op.input_shift > lim >> 2:
            add(f"the drive x << {op.input_shift} can reach {x << op.input_shift:.3e}, beyond int64 headroom",
                "lower input_shift or the accumulator width of the layers feeding it")
        bias = [int(v) << int(e) if e >= 0 else 0 for v, e in zip(op.bias_mant.reshape(-1), op.bias_exp.reshape(-1))]
        if _max_abs(op.bias_exp) > spec.max_shift or max((abs(b) for b in bias), default=0) > lim >> 2:
            add("bias_mant << bias_exp does not fit int64 with headroom", "requantize the bias")
        if hasattr(op, "vth_shift"):
            if not 0 <= op.vth_shift <= spec.max_shift or (_max_abs(op.vth) << op.vth_shift) > lim >> 2:
                add(f"threshold vth << {op.vth_shift} does not fit int64 with headroom", "requantize the threshold")
            elif isinstance(op, (FixedMultiThreshold, FixedDualIF)) and (op.vth << op.vth_shift <= 0).any():
                add("threshold must be > 0 (floor_div / signed spikes need it)", "set vth >= 1")
        if isinstance(op, FixedDualIF) and hasattr(op, "vth_neg"):
            if (_max_abs(op.vth_neg) << max(op.vth_shift, 0)) > lim >> 2:
                add("vth_neg << vth_shift does not fit int64 with headroom", "requantize vth_neg")
        if isinstance(op, FixedALIF) and _max_abs(op.a_inc) > lim >> 4:
            add("a_inc does not fit int64 with headroom", "requantize a_inc")
    elif isinstance(op, Pool) and x is INF:
        add("its input can grow without bound (a loop of structural ops)", "put a neuron or synapse in the loop")
    return out


def check_graph(graph: Graph, spec: CSpec = C_SPEC) -> list[Diagnostic]:
    """Every parameter, state, op or edge of ``graph`` the generated C cannot represent."""
    diags: list[Diagnostic] = []
    if graph.attrs.domain is not Domain.FIXED:
        return [Diagnostic("graph", "the C target runs fixed-point graphs only (this one is float)",
                           "build with a fixed-point profile (rsnnc build --target c)")]
    for kind, cls in (("Input", Input), ("Output", Output)):
        count = len(graph.names_of(cls))
        if count != 1:
            diags.append(Diagnostic("graph", f"has {count} {kind} nodes; the C model needs exactly one",
                                    f"merge them into one {kind} node"))
    for name, op in graph.nodes.items():
        if not isinstance(op, SUPPORTED) or (isinstance(op, Pool) and op.mode is PoolMode.AVG):
            fix = ("fold average pooling into the next layer" if isinstance(op, Pool)
                   else "quantize the graph (float ops have no integer C form)")
            diags.append(Diagnostic(_where(name, op), f"op kind '{op.kind.value}' is not supported by the C target", fix))
        if isinstance(op, Delay) and op.steps > spec.max_delay:
            diags.append(Diagnostic(_where(name, op), f"delay of {op.steps} steps exceeds the C limit {spec.max_delay}",
                                    "split it into a chain of shorter Delay nodes"))
    for e in graph.edges:
        if e.delay > spec.max_delay or e.delay < 0:
            diags.append(Diagnostic(f"edge {e.src} -> {e.dst}", f"delay {e.delay} is outside 0..{spec.max_delay}",
                                    "insert Delay nodes to split the delay"))
    if diags:
        return diags
    host = input_mode(graph)[0] == HOST_QUANTIZE
    readers = graph.out_edges(graph.input_name)
    if not host and readers and all(isinstance(graph.nodes[e.dst], Quantize) for e in readers):
        # run_fixed takes float features here, but the host can only quantize them when every
        # Input -> Quantize edge has delay 0 and each Quantize reads only the Input
        for e in readers:
            if e.delay or len(graph.in_edges(e.dst)) > 1:
                diags.append(Diagnostic(
                    f"edge {e.src} -> {e.dst}",
                    "float inputs are quantized on the host (C has no floats), which needs delay-0 edges"
                    " from the Input into Quantize nodes that read nothing else",
                    "move the delay / the extra inputs after the Quantize node"))
    syn = {n: _Synapse(op) for n, op in graph.nodes.items() if isinstance(op, (FixedDense, _FixedConv))}
    _, in_b = value_bounds(graph, syn)
    for name, op in graph.nodes.items():
        diags += _node_problems(name, op, in_b[name], syn.get(name), host, spec)
    if not diags:
        from rsnn_compiler.backends.c.codegen import state_size

        nbytes = state_size(graph, make_plan(graph))
        if nbytes > spec.max_state_bytes:
            diags.append(Diagnostic("graph", f"one sample's state takes {nbytes} bytes, above the C limit"
                                    f" {spec.max_state_bytes}", "prune the network or shorten delays"))
    return diags

