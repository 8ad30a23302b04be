"""The graph container: named ops plus edges ``(src, dst, delay)``.

Several edges into one node are summed in edge-list order (the order matters for float32
rounding and is part of the graph). A graph is immutable; building uses ``GraphBuilder`` and
transformations return new graphs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

from rsnn_compiler.ir.ops import Input, Op, Output
from rsnn_compiler.neurons.enums import Domain  # noqa: F401 (the IR's numeric domains)


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    delay: int = 0


@dataclass(frozen=True)
class GraphAttrs:
    """Graph-wide facts: name, time step (seconds, None when unknown), numeric domain,
    fixed-point profile once quantized, the properties passes have established, and ``steps``:
    the number of time steps the model is meant to run for (None: as many as the data has; set
    by temporal pruning, executors then run the first ``steps`` steps of the data)."""

    name: str = "graph"
    dt: float | None = None
    domain: Domain = Domain.FLOAT
    profile: str | None = None
    properties: frozenset[str] = frozenset()
    steps: int | None = None

    def with_properties(self, *added: str, removed: Iterable[str] = ()) -> "GraphAttrs":
        props = (set(self.properties) | set(added)) - set(removed)
        return replace(self, properties=frozenset(props))


@dataclass(frozen=True, eq=False)
class Graph:
    nodes: Mapping[str, Op]
    edges: tuple[Edge, ...]
    attrs: GraphAttrs = field(default_factory=GraphAttrs)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))
        object.__setattr__(self, "edges", tuple(self.edges))

    # --- queries ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def op(self, name: str) -> Op:
        return self.nodes[name]

    def in_edges(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == name]

    def out_edges(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.src == name]

    def names_of(self, cls: type[Op]) -> list[str]:
        return [n for n, op in self.nodes.items() if isinstance(op, cls)]

    @property
    def input_name(self) -> str:
        names = self.names_of(Input)
        if len(names) != 1:
            raise ValueError(f"graph has {len(names)} Input nodes; exactly one is supported")
        return names[0]

    @property
    def output_name(self) -> str:
        names = self.names_of(Output)
        if len(names) != 1:
            raise ValueError(f"graph has {len(names)} Output nodes; exactly one is supported")
        return names[0]

    # --- transformations (each returns a new graph) ---------------------------------------
    def with_attrs(self, **changes) -> "Graph":
        return Graph(self.nodes, self.edges, replace(self.attrs, **changes))

    def with_node(self, name: str, op: Op) -> "Graph":
        nodes = dict(self.nodes)
        nodes[name] = op
        return Graph(nodes, self.edges, self.attrs)

    def with_edges(self, edges: Iterable[Edge]) -> "Graph":
        return Graph(self.nodes, tuple(edges), self.attrs)

    def without_nodes(self, names: Iterable[str]) -> "Graph":
        drop = set(names)
        nodes = {n: op for n, op in self.nodes.items() if n not in drop}
        edges = [e for e in self.edges if e.src not in drop and e.dst not in drop]
        return Graph(nodes, edges, self.attrs)


class GraphBuilder:
    """Mutable helper to assemble a graph: ``add`` ops, ``connect`` them, then ``build``."""

    def __init__(self, name: str = "graph", dt: float | None = None):
        self._nodes: dict[str, Op] = {}
        self._edges: list[Edge] = []
        self._attrs = GraphAttrs(name=name, dt=dt)

    def add(self, name: str, op: Op) -> str:
        if name in self._nodes:
            raise ValueError(f"node '{name}' is defined twice")
        self._nodes[name] = op
        return name

    def connect(self, src: str, dst: str, delay: int = 0) -> None:
        self._edges.append(Edge(src, dst, int(delay)))

    def chain(self, *names: str) -> None:
        for a, b in zip(names, names[1:]):
            self.connect(a, b)

    def build(self) -> Graph:
        return Graph(self._nodes, self._edges, self._attrs)
