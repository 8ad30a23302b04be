"""Synaptic-operation, spike and weight accounting (NeuroBench definitions), for every report.

Per synapse layer (Affine / Conv, float or fixed-point) with input ``x[t]`` (the summed, delayed
inputs of the node, exactly as the interpreter forms them) and weight ``W``:

    effective synops / sample = (1/B) sum_b sum_t sum_j nnz(W[:, j]) * [x_bj[t] != 0]
    dense synops / sample     = T * (number of multiply-accumulates of the dense layer)

i.e. NeuroBench's *effective* count: one operation per (nonzero input, nonzero weight) pair, zero
weights and silent inputs skipped; a layer whose inputs are all 0/±1 spikes does accumulates
(``ACs``), any other layer multiply-accumulates (``MACs``). Graded spikes count one operation per
event, like NeuroBench (not one per payload unit). For convolutions the pair count is exact at the
borders: it is ``sum conv([x != 0], [W != 0])``. Biases are not counted.

Also: spikes per sample (nonzero outputs of spiking neurons, per node and in total), neuron
(membrane) updates per sample (neurons x T), and weights kept per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import NeuronOp, Op

SYNAPSE_KINDS = ("affine", "conv1d", "conv2d", "fixed_dense", "fixed_conv1d", "fixed_conv2d")


def is_synapse(op: Op) -> bool:
    """Affine / Conv ops in either domain (anything carrying a synaptic ``weight``)."""
    return op.kind.value in SYNAPSE_KINDS


@dataclass
class LayerWeights:
    """Weight count and sparsity of one synapse layer."""

    node: str
    kind: str
    shape: tuple[int, ...]
    total: int
    kept: int  # nonzero weights
    zero_rows: int  # output neurons / channels with no nonzero weight (structured sparsity)

    @property
    def density(self) -> float:
        return self.kept / self.total if self.total else 1.0


def weight_sparsity(graph: Graph) -> dict[str, LayerWeights]:
    """Weights kept per synapse layer (graph order); works on float and fixed-point graphs.

    Backends can use it to choose a compressed format (e.g. CSR when density < 0.5)."""
    out: dict[str, LayerWeights] = {}
    for name, op in graph.nodes.items():
        if not is_synapse(op):
            continue
        w = np.asarray(op.weight)
        rows = w.reshape(w.shape[0], -1)
        out[name] = LayerWeights(
            node=name,
            kind=op.kind.value,
            shape=tuple(int(d) for d in w.shape),
            total=int(w.size),
            kept=int(np.count_nonzero(w)),
            zero_rows=int((~rows.any(axis=1)).sum()) if w.size else 0,
        )
    return out


@dataclass
class LayerOps:
    node: str
    kind: str
    op_type: str  # "AC" (spike inputs) or "MAC"
    effective_per_sample: float
    dense_per_sample: float
    input_events_per_sample: float  # nonzero inputs (t, j) per sample


@dataclass
class SynOpsAccount:
    """Per-sample counts over ``steps`` time steps on ``samples`` inputs."""

    steps: int
    samples: int
    layers: list[LayerOps] = field(default_factory=list)
    spikes_per_node: dict[str, float] = field(default_factory=dict)
    weights: dict[str, LayerWeights] = field(default_factory=dict)
    neuron_updates_per_sample: float = 0.0

    @property
    def effective_synops(self) -> float:
        return float(sum(layer.effective_per_sample for layer in self.layers))

    @property
    def effective_macs(self) -> float:
        return float(sum(l.effective_per_sample for l in self.layers if l.op_type == "MAC"))

    @property
    def effective_acs(self) -> float:
        return float(sum(l.effective_per_sample for l in self.layers if l.op_type == "AC"))

    @property
    def dense_synops(self) -> float:
        return float(sum(layer.dense_per_sample for layer in self.layers))

    @property
    def spikes_per_sample(self) -> float:
        return float(sum(self.spikes_per_node.values()))

    @property
    def weights_total(self) -> int:
        return sum(w.total for w in self.weights.values())

    @property
    def weights_kept(self) -> int:
        return sum(w.kept for w in self.weights.values())

    def summary(self) -> dict:
        """Flat numbers for a report."""
        return {
            "steps": self.steps,
            "samples": self.samples,
            "effective_synops_per_sample": self.effective_synops,
            "effective_macs_per_sample": self.effective_macs,
            "effective_acs_per_sample": self.effective_acs,
            "dense_synops_per_sample": self.dense_synops,
            "spikes_per_sample": self.spikes_per_sample,
            "neuron_updates_per_sample": self.neuron_updates_per_sample,
            "weights_total": self.weights_total,
            "weights_kept": self.weights_kept,
            "per_layer": {
                l.node: {
                    "op_type": l.op_type,
                    "effective_per_sample": l.effective_per_sample,
                    "dense_per_sample": l.dense_per_sample,
                    "weights_kept": self.weights[l.node].kept if l.node in self.weights else None,
                    "weights_total": self.weights[l.node].total if l.node in self.weights else None,
                }
                for l in self.layers
            },
            "spikes_per_node": dict(self.spikes_per_node),
        }


def node_input(graph: Graph, values: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The summed input of ``name`` at every step: sum over in-edges of ``values[src][t - delay]``."""
    op = graph.nodes[name]
    steps, batch = next(iter(values.values())).shape[:2]
    total = np.zeros((steps, batch, *op.in_shape), dtype=np.float64)
    for e in graph.in_edges(name):
        src = values[e.src]
        if e.delay < steps:
            total[e.delay :] += src[: steps - e.delay]
    return total


def _is_spike_train(x: np.ndarray) -> bool:
    return bool(np.isin(x, (-1.0, 0.0, 1.0)).all())


def _count_layer(op: Op, x: np.ndarray) -> tuple[float, float]:
    """(effective, dense) operation counts summed over time and batch."""
    active = x != 0
    w = np.asarray(op.weight)
    if w.ndim == 2:  # dense: one op per (active input j, nonzero weight in column j)
        nnz_col = np.count_nonzero(w, axis=0).astype(np.float64)
        effective = float((active.reshape(-1, w.shape[1]).astype(np.float64) @ nnz_col).sum())
        dense = float(x.shape[0] * x.shape[1] * w.size)
        return effective, dense
    conv = F.conv1d if w.ndim == 3 else F.conv2d
    stride, padding, dilation, groups = op.stride, op.padding, op.dilation, op.groups
    flat = torch.from_numpy(active.reshape(-1, *x.shape[2:]).astype(np.float64))
    mask = torch.from_numpy((w != 0).astype(np.float64))
    effective = float(conv(flat, mask, None, stride, padding, dilation, groups).sum())
    ones_in = torch.ones((1, *x.shape[2:]), dtype=torch.float64)
    ones_w = torch.ones(mask.shape, dtype=torch.float64)
    dense = float(conv(ones_in, ones_w, None, stride, padding, dilation, groups).sum()) * flat.shape[0]
    return effective, dense


def count_synops(graph: Graph, result: RunResult) -> SynOpsAccount:
    """Account a run (``result`` must hold ``values`` of every node, e.g. ``run_float(graph, x)``)."""
    if not result.values:
        raise ValueError("count_synops needs a run recorded with every node's values")
    steps, batch = result.out.shape[:2]
    account = SynOpsAccount(steps=int(steps), samples=int(batch), weights=weight_sparsity(graph))
    for name, op in graph.nodes.items():
        if is_synapse(op):
            x = node_input(graph, result.values, name)
            effective, dense = _count_layer(op, x)
            account.layers.append(
                LayerOps(
                    node=name,
                    kind=op.kind.value,
                    op_type="AC" if _is_spike_train(x) else "MAC",
                    effective_per_sample=effective / batch,
                    dense_per_sample=dense / batch,
                    input_events_per_sample=float(np.count_nonzero(x)) / batch,
                )
            )
        elif isinstance(op, NeuronOp):
            account.neuron_updates_per_sample += float(steps * math.prod(op.shape))
            if op.spiking and name in result.values:
                account.spikes_per_node[name] = float(np.count_nonzero(result.values[name])) / batch
    return account


def account_float(graph: Graph, x: np.ndarray) -> tuple[SynOpsAccount, RunResult]:
    """Run the float interpreter on ``x`` and account the run."""
    from rsnn_compiler.interpreter.float_interp import run_float

    result = run_float(graph, x, record=True)
    return count_synops(graph, result), result


__all__ = [
    "LayerOps", "LayerWeights", "SynOpsAccount", "account_float", "count_synops", "is_synapse",
    "node_input", "weight_sparsity",
]
