"""Build the float SNN graph from an ``AnnGraph`` and one ``SitePlan`` per activation call site.

Every ANN tensor maps to a *handle*: the IR nodes whose summed output carries it, its kind
(``analog`` input, ``current`` = synaptic input, ``spikes`` = neuron output) and a per-element
``scale`` with  ANN value ~= scale * (time-average of the SNN value).  Rules:

- dense/conv: W' = W * scale_in (per input feature / channel): spike values fold into weights;
  the output is a current with scale 1. Its bias is injected every step: moved into the neuron
  (``bias``) when the activation is the layer's only consumer, else kept in the synapse.
- activation: a neuron with, in its input's units, theta/scale, v_init/scale, bias/scale; its
  output counts carry ``unit`` (theta for IF / dual IF, theta_M for the multi-threshold neuron).
- avg-pool: a sum-pool (exact on integers) and scale/k, folded into the next weights.
- max-pool: kept on the counts (exact for MTN at T = 1; on binary spike trains it is the max of
  per-step spikes, which over-estimates the max of rates: see docs/conversion.md).
- residual add: every branch is brought to scale 1 (a spiking branch goes through a synapse of
  weight diag(unit)), then all branches feed the consumer (inputs into a node are summed).
- the network output: a non-spiking readout, by default a memoryless LI neuron (beta = 0, the last
  bias inside) so out(t) = W o(t) + b every step and argmax(out.sum(0)) is the prediction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontends._common import finish_graph, sanitize_name
from rsnn_compiler.frontends.ann_graph import ActKind, AnnGraph, AnnKind, AnnNode
from rsnn_compiler.ir.conversion_ops import DualThresholdIF, MultiThreshold, conversion_problems
from rsnn_compiler.ir.graph import Edge, Graph, GraphAttrs
from rsnn_compiler.ir.ops import (
    IF, LI, Affine, Comparator, Conv1d, Conv2d, Flatten, Input, Output, Pool, PoolMode, ResetMode,
)
from rsnn_compiler.passes_api import Prop


class NeuronKind(enum.Enum):
    IF = "if"  # soft-reset IF (maxnorm)
    DUAL_IF = "dual_if"  # dual-threshold IF (ecl)
    MTN = "mtn"  # multi-threshold graded neuron (sfn)


@dataclass
class SitePlan:
    """How one activation call site becomes neurons (all values in ANN units)."""

    site: str
    neuron: NeuronKind
    theta: float  # firing threshold
    v_init: float
    unit: float  # ANN value of one output count (theta, or theta_M for MTN)
    levels: int = 1  # max count per step
    theta_neg: float = 0.0  # dual IF only
    reset: ResetMode = ResetMode.SUBTRACT
    origin: str = ""  # where the threshold came from

    @property
    def ceiling(self) -> float:
        """Largest ANN value one step can represent (clipping level)."""
        return self.unit * self.levels


@dataclass
class Handle:
    srcs: list[str]
    kind: str  # analog | current | spikes
    scale: np.ndarray  # full feature shape, float64
    pending: dict[str, np.ndarray] = field(default_factory=dict)  # op -> bias not yet placed


@dataclass
class BuiltSnn:
    graph: Graph
    neuron_of: dict[str, str]  # ANN site -> IR neuron node
    scale_in: dict[str, np.ndarray]  # IR neuron -> scale of its input (ANN units per x unit)
    notes: list[str]


class _Builder:
    def __init__(self, ann: AnnGraph, plans: dict[str, SitePlan], readout: str = "li"):
        self.ann, self.plans, self.readout = ann, plans, readout
        self.nodes: dict = {}
        self.edges: list[Edge] = []
        self.taken: set[str] = set()
        self.unwritten: dict[str, np.ndarray] = {}  # synapse -> its bias, until placed
        self.notes: list[str] = []
        self.neuron_of: dict[str, str] = {}
        self.scale_in: dict[str, np.ndarray] = {}

    def add(self, base: str, op, srcs: list[str]) -> str:
        name = sanitize_name(base, self.taken)
        self.nodes[name] = op
        self.edges.extend(Edge(s, name, 0) for s in srcs)
        return name

    # ---------------------------------------------------------------------------------
    def single_consumer(self, name: str) -> bool:
        return len(self.ann.consumers(name)) == 1 and name != self.ann.output

    def synapse(self, node: AnnNode, h: Handle) -> Handle:
        w = node.p("weight").astype(np.float64)
        b = node.p("bias")
        b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
        if node.kind is AnnKind.DENSE:
            s = h.scale.reshape(-1)
            op = Affine(weight=(w * s[None, :]).astype(np.float32), bias=None)
        else:
            s = _per_channel(h.scale, node)
            out_c, in_per_group = w.shape[0], w.shape[1]
            groups = node.p("groups")
            idx = (np.arange(out_c)[:, None] // (out_c // groups)) * in_per_group + np.arange(in_per_group)[None, :]
            ws = w * s[idx].reshape(out_c, in_per_group, *([1] * (w.ndim - 2)))
            cls = Conv1d if w.ndim == 3 else Conv2d
            op = cls(weight=ws.astype(np.float32), bias=None, input_shape=self.ann.shapes[node.inputs[0]],
                     stride=node.p("stride"), padding=node.p("padding"), dilation=node.p("dilation"),
                     groups=groups)
        name = self.add(node.label or node.name, op, h.srcs)
        out_shape = self.ann.shapes[node.name]
        bias_full = b.reshape((-1,) + (1,) * (len(out_shape) - 1)) * np.ones(out_shape)
        self.unwritten[name] = b
        pending = {name: bias_full} if self.single_consumer(node.name) else {}
        return Handle([name], "current", np.ones(out_shape), pending)

    def to_unit_current(self, h: Handle, shape: tuple[int, ...], where: str) -> Handle:
        """A handle with scale 1 (a spiking or scaled branch goes through a diagonal synapse)."""
        if h.kind != "spikes" and np.allclose(h.scale, 1.0):
            return h
        if len(shape) == 1:
            op = Affine(weight=np.diag(h.scale.reshape(-1)).astype(np.float32), bias=None)
        else:
            s = _per_channel(h.scale, None, where)
            c = len(s)
            w = np.zeros((c, c) + (1,) * (len(shape) - 1))
            w[np.arange(c), np.arange(c)] = s
            cls = Conv1d if len(shape) == 2 else Conv2d
            op = cls(weight=w.astype(np.float32), bias=None, input_shape=shape)
        name = self.add(f"{where}.scale", op, h.srcs)
        return Handle([name], "current", np.ones(shape), {})

    def neuron(self, node: AnnNode, h: Handle) -> Handle:
        plan = self.plans[node.name]
        if h.kind == "spikes":
            raise UserInputError(f"activation {node.where or node.name} directly follows another activation; insert a layer between them")
        shape = self.ann.shapes[node.name]
        s = h.scale
        bias = np.zeros(shape)
        for op_name, b in h.pending.items():
            bias = bias + b
            self.unwritten.pop(op_name, None)
        f32 = lambda a: np.broadcast_to(a, shape).astype(np.float32)  # noqa: E731
        theta, v0, bias_x = f32(plan.theta / s), f32(plan.v_init / s), f32(bias / s)
        if plan.neuron is NeuronKind.IF:
            op = IF(gain=f32(np.ones(shape)), bias=bias_x, theta=theta, v_reset=f32(np.zeros(shape)),
                    v_init=v0, reset=ResetMode.SUBTRACT, comparator=Comparator.GE)
        elif plan.neuron is NeuronKind.DUAL_IF:
            op = DualThresholdIF(bias=bias_x, theta=theta, theta_neg=f32(plan.theta_neg / s), v_init=v0)
        else:
            op = MultiThreshold(bias=bias_x, theta=theta, v_init=v0, levels=plan.levels, reset=plan.reset)
        name = self.add(node.label or node.name, op, h.srcs)
        self.neuron_of[node.name] = name
        self.scale_in[name] = s
        return Handle([name], "spikes", np.full(shape, plan.unit, dtype=np.float64))

    def pool(self, node: AnnNode, h: Handle) -> Handle:
        shape_in = self.ann.shapes[node.inputs[0]]
        k, st, pad = node.p("kernel"), node.p("stride"), node.p("padding")
        scale_t = torch.from_numpy(h.scale[None])
        if node.p("mode") == "avg":
            op = Pool(mode=PoolMode.SUM, kernel=k, stride=st, padding=pad, input_shape=shape_in)
            fn = F.avg_pool2d if len(k) == 2 else F.avg_pool1d
            # SNN value = window sum; ANN value = sum / k (padding counted): scale' = scale / k
            scale = fn(scale_t, k, st, pad, count_include_pad=True)[0].numpy() / float(np.prod(k))
            kind = h.kind
        else:
            _per_channel(h.scale, node)
            op = Pool(mode=PoolMode.MAX, kernel=k, stride=st, padding=pad, input_shape=shape_in)
            fn = F.max_pool2d if len(k) == 2 else F.max_pool1d
            scale = fn(scale_t, k, st, pad)[0].numpy()
            kind = h.kind
            if h.kind == "current":
                self.notes.append(f"max-pool {node.where or node.name} acts on synaptic currents: exact only at T = 1")
            elif any(p.neuron is not NeuronKind.MTN for p in self.plans.values()):
                self.notes.append(
                    f"max-pool {node.where or node.name} on binary/signed spikes takes the max of"
                    " per-step spikes (not of rates); prefer avg-pool or sfn")
        name = self.add(node.label or node.name, op, h.srcs)
        return Handle([name], kind, scale)

    def flatten(self, node: AnnNode, h: Handle) -> Handle:
        shape_in = self.ann.shapes[node.inputs[0]]
        if len(shape_in) == 1:
            return h
        name = self.add(node.label or node.name, Flatten(input_shape=shape_in), h.srcs)
        return Handle([name], h.kind, h.scale.reshape(-1))

    def residual(self, node: AnnNode, hs: list[Handle]) -> Handle:
        shape = self.ann.shapes[node.name]
        srcs: list[str] = []
        pending: dict[str, np.ndarray] = {}
        ok = self.single_consumer(node.name) and all(self.single_consumer(i) for i in node.inputs)
        for h in hs:
            u = self.to_unit_current(h, shape, node.name)
            srcs.extend(u.srcs)
            if ok:
                pending.update(u.pending)
        return Handle(srcs, "current", np.ones(shape), pending)

    # ---------------------------------------------------------------------------------
    def build(self, name: str) -> BuiltSnn:
        handles: dict[str, Handle] = {}
        for node in self.ann.nodes:
            k = node.kind
            if k is AnnKind.INPUT:
                n = self.add("input", Input(shape=self.ann.input_shape), [])
                handles[node.name] = Handle([n], "analog", np.ones(self.ann.input_shape))
                continue
            hs = [handles[i] for i in node.inputs]
            if k in (AnnKind.DENSE, AnnKind.CONV):
                handles[node.name] = self.synapse(node, hs[0])
            elif k is AnnKind.ACT and node.p("spec").kind is ActKind.LINEAR:
                h = hs[0]
                handles[node.name] = Handle(h.srcs, h.kind, h.scale * node.p("spec").scale)
            elif k is AnnKind.ACT:
                handles[node.name] = self.neuron(node, hs[0])
            elif k is AnnKind.POOL:
                handles[node.name] = self.pool(node, hs[0])
            elif k is AnnKind.FLATTEN:
                handles[node.name] = self.flatten(node, hs[0])
            elif k is AnnKind.ADD:
                handles[node.name] = self.residual(node, hs)
            else:
                raise UserInputError(f"ANN node {node.where or node.name} ({k.value}) was not lowered")
        out_shape = self.ann.shapes[self.ann.output]
        h = self.to_unit_current(handles[self.ann.output], out_shape, "readout")
        srcs = h.srcs
        if self.readout == "li":  # memoryless non-spiking neuron: v(t) = W o(t) + b
            bias = np.zeros(out_shape)
            if not self.ann.consumers(self.ann.output):
                for s in srcs:
                    if s in self.unwritten:
                        b = self.unwritten.pop(s)
                        bias = bias + b.reshape((-1,) + (1,) * (len(out_shape) - 1))
            f32 = lambda a: np.broadcast_to(a, out_shape).astype(np.float32)  # noqa: E731
            li = LI(beta=f32(0.0), gain=f32(1.0), bias=f32(bias), v_init=f32(0.0))
            srcs = [self.add("readout", li, srcs)]
        self.add("output", Output(shape=out_shape), srcs)
        for op_name, b in self.unwritten.items():  # biases not moved into a neuron stay in the synapse
            if np.any(b != 0):
                self.nodes[op_name] = self.nodes[op_name].replace(bias=b.astype(np.float32))
        bad = [p for n, op in self.nodes.items() for p in conversion_problems(n, op)]
        if bad:
            raise UserInputError(bad[0])
        attrs = GraphAttrs(name=name, dt=None, properties=frozenset({Prop.DISCRETIZED}))
        graph = finish_graph(Graph(self.nodes, self.edges, attrs))
        return BuiltSnn(graph, self.neuron_of, self.scale_in, self.notes)


def _per_channel(scale: np.ndarray, node: AnnNode | None, where: str = "") -> np.ndarray:
    """The per-channel value of a (C, *spatial) scale; it must be constant over space."""
    if scale.ndim == 1:
        return scale
    flat = scale.reshape(scale.shape[0], -1)
    if not np.allclose(flat, flat[:, :1]):
        label = node.where or node.name if node is not None else where
        raise UserInputError(f"{label}: the input scale varies over space; use per-channel thresholds only")
    return flat[:, 0]


def build_snn(ann: AnnGraph, plans: dict[str, SitePlan], name: str = "converted",
              readout: str = "li") -> BuiltSnn:
    """``readout``: ``li`` (a memoryless LI neuron, beta = 0, holding the last bias: what Lava
    needs) or ``synapse`` (the last synapse feeds ``Output`` directly)."""
    missing = [n.name for n in ann.acts() if n.name not in plans]
    if missing:
        raise UserInputError(f"no threshold for activation {missing[0]}")
    if readout not in ("li", "synapse"):
        raise UserInputError("readout must be li or synapse")
    return _Builder(ann, plans, readout).build(name)
