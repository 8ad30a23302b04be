"""Graph algorithms on a derived, read-only networkx view (the IR's data never lives there).

Same-step dependencies are the edges with delay 0 whose destination is not a ``Delay`` op with
``steps >= 1`` (such an op's output at t depends only on inputs before t). These must form a DAG;
evaluation within a step follows its topological order, ties broken by node order in the graph.
"""

from __future__ import annotations

import networkx as nx

from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import Delay


def _breaks_step(graph: Graph, dst: str) -> bool:
    op = graph.nodes[dst]
    return isinstance(op, Delay) and op.steps >= 1


def full_view(graph: Graph) -> nx.MultiDiGraph:
    """All edges, with ``delay`` as an edge attribute. Frozen."""
    g = nx.MultiDiGraph()
    g.add_nodes_from(graph.nodes)
    for e in graph.edges:
        g.add_edge(e.src, e.dst, delay=e.delay)
    return nx.freeze(g)


def same_step_view(graph: Graph) -> nx.DiGraph:
    """Edges that must be evaluated within one time step. Frozen."""
    g = nx.DiGraph()
    g.add_nodes_from(graph.nodes)
    for e in graph.edges:
        if e.delay == 0 and not _breaks_step(graph, e.dst) and e.src in graph.nodes:
            g.add_edge(e.src, e.dst)
    return nx.freeze(g)


def same_step_cycle(graph: Graph) -> list[str] | None:
    """A cycle made only of same-step edges (an algebraic loop), as node names, or None."""
    try:
        cycle = nx.find_cycle(same_step_view(graph))
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _v in cycle]


def evaluation_order(graph: Graph) -> list[str]:
    """Deterministic topological order over same-step edges (ties: graph node order)."""
    index = {n: i for i, n in enumerate(graph.nodes)}
    return list(nx.lexicographical_topological_sort(same_step_view(graph), key=index.__getitem__))


def cycles(graph: Graph, limit: int = 100) -> list[list[str]]:
    """Up to ``limit`` elementary cycles of the full graph (node names, each loop once)."""
    out = []
    for cyc in nx.simple_cycles(nx.DiGraph(full_view(graph))):
        out.append(cyc)
        if len(out) >= limit:
            break
    return out


def stages(graph: Graph) -> dict[str, int]:
    """Depth of every node along same-step edges (inputs and loop entries are stage 0)."""
    view = same_step_view(graph)
    stage: dict[str, int] = {}
    for name in evaluation_order(graph):
        preds = list(view.predecessors(name))
        stage[name] = max((stage[p] + 1 for p in preds), default=0)
    return stage
