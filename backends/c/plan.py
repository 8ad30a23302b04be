"""Storage plan of a C model: C identifiers, buffer sizes, delay rings, the input mode and the
record layout the harness writes (shared by the code generator, the executor and the tests).

Input modes (C has no floats, docs/c-backend.md "Inputs"):
- ``host_quantize``: the graph's Input feeds only ``Quantize`` nodes over delay-0 edges (the
  float-feature case of the reference interpreter). The host applies those Quantize ops (docs
  §3.1, in float64 as the reference does) and streams their integer outputs, concatenated in
  graph order, as the C model's input; the Input node has no C buffer.
- ``direct``: the Input carries integers; the C model's input is the Input node's value and any
  Quantize node is evaluated in C with integer arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rsnn_compiler.ir import topology
from rsnn_compiler.ir.fixed_ops import FixedNeuron, Quantize
from rsnn_compiler.ir.graph import Edge, Graph
from rsnn_compiler.ir.ops import Delay, Input, Op
from rsnn_compiler.sanitize import c_identifier

HOST_QUANTIZE = "host_quantize"
DIRECT = "direct"
RECORD_DTYPE = "<i8"
STATE_KEYS = ("i", "v", "a", "c")


def size_of(shape) -> int:
    return int(math.prod(shape)) if shape else 1


@dataclass(frozen=True)
class NodePlan:
    """One node's C storage: output buffer (a ring of ``slots`` buffers when delayed readers
    need past values), optional Delay-op line, and its incoming edges."""

    name: str
    cid: str
    op: Op
    in_size: int
    out_size: int
    slots: int  # 0: one plain buffer; >= 2: ring buffer of past outputs
    in_edges: tuple[Edge, ...]
    has_buffer: bool = True  # False for the Input node in host_quantize mode


@dataclass(frozen=True)
class Field:
    key: str  # "values/<node>", "v/<node>", ...
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return size_of(self.shape)


@dataclass
class Plan:
    prefix: str
    nodes: dict[str, NodePlan]
    order: list[str]  # evaluation order within a step
    input_mode: str
    quantize_nodes: list[str]  # host_quantize: nodes whose outputs form the C input, in order
    n_in: int
    fields: list[Field] = field(default_factory=list)
    output_name: str = ""
    max_batch: int = 1
    state_bytes: int = 0  # the state struct of one sample (membranes, currents, delay lines)
    # weight storage of each synapse layer (c_storage.SynapseStorage), filled by the generator
    storage: dict = field(default_factory=dict)

    @property
    def weight_bytes(self) -> int:
        """Bytes of every synapse layer's weight arrays (values + indices) as emitted."""
        return sum(st.bytes for st in self.storage.values())

    @property
    def record_len(self) -> int:
        return sum(f.size for f in self.fields)

    def input_ranges(self) -> list[tuple[int, int, int, int]]:
        """The input contract of ``<prefix>_step``: (offset, size, min, max) per input segment,
        the range ``check``'s overflow proof assumed (host_quantize: each Quantize node's
        limits; direct: any int32)."""
        if self.input_mode != HOST_QUANTIZE:
            return [(0, self.n_in, -(1 << 31), (1 << 31) - 1)]
        out, offset = [], 0
        for q in self.quantize_nodes:
            n = self.nodes[q]
            lo, hi = n.op.limits
            out.append((offset, n.out_size, int(lo), int(hi)))
            offset += n.out_size
        return out

    def field(self, key: str) -> Field:
        return next(f for f in self.fields if f.key == key)

    def layout_json(self) -> dict:
        """The machine-readable description of the harness I/O (written as c/layout.json)."""
        out = self.field(f"values/{self.output_name}")
        return {
            "format": "rsnnc-c-layout/1",
            "prefix": self.prefix,
            "input": {
                "mode": self.input_mode,
                "size": self.n_in,
                "dtype": "int32 in rsnn_step; file: little-endian int32 (-w 4) or int64 (-w 8)",
                "order": "time-major: (steps, batch, size)",
                "quantize_nodes": list(self.quantize_nodes),
                # rsnn_step clamps into these ranges; the harness refuses values outside them
                "range": [{"offset": o, "size": n, "min": lo, "max": hi} for o, n, lo, hi in self.input_ranges()],
            },
            "record": {
                "dtype": RECORD_DTYPE,
                "length": self.record_len,
                "order": "one record per (step, sample), time-major: (steps, batch, length)",
                "fields": [
                    {"key": f.key, "offset": f.offset, "shape": list(f.shape)} for f in self.fields
                ],
            },
            "output": {"node": self.output_name, "offset": out.offset, "size": out.size},
            "max_batch": self.max_batch,
            "state": {"bytes_per_sample": self.state_bytes},
            "weights": {
                "bytes": self.weight_bytes,
                "dense_bytes": sum(st.dense_bytes for st in self.storage.values()),
                "layers": [st.to_json() for st in self.storage.values()],
            },
        }


def input_mode(graph: Graph) -> tuple[str, list[str]]:
    """(mode, quantize nodes) — see the module docstring."""
    name = graph.input_name
    outs = graph.out_edges(name)
    readers = [e.dst for e in outs]
    host = bool(outs) and all(
        isinstance(graph.nodes[e.dst], Quantize) and e.delay == 0 and len(graph.in_edges(e.dst)) == 1
        for e in outs
    )
    if not host:
        return DIRECT, []
    return HOST_QUANTIZE, [n for n in graph.nodes if n in set(readers)]


def _max_delays(graph: Graph) -> dict[str, int]:
    out: dict[str, int] = {n: 0 for n in graph.nodes}
    for e in graph.edges:
        out[e.src] = max(out[e.src], e.delay)
    return out


def make_plan(graph: Graph, prefix: str = "rsnn") -> Plan:
    mode, qnodes = input_mode(graph)
    delays = _max_delays(graph)
    nodes: dict[str, NodePlan] = {}
    for index, (name, op) in enumerate(graph.nodes.items()):
        has_buffer = not (mode == HOST_QUANTIZE and isinstance(op, Input))
        nodes[name] = NodePlan(
            name=name,
            cid=c_identifier(name, index),
            op=op,
            in_size=size_of(op.in_shape),
            out_size=size_of(op.out_shape),
            slots=delays[name] + 1 if delays[name] > 0 and has_buffer else 0,
            in_edges=tuple(graph.in_edges(name)),
            has_buffer=has_buffer,
        )
    if mode == HOST_QUANTIZE:
        n_in = sum(nodes[q].out_size for q in qnodes)
    else:
        n_in = nodes[graph.input_name].out_size
    plan = Plan(
        prefix=prefix, nodes=nodes, order=topology.evaluation_order(graph), input_mode=mode,
        quantize_nodes=qnodes, n_in=n_in, output_name=graph.output_name,
    )
    offset = 0
    for name, op in graph.nodes.items():
        if not nodes[name].has_buffer:
            continue
        keys = [("values", tuple(op.out_shape))]
        if isinstance(op, FixedNeuron):
            keys += [(s, tuple(op.shape)) for s in op.state_names]
        for kind, shape in keys:
            plan.fields.append(Field(f"{kind}/{name}", offset, shape))
            offset += size_of(shape)
    return plan


def delay_ops(plan: Plan) -> list[NodePlan]:
    """Delay nodes with steps >= 1 (their input is captured at the end of each step)."""
    return [n for n in plan.nodes.values() if isinstance(n.op, Delay) and n.op.steps >= 1]
