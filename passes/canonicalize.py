"""canonicalize: fold batch-norm, merge affine chains, drop identities, fold delay nodes.

Rewrites (each preserves the function computed by the float interpreter; the products are
formed in float64 and rounded once to float32, so values may differ from the unfolded graph by
float32 rounding):
- BatchNorm after an Affine/Conv that feeds only it: W' = scale*W (per output channel),
  b' = scale*b + shift, with scale = gamma/sqrt(var+eps), shift = beta - scale*mean.
- Scale after an Affine that feeds only it: W' = s*W, b' = s*b.
- Affine B fed only by Affine A (delay 0), A feeding only B: W = W_B W_A, b = W_B b_A + b_B,
  unless W_B W_A has more entries than W_A and W_B together (a low-rank factorised pair such as
  200k -> 8 -> 200k stays factorised: canonicalize never makes a matrix larger than its inputs).
- Identity, Delay(steps=0) and shape-preserving Flatten nodes are removed, and Delay(k >= 1)
  nodes become edge delays: each pair of edges (p -> n, d1), (n -> q, d2) becomes
  (p -> q, d1 + d2 + k). These are exact.
Edge order (the input summation order) is preserved: a rewired edge takes the place of the edge
it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rsnn_compiler.ir.graph import Edge, Graph
from rsnn_compiler.ir.ops import Affine, BatchNorm, Conv1d, Conv2d, Delay, Flatten, Identity, Scale
from rsnn_compiler.passes_api import PassContext, PassReport, Prop


@dataclass
class CanonicalizeReport(PassReport):
    nodes_before: int = 0
    nodes_after: int = 0
    folded_batchnorms: int = 0
    folded_scales: int = 0
    merged_affines: int = 0
    removed_identities: int = 0
    folded_delays: int = 0


def _sole_successor(graph: Graph, name: str) -> Edge | None:
    outs = graph.out_edges(name)
    return outs[0] if len(outs) == 1 and outs[0].delay == 0 else None


def _sole_predecessor(graph: Graph, name: str) -> Edge | None:
    ins = graph.in_edges(name)
    return ins[0] if len(ins) == 1 and ins[0].delay == 0 else None


def _bypass(graph: Graph, name: str, extra_delay: int = 0) -> Graph:
    """Remove node ``name``, connecting each predecessor to each successor in place."""
    ins = [e for e in graph.edges if e.dst == name]
    edges: list[Edge] = []
    for e in graph.edges:
        if e.dst == name:
            continue
        if e.src == name:
            edges.extend(Edge(p.src, e.dst, p.delay + e.delay + extra_delay) for p in ins)
        else:
            edges.append(e)
    return graph.with_edges(edges).without_nodes([name])


def _absorb_successor(graph: Graph, keep: str, new_op, drop: str) -> Graph:
    """Replace ``keep`` by ``new_op`` and remove ``drop`` (its sole successor); ``drop``'s
    outgoing edges now leave ``keep``."""
    edges = []
    for e in graph.edges:
        if e.src == keep and e.dst == drop:
            continue
        edges.append(Edge(keep, e.dst, e.delay) if e.src == drop else e)
    return graph.with_node(keep, new_op).with_edges(edges).without_nodes([drop])


def _f64(a: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n) if a is None else a.astype(np.float64)


def _fold_channel_affine(op, scale: np.ndarray, shift: np.ndarray):
    """Return ``op`` (Affine/Conv) followed by y = scale*y + shift per output channel."""
    w = op.weight.astype(np.float64)
    w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    b = scale * _f64(op.bias, w.shape[0]) + shift
    return op.replace(weight=w.astype(np.float32), bias=b.astype(np.float32))


def _try_fold_into_producer(graph: Graph, name: str) -> Graph | None:
    op = graph.nodes[name]
    pred = _sole_predecessor(graph, name)
    if pred is None:
        return None
    producer = graph.nodes[pred.src]
    if not isinstance(producer, (Affine, Conv1d, Conv2d)) or _sole_successor(graph, pred.src) is None:
        return None
    if isinstance(op, BatchNorm):
        scale, shift = op.channel_affine()
    elif isinstance(op, Scale) and isinstance(producer, Affine):
        scale, shift = op.scale.astype(np.float64), np.zeros(op.scale.shape)
    else:
        return None
    return _absorb_successor(graph, pred.src, _fold_channel_affine(producer, scale, shift), name)


def _try_merge_affines(graph: Graph, name: str) -> Graph | None:
    second = graph.nodes[name]
    pred = _sole_predecessor(graph, name)
    if not isinstance(second, Affine) or pred is None:
        return None
    first = graph.nodes[pred.src]
    if not isinstance(first, Affine) or _sole_successor(graph, pred.src) is None:
        return None
    n_in, n_out = first.weight.shape[1], second.weight.shape[0]
    if n_out * n_in > first.weight.size + second.weight.size:
        return None  # merging would grow the parameters (e.g. 200k -> 8 -> 200k): keep the pair
    wa, wb = first.weight.astype(np.float64), second.weight.astype(np.float64)
    has_bias = first.bias is not None or second.bias is not None
    bias = wb @ _f64(first.bias, wa.shape[0]) + _f64(second.bias, wb.shape[0])
    merged = Affine(
        weight=(wb @ wa).astype(np.float32), bias=bias.astype(np.float32) if has_bias else None
    )
    return _absorb_successor(graph, pred.src, merged, name)


def _is_identity(op) -> bool:
    if isinstance(op, Identity):
        return True
    if isinstance(op, Delay) and op.steps == 0:
        return True
    return isinstance(op, Flatten) and op.out_shape == op.in_shape


class Canonicalize:
    name: ClassVar[str] = "canonicalize"
    requires: ClassVar[frozenset[str]] = frozenset()
    establishes: ClassVar[frozenset[str]] = frozenset({Prop.CANONICAL})
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset({Prop.QUANTIZED})

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, CanonicalizeReport]:
        report = CanonicalizeReport(name=self.name, nodes_before=len(graph))
        changed = True
        while changed:
            changed = False
            for name in list(graph.nodes):
                op = graph.nodes[name]
                if _is_identity(op):
                    graph = _bypass(graph, name)
                    report.removed_identities += 1
                elif isinstance(op, Delay):
                    graph = _bypass(graph, name, extra_delay=op.steps)
                    report.folded_delays += 1
                elif isinstance(op, (BatchNorm, Scale)) and (new := _try_fold_into_producer(graph, name)):
                    graph = new
                    if isinstance(op, BatchNorm):
                        report.folded_batchnorms += 1
                    else:
                        report.folded_scales += 1
                elif isinstance(op, Affine) and (new := _try_merge_affines(graph, name)):
                    graph = new
                    report.merged_affines += 1
                else:
                    continue
                changed = True
                break
        report.nodes_after = len(graph)
        total = report.nodes_before - report.nodes_after
        report.reason = f"removed {total} node(s)" if total else "already canonical"
        return graph, report
