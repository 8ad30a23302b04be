"""The one time-step driver: every executor that steps a graph in Python uses it (the float and
fixed interpreters, the GPU runtime and its training module).

Timing (docs/fixed-point.md §1): per step t nodes run in ``topology.evaluation_order``; a node's
input is the sum, in edge-list order, of ``value[src][t - delay]`` over its incoming edges (zero
before step 0); a neuron whose kernel ``takes_terms`` gets that list of terms instead (float
neurons add them one at a time onto the decayed state); a ``Delay`` node with ``steps >= 1``
emits what its inputs summed to ``steps`` steps ago. Kernels come from two factories, so the same
driver runs numpy, torch or straight-through values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir import topology
from rsnn_compiler.ir.dynamics import has_family
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import Delay, Input, NeuronOp


class SlotKind(enum.Enum):
    INPUT = "input"
    DELAY = "delay"
    NEURON = "neuron"
    STATELESS = "stateless"


INPUT, DELAY, NEURON, STATELESS = SlotKind.INPUT, SlotKind.DELAY, SlotKind.NEURON, SlotKind.STATELESS


@dataclass
class Slot:
    """One node of the compiled schedule."""

    name: str
    index: int
    kind: SlotKind
    op: object
    edges: tuple[tuple[int, int], ...]  # (source slot index, delay), edge-list order
    kernel: object = None
    steps: int = 0  # Delay nodes


def build_schedule(graph: Graph, neuron_kernel, stateless_kernel) -> list[Slot]:
    """Slots in evaluation order with kernels from the two factories ``f(op, name) -> kernel``.

    A neuron kernel has ``init(batch) -> state``, ``step(state, x) -> output``,
    ``states(state) -> {name: value}`` and ``takes_terms``; a stateless kernel is ``x -> y``.
    """
    order = topology.evaluation_order(graph)
    index = {n: i for i, n in enumerate(order)}
    slots = []
    for name in order:
        op = graph.nodes[name]
        edges = tuple((index[e.src], int(e.delay)) for e in graph.in_edges(name))
        if isinstance(op, Input):
            slots.append(Slot(name, index[name], INPUT, op, edges))
        elif isinstance(op, Delay) and op.steps >= 1:
            slots.append(Slot(name, index[name], DELAY, op, edges, steps=op.steps))
        elif has_family(op):
            slots.append(Slot(name, index[name], NEURON, op, edges, neuron_kernel(op, name)))
        else:
            slots.append(Slot(name, index[name], STATELESS, op, edges, stateless_kernel(op, name)))
    return slots


def time_batched_prefix(slots: list[Slot], allow: Callable[[Slot], bool] | None = None) -> tuple[int, ...]:
    """The stateless slots whose every input, at step t, is a function of ``x[t]`` alone: fed
    (delay 0) only by the Input or by other such slots (and, with ``allow``, only slots it
    accepts). They can be evaluated for many steps in one call, the steps stacked into the batch
    axis (``execute``'s ``whole_time``)."""
    free: set[int] = set()
    prefix = []
    for s in slots:
        if s.kind is INPUT:
            free.add(s.index)
        elif s.kind is STATELESS and s.edges and all(d == 0 and src in free for src, d in s.edges) and (
                allow is None or allow(s)):
            free.add(s.index)
            prefix.append(s.index)
    return tuple(prefix)


#: bytes of stacked values a ``whole_time`` chunk may hold (inputs + outputs of the prefix slots).
#: Small on purpose: a fresh multi-MB tensor is paid in page faults (measured: one int64 shift
#: over a 17.8 MB tensor 24 ms, the same work as 68 per-step calls 1.4 ms), so chunks stay
#: cache-sized and the gain is the per-call overhead saved at small batches.
CHUNK_BYTES = 2 << 20


def _chunk_steps(slots: list[Slot], prefix: tuple[int, ...], zeros: list, itemsize: int = 8) -> int:
    """Steps per chunk so that the prefix's stacked inputs and outputs stay under CHUNK_BYTES."""
    readers: dict[int, int] = {}
    for s in slots:
        for src, _d in s.edges:
            readers.setdefault(src, s.index)
    per_step = 0
    for i in prefix:
        per_step += _numel(zeros[i]) + (_numel(zeros[readers[i]]) if i in readers else _numel(zeros[i]))
    return max(1, CHUNK_BYTES // max(1, per_step * itemsize))


def _numel(a) -> int:
    n = 1
    for d in a.shape:
        n *= int(d)
    return n


def _run_prefix(slots: list[Slot], prefix: tuple[int, ...], x_chunk, input_index: int) -> dict[int, object]:
    """The prefix slots on steps stacked into the batch axis: (k, batch, ...) -> (k·batch, ...)
    through each kernel -> (k, batch, ...). Inputs are summed in edge-list order as per step."""
    k, batch = x_chunk.shape[0], x_chunk.shape[1]
    vals = {input_index: x_chunk}
    for i in prefix:
        slot = slots[i]
        total = None
        for src, _d in slot.edges:
            total = vals[src] if total is None else total + vals[src]
        y = slot.kernel(total.reshape((k * batch, *total.shape[2:])))
        vals[i] = y.reshape((k, batch, *y.shape[1:]))
    return vals


def execute(slots: list[Slot], x, zeros: list, record: bool, output: int,
            whole_time: bool | Callable[[Slot], bool] = False) -> tuple[list[list], dict[str, list]]:
    """Run the schedule over ``x`` (time, batch, ...); ``zeros[i]`` is slot i's zero input.

    Returns every slot's outputs per step (entries no longer needed are dropped when not
    recording, except the output's) and, when recording, the neuron states per step keyed
    ``"<state>/<node>"``.

    ``whole_time=True`` evaluates the ``time_batched_prefix`` (stateless layers fed only by
    the input, e.g. the input quantizer and the first dense layer) for a chunk of steps in one
    kernel call each, steps stacked into the batch axis, instead of once per step; chunks hold
    at most ``CHUNK_BYTES``. Only for kernels whose result for a sample does not depend on the
    other rows of the call: exact integer kernels, or float kernels whose BLAS is in a
    row-count-independent mode (``float_repro``); a callable ``whole_time`` admits only the slots
    it accepts into the prefix.
    """
    steps, batch = x.shape[0], x.shape[1]
    hist: list[list] = [[] for _ in slots]
    prefix = time_batched_prefix(slots, whole_time if callable(whole_time) else None) if whole_time else ()
    in_prefix = set(prefix)
    chunk_steps = _chunk_steps(slots, prefix, zeros) if prefix else 0
    input_index = next((s.index for s in slots if s.kind is INPUT), -1)
    chunk: dict[int, object] = {}
    t0 = 0
    keep = _history_needs(slots, record, output)
    delayed = [s for s in slots if s.kind is DELAY]
    dhist: dict[int, list] = {s.index: [] for s in delayed}
    states = {s.index: s.kernel.init(batch) for s in slots if s.kind is NEURON}
    rec: dict[str, list] = {}

    def terms(slot: Slot, t: int) -> list:
        return [hist[src][t - d] for src, d in slot.edges if t >= d]

    def summed(slot: Slot, t: int):
        total = None
        for v in terms(slot, t):
            total = v if total is None else total + v
        return zeros[slot.index] if total is None else total

    for t in range(steps):
        if prefix and t % chunk_steps == 0:
            t0 = t
            chunk = _run_prefix(slots, prefix, x[t:t + chunk_steps], input_index)
        for slot in slots:
            kind = slot.kind
            if slot.index in in_prefix:
                y = chunk[slot.index][t - t0]
            elif kind is STATELESS:
                y = slot.kernel(summed(slot, t))
            elif kind is NEURON:
                kernel = slot.kernel
                st = states[slot.index]
                if kernel.takes_terms:
                    y = kernel.step(st, terms(slot, t) or [zeros[slot.index]])
                else:
                    y = kernel.step(st, summed(slot, t))
                if record:
                    for sname, val in kernel.states(st).items():
                        rec.setdefault(f"{sname}/{slot.name}", []).append(val)
            elif kind is INPUT:
                y = x[t]
            else:  # DELAY
                k = t - slot.steps
                y = dhist[slot.index][k] if k >= 0 else zeros[slot.index]
            hist[slot.index].append(y)
        for slot in delayed:
            dhist[slot.index].append(summed(slot, t))
            if not record and t - slot.steps >= 0:
                dhist[slot.index][t - slot.steps] = None
        if not record:
            for i, need in keep:
                if t - need >= 0:
                    hist[i][t - need] = None
    return hist, rec


def _history_needs(slots: list[Slot], record: bool, output: int) -> list[tuple[int, int]]:
    """(slot, steps of history still needed) for the slots whose old outputs can be dropped."""
    if record:
        return []
    need = {s.index: 0 for s in slots}
    for s in slots:
        for src, d in s.edges:
            need[src] = max(need[src], d)
    return [(i, n) for i, n in need.items() if i != output]


def zero_inputs(slots: list[Slot], batch: int, zeros) -> list:
    """``zeros(shape)`` for each slot's input (a Delay's own shape)."""
    return [zeros((batch, *(s.op.shape if s.kind is DELAY else s.op.in_shape))) for s in slots]


def output_index(slots: list[Slot], name: str) -> int:
    return next(s.index for s in slots if s.name == name)


def collect(slots: list[Slot], hist: list[list], states: dict[str, list], output: int, record: bool,
            stack, stack_states=None) -> RunResult:
    """``execute``'s histories as a ``RunResult`` (``stack(list of per-step values) -> array``):
    the output node's values, and when recording every node's values, the spikes of spiking
    neurons and the neuron states."""
    result = RunResult(out=stack(hist[output]))
    if record:
        result.values = {s.name: stack(hist[s.index]) for s in slots}
        result.spikes = {s.name: result.values[s.name] for s in slots
                         if isinstance(s.op, NeuronOp) and s.op.spiking}
        result.states = {k: (stack_states or stack)(v) for k, v in states.items()}
    return result
