"""map_loihi2: partition a loihi2 fixed graph onto neuro-cores, chips and a board.

Model (figures and sources: ``rsnn_compiler.backends.lava.loihi2_resources``; docs/loihi2-mapping.md):

- a *population* is a neuron node; the host-fed source (Input / its Quantize) lives off-core;
- a *connection* is a retiming path ``population -> [synapse] -> neuron`` (Lava Dense/DelayDense),
  held as CSR over destination neurons (or only per-neuron fan-in when the structure is implicit);
- a core holds neurons of one population; each neuron costs its state bits plus the synapse
  memory of its fan-in rows: dense rows (layer density >= 0.5) one ``weight_bits`` slot per source
  neuron, sparse rows ``weight_bits + index_bits`` per nonzero (+ 6 delay bits on DelayDense);
- per core: neurons <= cap, memory <= budget, distinct input axons <= in-axon limit, and
  sum over its neurons of destination cores reached <= out-axon limit.

Algorithm: greedy contiguous packing per population with cumulative sums and ``searchsorted``
(O(cores log n)); a block over the in-axon limit is halved until it fits; out-axon costs depend on
the destination partition, so packing repeats (at most ``MAX_ROUNDS``) until stable. Cores are
packed into chips in order (cores and synapses per chip), chips onto the chosen board. Every
violation carries a fix. ``map_network`` is the core (used by bench/mapping_scaling.py on a 1M-neuron
synthetic network); ``mapping_diagnostics`` is what the Lava backend's ``check`` can call.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from rsnn_compiler.backends.lava.loihi2_resources import (
    DEFAULT_BOARD, LOIHI2_RESOURCES, Loihi2MapOptions, Loihi2Resources, get_board,
)
from rsnn_compiler.backends.lava.fold import ConvGeometry, FoldError, fold_path
from rsnn_compiler.ir.fixed_ops import FixedNeuron
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.passes_api import PassContext, PassReport, Prop
from rsnn_compiler.target_api import Diagnostic

MAX_ROUNDS = 4
MAX_CORES_IN_REPORT = 20000


# --------------------------------------------------------------------------------------------
# Network description (independent of the IR)
# --------------------------------------------------------------------------------------------
@dataclass
class Population:
    name: str
    size: int
    state_bits: int = 48
    on_core: bool = True  # False: host-fed source (no neuro-core)


@dataclass
class Connection:
    """Synapses from ``src`` to ``dst``: CSR over destination neurons, or fan-in only."""

    name: str
    src: str
    dst: str
    fanin: np.ndarray  # (n_dst,) nonzero synapses per destination neuron
    n_src: int
    weight_bits: int = 8
    delayed: bool = False
    indptr: np.ndarray | None = None  # (n_dst + 1,)
    indices: np.ndarray | None = None  # source neuron of each synapse, in indptr order

    @property
    def synapses(self) -> int:
        return int(self.fanin.sum())

    @property
    def density(self) -> float:
        slots = self.n_src * len(self.fanin)
        return self.synapses / slots if slots else 1.0

    @staticmethod
    def from_matrix(name: str, src: str, dst: str, weight: np.ndarray, weight_bits: int = 8,
                    delayed: bool = False) -> "Connection":
        mask = np.asarray(weight) != 0
        rows, cols = np.nonzero(mask)  # row-major: sorted by destination
        fanin = np.bincount(rows, minlength=mask.shape[0]).astype(np.int64)
        indptr = np.concatenate([[0], np.cumsum(fanin)])
        return Connection(name, src, dst, fanin, int(mask.shape[1]), weight_bits, delayed,
                          indptr, cols.astype(np.int32))


@dataclass
class Network:
    populations: dict[str, Population] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------
@dataclass
class CoreUse:
    index: int
    chip: int
    population: str
    start: int  # first neuron (index within the population)
    neurons: int
    memory_bits: int
    synapses: int
    in_axons: int
    out_axons: int

    def utilisation(self, res: Loihi2Resources) -> dict[str, float]:
        return {
            "neurons": self.neurons / res.neurons_per_core.value,
            "memory": self.memory_bits / res.core_memory_bits.value,
            "in_axons": self.in_axons / res.in_axons_per_core.value,
            "out_axons": self.out_axons / res.out_axons_per_core.value,
        }


@dataclass
class Mapping:
    board: str
    board_chips: int
    cores: list[CoreUse] = field(default_factory=list)
    violations: list[Diagnostic] = field(default_factory=list)
    fanout_cores: dict[str, np.ndarray] = field(default_factory=dict)  # per neuron: dst cores reached
    rounds: int = 0
    resources: Loihi2Resources = LOIHI2_RESOURCES

    @property
    def n_cores(self) -> int:
        return len(self.cores)

    @property
    def n_chips(self) -> int:
        return max((c.chip for c in self.cores), default=-1) + 1

    @property
    def fits(self) -> bool:
        return not self.violations

    def per_population(self) -> list[dict]:
        rows: dict[str, dict] = {}
        for c in self.cores:
            r = rows.setdefault(c.population, {"population": c.population, "neurons": 0, "cores": 0,
                                               "synapses": 0, "memory_kb": 0.0, "max_util": 0.0})
            r["neurons"] += c.neurons
            r["cores"] += 1
            r["synapses"] += c.synapses
            r["memory_kb"] += c.memory_bits / 8192
            r["max_util"] = max(r["max_util"], max(c.utilisation(self.resources).values()))
        for name, r in rows.items():
            fo = self.fanout_cores.get(name)
            r["msgs_per_spike"] = float(fo.mean()) if fo is not None and fo.size else 0.0
            r["memory_kb"] = round(r["memory_kb"], 2)
            r["max_util"] = round(r["max_util"], 3)
        return list(rows.values())


# --------------------------------------------------------------------------------------------
# Partitioning
# --------------------------------------------------------------------------------------------
def _entry_bits(conn: Connection, res: Loihi2Resources) -> tuple[bool, int]:
    """(dense row storage?, bits per stored slot) of a connection."""
    extra = res.delay_bits.value if conn.delayed else 0
    if conn.density >= res.dense_density:
        return True, conn.weight_bits + extra
    return False, conn.weight_bits + res.sparse_index_bits.value + extra


def neuron_costs(net: Network, pop: Population, res: Loihi2Resources) -> tuple[np.ndarray, np.ndarray]:
    """(memory bits, synapses) per neuron of ``pop``."""
    bits = np.full(pop.size, pop.state_bits, dtype=np.int64)
    syn = np.zeros(pop.size, dtype=np.int64)
    for conn in net.connections:
        if conn.dst != pop.name:
            continue
        dense, per = _entry_bits(conn, res)
        bits += per * (conn.n_src if dense else conn.fanin)
        syn += conn.fanin
    return bits, syn


def _in_axons(conns: list[Connection], a: int, b: int, marks: dict[str, np.ndarray],
              fanout: dict[str, np.ndarray] | None) -> int:
    """Distinct source neurons feeding neurons [a, b); adds 1 to ``fanout`` of each."""
    total = 0
    for conn in conns:
        if conn.indices is None:
            total += int(min(conn.n_src, conn.fanin[a:b].sum()))
            if fanout is not None and conn.src in fanout:
                fanout[conn.src] += 1  # implicit structure: every source may reach this core
            continue
        if b > a and int(conn.fanin[a:b].max()) == conn.n_src:  # a full row: every source feeds the block
            total += conn.n_src
            if fanout is not None and conn.src in fanout:
                fanout[conn.src] += 1
            continue
        idx = conn.indices[conn.indptr[a]:conn.indptr[b]]
        mark = marks[conn.name]
        mark[:] = False
        mark[idx] = True
        total += int(mark.sum())
        if fanout is not None and conn.src in fanout:
            fanout[conn.src] += mark
    return total


def _in_axons_bound(conns: list[Connection], a: int, b: int) -> int:
    """Upper bound on ``_in_axons`` (sum over connections of min(sources, synapses)), O(1) each:
    a block under the in-axon limit by this bound needs no exact count."""
    return sum(int(min(c.n_src, c.indptr[b] - c.indptr[a] if c.indptr is not None else c.fanin[a:b].sum()))
               for c in conns)


def _pack(cum_mem: np.ndarray, cum_out: np.ndarray, cap: int, mem_budget: int, out_budget: int
          ) -> list[tuple[int, int]]:
    n = len(cum_mem) - 1
    blocks, start = [], 0
    while start < n:
        end_mem = int(np.searchsorted(cum_mem, cum_mem[start] + mem_budget, side="right")) - 1
        end_out = int(np.searchsorted(cum_out, cum_out[start] + out_budget, side="right")) - 1
        end = max(start + 1, min(end_mem, end_out, start + cap, n))  # one neuron at least
        blocks.append((start, end))
        start = end
    return blocks


def _partition(net: Network, res: Loihi2Resources, out_cost: dict[str, np.ndarray]
               ) -> dict[str, list[tuple[int, int]]]:
    in_conns = {p: [c for c in net.connections if c.dst == p] for p in net.populations}
    marks = {c.name: np.zeros(c.n_src, dtype=bool) for c in net.connections if c.indices is not None}
    out: dict[str, list[tuple[int, int]]] = {}
    for pop in net.populations.values():
        if not pop.on_core:
            continue
        bits, _ = neuron_costs(net, pop, res)
        cum_mem = np.concatenate([[0], np.cumsum(bits)])
        oc = out_cost.get(pop.name, np.zeros(pop.size, dtype=np.int64))
        cum_out = np.concatenate([[0], np.cumsum(oc)])
        blocks = []
        todo = _pack(cum_mem, cum_out, res.neurons_per_core.value, res.core_memory_bits.value,
                     res.out_axons_per_core.value)
        while todo:  # halve blocks over the in-axon limit
            a, b = todo.pop(0)
            if (b - a > 1 and _in_axons_bound(in_conns[pop.name], a, b) > res.in_axons_per_core.value
                    and _in_axons(in_conns[pop.name], a, b, marks, None) > res.in_axons_per_core.value):
                mid = (a + b) // 2
                todo[:0] = [(a, mid), (mid, b)]
            else:
                blocks.append((a, b))
        out[pop.name] = blocks
    return out


def map_network(net: Network, board: str = DEFAULT_BOARD, res: Loihi2Resources = LOIHI2_RESOURCES) -> Mapping:
    """Partition ``net`` onto cores/chips of ``board``; every violation comes with a fix."""
    brd = get_board(board)
    in_conns = {p: [c for c in net.connections if c.dst == p] for p in net.populations}
    marks = {c.name: np.zeros(c.n_src, dtype=bool) for c in net.connections if c.indices is not None}
    out_cost: dict[str, np.ndarray] = {}
    parts: dict[str, list[tuple[int, int]]] = {}
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        new_parts = _partition(net, res, out_cost)
        fanout = {p.name: np.zeros(p.size, dtype=np.int64) for p in net.populations.values()}
        for name, blocks in new_parts.items():
            for a, b in blocks:
                _in_axons(in_conns[name], a, b, marks, fanout)
        parts = new_parts
        stable = all(np.array_equal(fanout[p], out_cost.get(p, np.zeros_like(fanout[p]))) for p in parts)
        out_cost = fanout
        if stable:
            break
    mapping = Mapping(board=brd.name, board_chips=brd.chips, fanout_cores=out_cost, rounds=rounds, resources=res)
    _fill_cores(net, res, parts, in_conns, marks, mapping)
    _check(net, res, mapping)
    return mapping


def _fill_cores(net, res, parts, in_conns, marks, mapping: Mapping) -> None:
    chip, chip_cores, chip_syn, chip_neurons = 0, 0, 0, 0
    for name, blocks in parts.items():
        pop = net.populations[name]
        bits, syn = neuron_costs(net, pop, res)
        cum_b = np.concatenate([[0], np.cumsum(bits)])
        cum_s = np.concatenate([[0], np.cumsum(syn)])
        cum_o = np.concatenate([[0], np.cumsum(mapping.fanout_cores[name])])
        for a, b in blocks:
            s = int(cum_s[b] - cum_s[a])
            if chip_cores and (chip_cores >= res.cores_per_chip.value
                               or chip_syn + s > res.synapses_per_chip.value
                               or chip_neurons + (b - a) > res.neurons_per_chip.value):
                chip, chip_cores, chip_syn, chip_neurons = chip + 1, 0, 0, 0
            chip_cores += 1
            chip_syn += s
            chip_neurons += b - a
            mapping.cores.append(CoreUse(
                index=len(mapping.cores), chip=chip, population=name, start=a, neurons=b - a,
                memory_bits=int(cum_b[b] - cum_b[a]), synapses=s,
                in_axons=_in_axons(in_conns[name], a, b, marks, None),
                out_axons=int(cum_o[b] - cum_o[a])))


def _check(net: Network, res: Loihi2Resources, mapping: Mapping) -> None:
    v = mapping.violations
    by_pop: dict[str, list[CoreUse]] = {}
    for c in mapping.cores:
        by_pop.setdefault(c.population, []).append(c)
    kb = res.core_memory_bits.value / 8192
    for name, cores in by_pop.items():
        over_mem = [c for c in cores if c.memory_bits > res.core_memory_bits.value]
        if over_mem:
            worst = max(c.memory_bits for c in over_mem) / 8192
            v.append(Diagnostic(name, f"{len(over_mem)} neuron(s) need more synapse + state memory than one"
                               f" core has ({worst:.1f} KB > {kb:.0f} KB)",
                               "prune their fan-in (rsnnc build --prune FRACTION), use fewer weight bits,"
                               " or split the layer into narrower ones"))
        over_in = [c for c in cores if c.in_axons > res.in_axons_per_core.value]
        if over_in:
            worst = max(c.in_axons for c in over_in)
            v.append(Diagnostic(name, f"{len(over_in)} neuron(s) read {worst} distinct source neurons, more than"
                               f" a core's {res.in_axons_per_core.value} input axons",
                               f"prune fan-in to at most {res.in_axons_per_core.value} sources per neuron"
                               " (rsnnc build --prune, --prune-structure neurons) or shrink the source layer"))
        over_out = [c for c in cores if c.out_axons > res.out_axons_per_core.value]
        if over_out:
            worst = max(c.out_axons for c in over_out)
            v.append(Diagnostic(name, f"{len(over_out)} neuron(s) reach {worst} destination cores, more than"
                               f" a core's {res.out_axons_per_core.value} output axons",
                               "reduce fan-out (prune outgoing weights) or make the destination layers smaller"))
    if mapping.n_chips > mapping.board_chips:
        bigger = [b for b, brd in _boards().items() if brd.chips >= mapping.n_chips]
        v.append(Diagnostic(
            "graph", f"needs {mapping.n_cores} cores on {mapping.n_chips} chips but board '{mapping.board}'"
            f" has {mapping.board_chips} chip(s) ({mapping.board_chips * res.cores_per_chip.value} cores)",
            (f"choose a larger board (--board {bigger[0]})" if bigger else "no listed board is large enough")
            + " or shrink the network (rsnnc build --prune FRACTION --prune-structure neurons)"))


def _boards():
    from rsnn_compiler.backends.lava.loihi2_resources import BOARDS

    return BOARDS


# --------------------------------------------------------------------------------------------
# IR -> Network
# --------------------------------------------------------------------------------------------
def network_from_graph(graph: Graph, res: Loihi2Resources = LOIHI2_RESOURCES) -> tuple[Network, list[str]]:
    """Populations and connections of a loihi2 fixed graph (retiming's connection graph)."""
    from rsnn_compiler.backends.lava.retime import connection_paths, plan_retiming

    notes: list[str] = []
    net = Network()
    plan = plan_retiming(graph)
    if plan.paths:
        paths = [(rp.path, rp.lava_delay > 1) for rp in plan.paths]
    else:
        paths = [(p, p.delay > 0) for p in connection_paths(graph)[0]]
        notes.append("retiming failed; DelayDense approximated by IR delay > 0")
    for name, op in graph.nodes.items():
        if isinstance(op, FixedNeuron):
            net.populations[name] = Population(name, int(math.prod(op.shape)),
                                               res.state_bits.get(op.kind.value, res.default_state_bits))
    for p, _ in paths:
        if p.src not in net.populations:
            op = graph.nodes[p.src]
            size = int(math.prod(getattr(op, "shape", ()) or (1,)))
            net.populations[p.src] = Population(p.src, size, 0, on_core=False)
    for p, delayed in paths:
        n_src, n_dst = net.populations[p.src].size, net.populations[p.dst].size
        try:  # pools folded into the synapse, as the emitter does
            folded = fold_path(graph, p, tuple(getattr(graph.nodes[p.src], "shape", ()) or (1,)))
        except FoldError:  # not emittable (check reports it): count the synapse op as it stands
            folded = None
        if folded is not None and folded.conv is not None:  # implicit structure
            conn = Connection(p.name, p.src, p.dst, _conv_fanin(folded.conv), n_src, 8, delayed)
            notes.append(f"{p.name}: convolution mapped with explicit synapses (no weight sharing)")
        elif folded is not None and folded.weight is not None:
            conn = Connection.from_matrix(p.name, p.src, p.dst, folded.weight, folded.weight_bits, delayed)
        elif p.synapse is None or folded is None:
            eye = np.eye(n_dst, n_src, dtype=np.int8) if n_src == n_dst else np.ones((n_dst, n_src), np.int8)
            conn = Connection.from_matrix(p.name, p.src, p.dst, eye, 8, delayed)
        net.connections.append(conn)
    return net, notes


def _conv_fanin(conv: ConvGeometry) -> np.ndarray:
    """Nonzero synapses per output neuron of a (2-D) conv."""
    import torch
    import torch.nn.functional as F

    w = torch.from_numpy((np.asarray(conv.weight) != 0).astype(np.float64))
    ones = torch.ones((1, *conv.input_shape), dtype=torch.float64)
    out = F.conv2d(ones, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return out.numpy().reshape(-1).round().astype(np.int64)


_MAPPED: "weakref.WeakKeyDictionary[Graph, dict]" = weakref.WeakKeyDictionary()


def map_graph(graph: Graph, board: str = DEFAULT_BOARD, res: Loihi2Resources = LOIHI2_RESOURCES
              ) -> tuple[Mapping, Network, list[str]]:
    """The mapping of ``graph`` onto ``board``. Graphs are immutable, so the result is kept while
    the graph lives: the map_loihi2 pass and the Lava backend's check map the same graph once
    (callers read the result, never change it)."""
    done = _MAPPED.setdefault(graph, {})
    hit = done.get((board, id(res)))
    if hit is None or hit[0] is not res:  # the resources object kept alongside: its id stays its own
        net, notes = network_from_graph(graph, res)
        hit = done[(board, id(res))] = (res, (map_network(net, board, res), net, notes))
    return hit[1]


def mapping_diagnostics(graph: Graph, board: str = DEFAULT_BOARD) -> list:
    """Mapping violations as target Diagnostics (for ``LavaBackend.check``)."""
    mapping, _, _ = map_graph(graph, board)
    return [Diagnostic(f"loihi2 mapping ({x.where})", x.problem, x.fix) for x in mapping.violations]


# --------------------------------------------------------------------------------------------
# The pass
# --------------------------------------------------------------------------------------------
@dataclass
class MappingReport(PassReport):
    board: str = ""
    board_chips: int = 0
    chips: int = 0
    cores: int = 0
    neurons_on_cores: int = 0
    synapses: int = 0
    fits: bool = True
    mean_core_utilisation: float = 0.0
    max_core_utilisation: float = 0.0
    violations: list[dict] = field(default_factory=list)
    populations: list[dict] = field(default_factory=list)
    core_utilisation: list[dict] = field(default_factory=list)  # per core (first 20 000)
    energy: dict = field(default_factory=dict)  # rsnn_compiler.energy report
    resource_model: list[dict] = field(default_factory=list)


class MapLoihi2:
    """Report-only pass: the graph is unchanged; the report holds the mapping and energy."""

    name: ClassVar[str] = "map_loihi2"
    option_types: ClassVar[tuple[type, ...]] = (Loihi2MapOptions,)
    requires: ClassVar[frozenset[str]] = frozenset({Prop.QUANTIZED})
    establishes: ClassVar[frozenset[str]] = frozenset()
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset()

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, PassReport]:
        from rsnn_compiler.energy import energy_report

        board = ctx.options.of(Loihi2MapOptions).board
        if graph.attrs.domain is not Domain.FIXED or graph.attrs.profile != "loihi2":
            return graph, MappingReport(name=self.name, skipped=True,
                                        reason="needs a loihi2 fixed-point graph")
        mapping, net, notes = map_graph(graph, board)
        res = mapping.resources
        utils = [max(c.utilisation(res).values()) for c in mapping.cores]
        report = MappingReport(
            name=self.name, board=mapping.board, board_chips=mapping.board_chips, chips=mapping.n_chips,
            cores=mapping.n_cores, neurons_on_cores=sum(c.neurons for c in mapping.cores),
            synapses=sum(c.synapses for c in mapping.cores), fits=mapping.fits,
            mean_core_utilisation=float(np.mean(utils)) if utils else 0.0,
            max_core_utilisation=float(np.max(utils)) if utils else 0.0,
            violations=[{"where": x.where, "problem": x.problem, "fix": x.fix} for x in mapping.violations],
            populations=mapping.per_population(),
            core_utilisation=[{"core": c.index, "chip": c.chip, "population": c.population,
                               **{k: round(u, 4) for k, u in c.utilisation(res).items()}}
                              for c in mapping.cores[:MAX_CORES_IN_REPORT]],
            resource_model=res.table(),
            notes=list(notes),
        )
        report.energy = energy_report(graph, mapping, ctx.calib_x)
        report.reason = (f"{mapping.n_cores} cores on {mapping.n_chips} chip(s) of {mapping.board}"
                         + ("" if mapping.fits else f"; {len(mapping.violations)} violation(s)"))
        return graph, report


__all__ = ["Connection", "Mapping", "MapLoihi2", "Network", "Population", "map_graph", "map_network",
           "mapping_diagnostics", "network_from_graph"]
