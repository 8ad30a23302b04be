"""retime: map IR timing onto Lava/Loihi 2 timing (docs/design.md §4).

The IR lets a feed-forward edge carry delay 0; on Lava every synapse layer adds one step (Dense)
and DelayDense adds 0..63 more. Retiming works on the *connection graph*: its nodes are the
populations (the input source, or the ``Quantize`` node it feeds, and every neuron); its edges are
the IR paths ``population -> [relays] -> [one synapse op] -> [relays] -> neuron`` (relays:
``Identity``, ``Flatten``, ``Delay``), each carrying its summed IR delay ``d``. A path without a
synapse op (a neuron or the input summed straight into a neuron) still needs a Lava connection
(an identity synapse), so it also counts as one synapse layer.

Each population gets a stage ``s`` (the smallest non-negative integers with the source at 0 such
that every path's Lava delay ``L = d + s(dst) - s(src)`` lies in ``1..64``: the depth along
delay-0 paths unless a delayed path forces a node later). Such stages exist iff every feedback
loop's total delay is at least the number of synapse layers it crosses (and no path needs more
than 64); otherwise the pass reports each offending loop by name. A node's IR step ``t`` is Lava
row ``t + s(node)``, so results compare after shifting each node by its stage.

``plan_retiming(graph)`` is the one implementation; the Lava backend calls it on the fixed graph
and the registered pass ``retime`` runs it for the report (the graph itself is unchanged; it
records ``Prop.RETIMED``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import networkx as nx

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.profiles import LOIHI2
from rsnn_compiler.ir.fixed_ops import FixedNeuron, Quantize
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import Delay, Flatten, Identity, Input, NeuronOp, Output, Pool
from rsnn_compiler.passes_api import PassContext, PassReport, Prop

RELAYS = (Identity, Flatten, Delay, Pool)  # no Lava step of their own; the emitter folds pools into the synapse


@dataclass(frozen=True)
class RetimeSpec:
    """Delays one Lava connection can realise: ``synapse_delay`` (Dense) up to
    ``synapse_delay + max_extra_delay`` (DelayDense with 0..63 extra steps)."""

    synapse_delay: int = 1
    max_extra_delay: int = LOIHI2.max_edge_delay

    @property
    def max_delay(self) -> int:
        return self.synapse_delay + self.max_extra_delay


@dataclass(frozen=True)
class Path:
    """One Lava connection: IR path from population ``src`` to neuron ``dst``."""

    src: str
    dst: str
    synapse: str | None  # the synapse op on the path (FixedDense, ...), None: identity
    delay: int  # summed IR delay along the path (edge delays + Delay op steps)
    via: tuple[str, ...] = ()  # every intermediate node, in order

    @property
    def name(self) -> str:
        return self.synapse or f"{self.src}->{self.dst}"


@dataclass(frozen=True)
class RetimedPath:
    path: Path
    lava_delay: int  # d + stage(dst) - stage(src)


@dataclass(frozen=True)
class RetimeProblem:
    """Something retiming cannot map: where, what, and how to fix it."""

    where: str
    problem: str
    fix: str


@dataclass
class RetimePlan:
    source: str | None  # the population fed by the host (Input or its Quantize node)
    stages: dict[str, int] = field(default_factory=dict)  # population -> stage
    paths: list[RetimedPath] = field(default_factory=list)
    problems: list[RetimeProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def max_stage(self) -> int:
        return max(self.stages.values(), default=0)


def is_population(graph: Graph, name: str) -> bool:
    op = graph.nodes[name]
    return isinstance(op, (Input, Quantize, NeuronOp, FixedNeuron))


def source_population(graph: Graph) -> str:
    """The Input node, or the single Quantize node it feeds (host-side quantization)."""
    name = graph.input_name
    outs = graph.out_edges(name)
    if len(outs) == 1 and outs[0].delay == 0 and isinstance(graph.nodes[outs[0].dst], Quantize):
        return outs[0].dst
    return name


def _trace(graph: Graph, node: str, delay: int, synapse: str | None, via: tuple[str, ...],
           dst: str, out: list[Path], problems: list[RetimeProblem], seen: frozenset[str]) -> None:
    """Walk backwards from ``node`` (reached with ``delay``) to the populations feeding ``dst``."""
    op = graph.nodes[node]
    if is_population(graph, node):
        out.append(Path(node, dst, synapse, delay, tuple(reversed(via))))
        return
    if node in seen:  # a loop made only of relays/synapses (the verifier should reject it)
        problems.append(RetimeProblem(node, "a loop without any neuron", "put a neuron in the loop"))
        return
    if isinstance(op, Output):
        problems.append(RetimeProblem(node, "the Output node feeds another node",
                                      "read the neuron before the Output instead"))
        return
    if isinstance(op, RELAYS):
        delay += op.steps if isinstance(op, Delay) else 0
    elif synapse is not None:
        problems.append(RetimeProblem(
            f"{node} -> {synapse}", "two synapse ops in a row without a neuron between them "
            "(a Lava connection is one synapse layer)", "merge them into one layer (canonicalize)"
            " or put a neuron between them"))
        return
    else:
        synapse = node
    for e in graph.in_edges(node):
        _trace(graph, e.src, delay + e.delay, synapse, via + (node,), dst, out, problems,
               seen | {node})


def connection_paths(graph: Graph) -> tuple[list[Path], list[RetimeProblem]]:
    """Every Lava connection of ``graph`` (in graph node/edge order) and tracing problems."""
    paths: list[Path] = []
    problems: list[RetimeProblem] = []
    for name, op in graph.nodes.items():
        if not isinstance(op, (NeuronOp, FixedNeuron)):
            continue
        for e in graph.in_edges(name):
            _trace(graph, e.src, e.delay, None, (), name, paths, problems, frozenset())
    return paths, problems


def _loop_problems(pops: list[str], paths: list[Path], spec: RetimeSpec,
                   limit: int = 50) -> list[RetimeProblem]:
    """Feedback loops whose total delay is shorter than their synapse layers (by name)."""
    tight = nx.DiGraph()
    for p in paths:  # the most demanding of parallel paths: smallest delay
        w = spec.synapse_delay - p.delay
        if not tight.has_edge(p.src, p.dst) or tight[p.src][p.dst]["w"] < w:
            tight.add_edge(p.src, p.dst, w=w, name=p.name, d=p.delay)
    problems = []
    order = {n: i for i, n in enumerate(pops)}
    for k, cyc in enumerate(nx.simple_cycles(tight)):
        if k >= limit:
            break
        first = min(range(len(cyc)), key=lambda i: order[cyc[i]])
        cyc = cyc[first:] + cyc[:first]  # start at the loop's first node in graph order
        hops = list(zip(cyc, cyc[1:] + cyc[:1]))
        if sum(tight[a][b]["w"] for a, b in hops) <= 0:
            continue
        total = sum(tight[a][b]["d"] for a, b in hops)
        names = " -> ".join(cyc + cyc[:1])
        layers = len(hops) * spec.synapse_delay
        problems.append(RetimeProblem(
            f"loop {names}",
            f"feedback loop crosses {len(hops)} synapse layer(s) ({', '.join(tight[a][b]['name'] for a, b in hops)})"
            f" but its total delay is {total} < {layers} (Lava adds {spec.synapse_delay} step per layer)",
            f"give the loop's recurrent edges {layers - total} more step(s) of delay in the model"
            " (e.g. train with a delay of 1 per layer), or remove the feedback"))
    return problems


def solve_stages(pops: list[str], source: str | None, paths: list[Path],
                 spec: RetimeSpec) -> tuple[dict[str, int] | None, str]:
    """Smallest stages >= 0 (source at 0) with every Lava delay in range, or (None, reason).

    Difference constraints, solved as longest paths (Bellman-Ford): for a path src -> dst with
    IR delay d: s(dst) >= s(src) + min_delay - d and s(src) >= s(dst) - (max_delay - d).
    """
    cons = []  # (a, b, w): s(b) >= s(a) + w
    for p in paths:
        cons.append((p.src, p.dst, spec.synapse_delay - p.delay))
        cons.append((p.dst, p.src, p.delay - spec.max_delay))
    stage = {n: 0 for n in pops}
    for _ in range(len(pops) + 1):
        changed = False
        for a, b, w in cons:
            if stage[a] + w > stage[b]:
                stage[b] = stage[a] + w
                changed = True
        if not changed:
            break
    else:
        return None, "the delay constraints contain a loop that cannot be satisfied"
    if source is not None and stage.get(source, 0) > 0:
        return None, (f"the input would need stage {stage[source]} (a path from it needs more than"
                      f" {spec.max_delay} Lava steps of delay)")
    return stage, ""


def _long_paths(pops: list[str], source: str | None, paths: list[Path],
                spec: RetimeSpec) -> list[RetimeProblem]:
    """Paths that need more than ``max_delay`` Lava steps (no feedback loop being too short)."""
    stages, _ = solve_stages(pops, source, paths, RetimeSpec(spec.synapse_delay, 1 << 30))
    if stages is None:
        return []
    out = []
    for p in paths:
        need = p.delay + stages[p.dst] - stages[p.src]
        if need > spec.max_delay:
            out.append(RetimeProblem(
                f"{p.src} -> {p.dst} via {p.name}",
                f"needs a Lava delay of {need} (IR delay {p.delay} + stage difference"
                f" {stages[p.dst] - stages[p.src]}), more than {spec.max_delay}",
                f"shorten this edge's delay by {need - spec.max_delay} or insert a relay neuron"))
    return out


def plan_retiming(graph: Graph, spec: RetimeSpec = RetimeSpec()) -> RetimePlan:
    """Stages, per-connection Lava delays and every problem (see the module docstring)."""
    try:
        source = source_population(graph)
    except ValueError as exc:
        return RetimePlan(None, problems=[RetimeProblem("graph", str(exc), "use exactly one Input")])
    paths, problems = connection_paths(graph)
    pops = [n for n in graph.nodes if is_population(graph, n)]
    if source != graph.input_name:
        pops.remove(graph.input_name)
        raw = [p for p in paths if p.src == graph.input_name]
        problems += [RetimeProblem(p.name, f"reads the raw Input while {source} quantizes it",
                                   f"feed {p.dst} from the Quantize node") for p in raw]
        paths = [p for p in paths if p.src != graph.input_name]
    plan = RetimePlan(source, problems=list(problems))
    loops = _loop_problems(pops, paths, spec)
    stages, reason = solve_stages(pops, source, paths, spec)
    if stages is None:
        plan.problems += loops or _long_paths(pops, source, paths, spec) or [
            RetimeProblem("graph", reason, "shorten edge delays")]
        return plan
    plan.stages = stages
    plan.paths = [RetimedPath(p, p.delay + stages[p.dst] - stages[p.src]) for p in paths]
    return plan


# --------------------------------------------------------------------------------------------
# The pass (report only; the graph is unchanged)
# --------------------------------------------------------------------------------------------


@dataclass
class RetimeReport(PassReport):
    stages: dict[str, int] = field(default_factory=dict)
    max_stage: int = 0
    connections: int = 0
    delay_connections: int = 0  # Lava delay > 1: DelayDense
    lava_delays: dict[str, int] = field(default_factory=dict)  # connection name -> Lava delay
    problems: list[str] = field(default_factory=list)


def connection_names(paths: list[RetimedPath]) -> dict[str, int]:
    """``src->synapse->dst`` (made unique with ``#k``) -> Lava delay."""
    out: dict[str, int] = {}
    for rp in paths:
        p = rp.path
        key = f"{p.src}->{p.synapse}->{p.dst}" if p.synapse else f"{p.src}->{p.dst}"
        k, base = 1, key
        while key in out:
            k += 1
            key = f"{base}#{k}"
        out[key] = rp.lava_delay
    return out


class Retime:
    name: ClassVar[str] = "retime"
    requires: ClassVar[frozenset[str]] = frozenset({Prop.QUANTIZED})
    establishes: ClassVar[frozenset[str]] = frozenset({Prop.RETIMED})
    invalidates: ClassVar[frozenset[str]] = frozenset()

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, RetimeReport]:
        plan = plan_retiming(graph)
        problems = [f"{p.where}: {p.problem}; fix: {p.fix}" for p in plan.problems]
        if problems:
            raise UserInputError(f"retime: {problems[0]}"
                                 + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        report = RetimeReport(
            name=self.name, stages=dict(plan.stages), max_stage=plan.max_stage,
            connections=len(plan.paths),
            delay_connections=sum(rp.lava_delay > 1 for rp in plan.paths),
            lava_delays=connection_names(plan.paths),
            reason=f"{len(plan.paths)} Lava connections, max stage {plan.max_stage}")
        return graph, report


__all__ = ["Path", "RetimePlan", "RetimeSpec", "Retime", "connection_paths", "plan_retiming",
           "source_population"]
