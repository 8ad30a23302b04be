"""Lower a ``loihi2`` fixed-point graph to a Lava program description (runner format v1).

``lower(graph)`` maps every population (the input source and each neuron) to a Lava population
and every retimed connection path (``backends/lava/retime.py``) to a Lava connection, and returns all
diagnostics at once. ``to_network(program)`` gives the runner's ``network.json`` document (with
an ``meta.rsnnc`` block the executor uses to map Lava recordings back to IR nodes) and arrays.

Mapping (docs/lava-backend.md):
- FixedLIF with reset zero, comparator gt, v_reset 0 and one du/dv/vth per population -> Lava
  ``LIF`` (when the population starts at stage 0, or has no bias and v_init 0: Lava's LIF cannot
  be held idle until its stage); with up to ``max_lif_split`` distinct (du, dv, vth) it is split
  into that many Lava LIFs (``node#k``, connections split by rows/columns; not when an outgoing
  synapse has a negative weight_exp, whose floor must see the whole sum); every other neuron ->
  a custom ``rsnn_<kind>`` process.
- FixedDense on a path -> ``Dense`` (Lava delay 1) or ``DelayDense`` (delay L - 1), explicit sign
  mode, ``num_weight_bits`` = weight_bits; a path without a synapse -> identity weights. A matrix
  with at most ``LavaSpec.sparse_max_density`` nonzeros -> ``Sparse`` / ``DelaySparse`` (CSR).
- Connections from binary spiking neurons are binary; every other source is graded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsnn_compiler.fixed import arith
from rsnn_compiler.ir.dynamics import family_of
from rsnn_compiler.ir.fixed_ops import FixedDense, FixedLIF, FixedNeuron, Quantize, _FixedConv
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Comparator, ResetMode
from rsnn_compiler.ir.verify import verify
from rsnn_compiler.backends.lava.fold import ConvGeometry, FoldError, fold_path
from rsnn_compiler.backends.lava.retime import RetimedPath, RetimeSpec, plan_retiming
from rsnn_compiler.target_api import Diagnostic

from rsnn_compiler.backends.lava.spec import LAVA_SPEC, LavaSpec


class _IrState(dict):
    """Lava recording name -> IR state name: Lava's LIF records the current as ``u``; custom
    processes (``rsnn_<family>``) record the family's states under their IR names."""

    def __missing__(self, key: str) -> str:
        return key


IR_STATE = _IrState(u="i")


@dataclass
class PopulationPlan:
    node: str  # IR node
    neuron: str  # "lif" (Lava LIF) or "rsnn_<kind>" (custom process)
    shape: tuple[int, ...]
    stage: int
    params: dict[str, Any]  # ints, choice strings, or int64 arrays (size,)
    record: tuple[str, ...]  # Lava recordings: spikes, u, v, a, c
    value: str  # what the node emits in the IR: "spikes" or "v" (LI)
    why_custom: str = ""  # empty for Lava's LIF
    part: int | None = None  # k of a split population (Lava name ``node#k``)
    index: np.ndarray | None = None  # the node's (flat) neurons this part holds

    @property
    def name(self) -> str:
        """The Lava population name."""
        return self.node if self.part is None else f"{self.node}#{self.part}"

    @property
    def node_size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def size(self) -> int:
        return self.node_size if self.index is None else int(self.index.size)


@dataclass
class ConnectionPlan:
    name: str
    src: str
    dst: str
    weights: np.ndarray  # (n_dst, n_src) int64
    weight_exp: int
    num_weight_bits: int
    sign_mode: str
    num_message_bits: int
    lava_delay: int  # 1 = Dense/Sparse; >1 = DelayDense/DelaySparse with delay lava_delay - 1
    sparse: bool = False  # stored and run as CSR (density <= LavaSpec.sparse_max_density)
    conv: ConvGeometry | None = None  # a Lava Conv (then ``weights`` is its 4-D kernel)
    pools: tuple[str, ...] = ()  # IR pools folded into this connection

    @property
    def kind(self) -> str:
        if self.conv is not None:
            return "conv"
        base = "dense" if self.lava_delay == 1 else "delay_dense"
        return base.replace("dense", "sparse") if self.sparse else base

    @property
    def process(self) -> str:
        """The Lava process class this connection becomes."""
        return {"dense": "Dense", "sparse": "Sparse", "delay_dense": "DelayDense",
                "delay_sparse": "DelaySparse", "conv": "Conv"}[self.kind]

    @property
    def density(self) -> float:
        return weight_density(self.weights)


def weight_density(weights: np.ndarray) -> float:
    """Nonzeros / size (0 for an empty matrix)."""
    return float(np.count_nonzero(weights)) / max(weights.size, 1)


def is_sparse(weights: np.ndarray, spec: LavaSpec) -> bool:
    """True when ``weights`` is sparse enough that Lava's CSR processes pay."""
    return weight_density(weights) <= spec.sparse_max_density


@dataclass
class LavaProgram:
    graph_name: str
    source: str  # IR node the host feeds: the Input, or its Quantize node (applied host-side)
    source_shape: tuple[int, ...]
    quantize: str | None
    populations: list[PopulationPlan] = field(default_factory=list)
    connections: list[ConnectionPlan] = field(default_factory=list)
    output: tuple[str, int] = ("", 0)  # (population feeding the Output, edge delay)
    stages: dict[str, int] = field(default_factory=dict)

    @property
    def max_stage(self) -> int:
        return max(self.stages.values(), default=0)

    @property
    def input_size(self) -> int:
        return int(np.prod(self.source_shape)) if self.source_shape else 1


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).reshape(-1)


def _uniform(a: np.ndarray) -> bool:
    a = _flat(a)
    return a.size == 0 or bool((a == a[0]).all())


def _lif_groups(op: FixedLIF) -> list[np.ndarray]:
    """Flat neuron indices sharing one (du, dv, vth), in order of first appearance."""
    keys = np.stack([_flat(getattr(op, p)) for p in LAVA_SPEC.lif_scalar_params], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return [np.flatnonzero(inverse.ravel() == g) for g in order]


def _lava_lif(name: str, op: FixedLIF, shape, stage: int, value: str,
              index: np.ndarray | None = None, part: int | None = None) -> PopulationPlan:
    sel = (lambda a: _flat(a)) if index is None else (lambda a: _flat(a)[index])  # noqa: E731
    params = {"du": int(sel(op.du)[0]), "dv": int(sel(op.dv)[0]), "vth": int(sel(op.vth)[0]),
              "bias_mant": sel(op.bias_mant), "bias_exp": sel(op.bias_exp), "u": 0,
              "v": sel(op.v_init)}
    if stage > 0 and (params["bias_mant"].any() or params["v"].any()):
        params["start"] = stage  # the runner holds bias and v at 0 until Lava step `stage`
    return PopulationPlan(name, "lif", shape, stage, params, ("spikes", "u", "v"), value,
                          part=part, index=index)


def lif_blockers(op: FixedNeuron) -> list[str]:
    """Why Lava's own LIF cannot run ``op`` (empty: it can). A bias or initial membrane at a
    stage > 0 is no obstacle: the runner holds them at 0 until the stage starts (``start``)."""
    if type(op) is not FixedLIF:
        return [f"{type(op).__name__} has no Lava process"]
    why = []
    if op.reset is not ResetMode.ZERO:
        why.append(f"reset '{op.reset.value}'")
    if op.comparator is not Comparator.GT:
        why.append("comparator '>='")
    if (op.v_reset != 0).any():
        why.append("v_reset != 0")
    varying = [p for p in LAVA_SPEC.lif_scalar_params if not _uniform(getattr(op, p))]
    if varying:
        why.append(f"per-neuron {'/'.join(varying)}")
    return why


def neuron_plans(name: str, op: FixedNeuron, stage: int, spec: LavaSpec = LAVA_SPEC,
                 splittable: bool = True) -> list[PopulationPlan]:
    """One Lava population for ``op``, or several Lava LIFs when only per-neuron du/dv/vth keep
    it from Lava's LIF and there are at most ``max_lif_split`` distinct triples. ``splittable``
    is False when an outgoing synapse has a negative weight_exp: Lava would floor each part's
    sum separately (splitting the receiving side is always exact)."""
    blockers = lif_blockers(op)
    value = "spikes" if op.spiking else "v"
    if splittable and len(blockers) == 1 and blockers[0].startswith("per-neuron"):
        groups = _lif_groups(op)
        if len(groups) <= spec.max_lif_split:
            return [_lava_lif(name, op, tuple(op.shape), stage, value, idx, k)
                    for k, idx in enumerate(groups)]
    return [neuron_plan(name, op, stage)]


def neuron_plan(name: str, op: FixedNeuron, stage: int) -> PopulationPlan:
    shape = tuple(op.shape)
    value = "spikes" if op.spiking else "v"
    blockers = lif_blockers(op)
    if not blockers:
        return _lava_lif(name, op, shape, stage, value)
    family = family_of(op)  # the custom process runs this family's definition
    kind = family.name
    params: dict[str, Any] = {"start": stage}
    for q in family.params:
        given = getattr(op, q.name)
        params[q.name] = (given.value if q.choices is not None
                          else _flat(given) if q.per_neuron else int(given))
    record = (("spikes",) if op.spiking else ()) + family.states
    return PopulationPlan(name, f"rsnn_{kind}", shape, stage, params, record, value,
                          why_custom=", ".join(blockers))


def _binary_source(graph: Graph, name: str) -> bool:
    op = graph.nodes[name]
    return isinstance(op, FixedNeuron) and family_of(op).binary


def connection_plan(graph: Graph, rp: RetimedPath, sizes: dict[str, int],
                    spec: LavaSpec) -> tuple[ConnectionPlan | None, list[Diagnostic]]:
    p = rp.path
    n_src, n_dst = sizes[p.src], sizes[p.dst]
    where = f"connection {p.src} -> {p.dst}" + (f" via {p.synapse}" if p.synapse else "")
    message_bits = 0 if _binary_source(graph, p.src) else spec.graded_message_bits
    name = f"{p.src}__{p.synapse or 'id'}__{p.dst}"
    try:
        folded = fold_path(graph, p, tuple(graph.nodes[p.src].shape))
    except FoldError as exc:
        return None, [Diagnostic(where, str(exc), "use dense or conv layers with sum pools before"
                                 " them, or target c/gpu for this model")]
    if folded.conv is not None:
        conv = folded.conv
        problems = []
        if int(np.prod(conv.out_shape)) != n_dst:
            problems.append(Diagnostic(where, f"the conv makes {conv.out_shape}, the neuron has {n_dst}",
                                       "fix the graph shapes"))
        if rp.lava_delay != 1:
            problems.append(Diagnostic(where, f"a conv path with Lava delay {rp.lava_delay} (Lava's"
                                       " Conv has no delays)", "move the delay behind a dense layer"))
        if problems:
            return None, problems
        return ConnectionPlan(name, p.src, p.dst, conv.weight, 0, 8, "mixed", message_bits,
                              rp.lava_delay, conv=conv, pools=folded.pools), []
    if folded.weight is None:
        if n_src != n_dst:
            return None, [Diagnostic(where, f"sums {n_src} values into {n_dst} neurons",
                                     "insert a dense layer with explicit weights")]
        w, e, bits = np.eye(n_dst, dtype=np.int64), 0, 8
    else:
        w, e, bits = folded.weight, folded.weight_exp, folded.weight_bits
        if w.shape != (n_dst, n_src):
            return None, [Diagnostic(where, f"weights {w.shape} do not connect {n_src} -> {n_dst}",
                                     "fix the graph shapes")]
        if folded.pools and not arith.loihi_weights_exact(w, bits):
            return None, [Diagnostic(where, f"folding pool(s) {', '.join(folded.pools)} into the"
                                     " weights gives values Lava's Dense would requantize",
                                     "use non-overlapping pools, or target c/gpu")]
    mode = "excitatory" if w.min(initial=0) >= 0 else "inhibitory" if w.max(initial=0) <= 0 else "mixed"
    return ConnectionPlan(name, p.src, p.dst, w, e, bits, mode, message_bits, rp.lava_delay,
                          is_sparse(w, spec), pools=folded.pools), []


def split_connection(c: ConnectionPlan, split: dict[str, list[PopulationPlan]],
                     spec: LavaSpec = LAVA_SPEC) -> list[ConnectionPlan]:
    """``c`` between split populations: one connection per pair of parts with a non-zero block
    (the sign mode stays the whole matrix's, so Lava quantizes every block the same way)."""
    if c.src not in split and c.dst not in split:
        return [c]
    srcs = split.get(c.src) or [None]
    dsts = split.get(c.dst) or [None]
    out = []
    for s in srcs:
        for d in dsts:
            w = c.weights if d is None else c.weights[d.index]
            w = w if s is None else w[:, s.index]
            if not w.any():
                continue
            out.append(ConnectionPlan(
                f"{c.name}#{'' if s is None else s.part}.{'' if d is None else d.part}",
                c.src if s is None else s.name, c.dst if d is None else d.name, w, c.weight_exp,
                c.num_weight_bits, c.sign_mode, c.num_message_bits, c.lava_delay, is_sparse(w, spec)))
    return out


def _output(graph: Graph, populations: set[str]) -> tuple[tuple[str, int] | None, list[Diagnostic]]:
    out = graph.output_name
    edges = graph.in_edges(out)
    if len(edges) != 1 or edges[0].src not in populations:
        return None, [Diagnostic(f"node '{out}'", "the Output must read exactly one neuron (or the"
                                 " input) directly", "feed the Output from the last neuron layer")]
    return (edges[0].src, edges[0].delay), []


def _shared_synapse_problems(graph: Graph, paths: list[RetimedPath]) -> list[Diagnostic]:
    """A synapse fed by several paths is split into one Lava connection per path; with a
    negative weight_exp the floors of the parts differ from the floor of the sum."""
    count: dict[tuple[str, str], int] = {}
    for rp in paths:
        if rp.path.synapse is not None:
            key = (rp.path.synapse, rp.path.dst)
            count[key] = count.get(key, 0) + 1
    out = []
    for (syn, _dst), n in sorted(count.items()):
        op = graph.nodes[syn]
        if n > 1 and isinstance(op, FixedDense) and op.weight_exp.size and op.weight_exp.flat[0] < 0:
            out.append(Diagnostic(f"node '{syn}'", f"sums {n} inputs before a negative weight_exp"
                                  " (Lava shifts each input's connection separately)",
                                  "give it a single input or weight_exp >= 0"))
        elif n > 1 and isinstance(op, _FixedConv):
            out.append(Diagnostic(f"node '{syn}'", f"sums {n} inputs before a conv (Lava wraps each"
                                  " input's Conv to 24 bits separately)", "give the conv a single input"))
    return out


def lower(graph: Graph, spec: LavaSpec = LAVA_SPEC) -> tuple[LavaProgram | None, list[Diagnostic]]:
    """The Lava program for ``graph`` and every diagnostic (program is None if any)."""
    if graph.attrs.domain is not Domain.FIXED or graph.attrs.profile != spec.profile:
        return None, [Diagnostic("graph", f"the Lava target runs '{spec.profile}' fixed-point graphs,"
                                 f" got domain {graph.attrs.domain.value}, profile {graph.attrs.profile}",
                                 f"build with --target lava (profile {spec.profile})")]
    diags = [Diagnostic("graph", p, "fix the graph (it must verify)") for p in verify(graph)]
    plan = plan_retiming(graph, RetimeSpec(spec.synapse_delay, spec.max_extra_delay))
    diags += [Diagnostic(p.where, p.problem, p.fix) for p in plan.problems]
    if diags or plan.source is None:
        return None, diags
    src_op = graph.nodes[plan.source]
    program = LavaProgram(graph.attrs.name, plan.source, tuple(src_op.shape),
                          plan.source if isinstance(src_op, Quantize) else None,
                          stages=dict(plan.stages))
    sizes = {plan.source: program.input_size}
    floored = {rp.path.src for rp in plan.paths if rp.path.synapse is not None
               and isinstance(graph.nodes[rp.path.synapse], FixedDense)
               and (graph.nodes[rp.path.synapse].weight_exp < 0).any()}
    convolved = {n for rp in plan.paths if rp.path.synapse is not None
                 and isinstance(graph.nodes[rp.path.synapse], _FixedConv) for n in (rp.path.src, rp.path.dst)}
    for name, op in graph.nodes.items():
        if isinstance(op, FixedNeuron):
            pops = neuron_plans(name, op, plan.stages[name], spec,
                                splittable=name not in floored | convolved)
            program.populations += pops
            sizes[name] = pops[0].node_size
    split_nodes = {p.node for p in program.populations if p.part is not None}
    split = {n: [p for p in program.populations if p.node == n] for n in split_nodes}
    for rp in plan.paths:
        conn, problems = connection_plan(graph, rp, sizes, spec)
        diags += problems
        if conn is not None:
            program.connections += split_connection(conn, split, spec)
    diags += _shared_synapse_problems(graph, plan.paths)
    output, problems = _output(graph, set(sizes))
    diags += problems
    if diags:
        return None, diags
    program.output = output
    return program, []


# --------------------------------------------------------------------------------------------
# network.json
# --------------------------------------------------------------------------------------------


def _store(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"array": key}
    return value


def _store_csr(w, key: str, arrays: dict[str, np.ndarray]) -> dict:
    """A CSR reference ``{"csr": KEY, "shape": [rows, cols]}`` to ``KEY.data`` /
    ``KEY.indices`` / ``KEY.indptr`` in arrays.npz (row = destination neuron)."""
    import scipy.sparse as sp  # here, not at module level: importing it costs 0.25 s of every build

    m = sp.csr_matrix(w)
    m.eliminate_zeros()
    m.sort_indices()
    arrays[f"{key}.data"] = m.data.astype(np.int64)
    arrays[f"{key}.indices"] = m.indices.astype(np.int64)
    arrays[f"{key}.indptr"] = m.indptr.astype(np.int64)
    return {"csr": key, "shape": [int(m.shape[0]), int(m.shape[1])]}


def _load(ref: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of ``_store`` / ``_store_csr`` (a CSR reference gives a scipy CSR matrix)."""
    if isinstance(ref, dict) and "csr" in ref:
        import scipy.sparse as sp

        k = ref["csr"]
        return sp.csr_matrix((arrays[f"{k}.data"], arrays[f"{k}.indices"], arrays[f"{k}.indptr"]),
                             shape=tuple(ref["shape"]))
    return arrays[ref["array"]] if isinstance(ref, dict) else ref


def to_network(program: LavaProgram, num_steps: int | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """The runner's document (without format/version) and its arrays."""
    arrays: dict[str, np.ndarray] = {}
    pops = []
    for p in program.populations:
        params = {k: _store(v, f"{p.name}.{k}", arrays) for k, v in p.params.items()}
        pops.append({"name": p.name, "neuron": p.neuron, "size": p.size, "params": params,
                     "record": list(p.record)})
    conns = []
    for c in program.connections:
        if c.conv is not None:
            g = c.conv
            conns.append({"name": c.name, "kind": "conv", "src": c.src, "dst": c.dst,
                          "weights": _store(g.weight, f"{c.name}.w", arrays),
                          "input_shape": list(g.input_shape), "stride": list(g.stride),
                          "padding": list(g.padding), "dilation": list(g.dilation),
                          "groups": g.groups, "num_message_bits": c.num_message_bits})
            continue
        d = {"name": c.name, "kind": c.kind, "src": c.src, "dst": c.dst,
             "weights": (_store_csr if c.sparse else _store)(c.weights, f"{c.name}.w", arrays),
             "weight_exp": c.weight_exp,
             "num_weight_bits": c.num_weight_bits, "sign_mode": c.sign_mode,
             "num_message_bits": c.num_message_bits}
        if c.lava_delay > 1:
            d["delays"], d["max_delay"] = c.lava_delay - 1, c.lava_delay - 1
        conns.append(d)
    meta = {"rsnnc": {
        "graph": program.graph_name, "source": program.source,
        "source_shape": list(program.source_shape), "quantize": program.quantize,
        "stages": program.stages, "max_stage": program.max_stage,
        "output": {"node": program.output[0], "delay": program.output[1]},
        "populations": {p.node: {"neuron": p.neuron, "shape": list(p.shape), "stage": p.stage,
                                 "record": list(p.record), "value": p.value,
                                 "custom": p.why_custom} for p in program.populations},
    }}
    for p in program.populations:  # split populations: which Lava part holds which neurons
        if p.index is not None:
            meta["rsnnc"]["populations"][p.node].setdefault("parts", []).append(
                {"lava": p.name, "index": p.index.tolist()})
    doc = {"input": {"name": program.source, "size": program.input_size}, "populations": pops,
           "connections": conns, "meta": meta}
    if num_steps is not None:
        doc["num_steps"] = num_steps
    return doc, arrays


def merge_networks(parts: list[tuple[dict, dict[str, np.ndarray]]]) -> tuple[dict, dict[str, np.ndarray]]:
    """Several networks as disjoint sub-networks of one (one Lava run for many graphs).

    Part ``i``'s names get the prefix ``g{i}.``; the inputs are concatenated (part ``i`` reads
    columns ``meta.parts[i].input_offset`` onwards). Input connections get zero columns
    elsewhere (their explicit sign modes keep Lava's quantization unchanged).
    """
    import scipy.sparse as sp

    total = sum(doc["input"]["size"] for doc, _ in parts)
    pops, conns, metas, arrays = [], [], [], {}
    offset = 0
    for i, (doc, arr) in enumerate(parts):
        pre = f"g{i}."
        inp = doc["input"]["name"]

        def get(v):
            return _load(v, arr)

        for p in doc["populations"]:
            params = {}
            for k, v in p["params"].items():
                params[k] = _store(get(v), pre + f"{p['name']}.{k}", arrays) if isinstance(v, dict) else v
            pops.append({**p, "name": pre + p["name"], "params": params})
        for c in doc["connections"]:
            w = get(c["weights"])
            csr = sp.issparse(w)
            c2 = {**c, "name": pre + c["name"], "dst": pre + c["dst"]}
            if c["src"] == inp:
                left = sp.csr_matrix((w.shape[0], offset), dtype=np.int64)
                right = sp.csr_matrix((w.shape[0], total - offset - w.shape[1]), dtype=np.int64)
                full = sp.hstack([left, sp.csr_matrix(w), right], format="csr")
                w, c2["src"] = (full if csr else full.toarray()), "input"
            else:
                c2["src"] = pre + c["src"]
            c2["weights"] = (_store_csr if csr else _store)(w, pre + c["name"] + ".w", arrays)
            conns.append(c2)
        metas.append({**doc.get("meta", {}), "prefix": pre, "input_offset": offset,
                      "input_size": doc["input"]["size"]})
        offset += doc["input"]["size"]
    return {"input": {"name": "input", "size": total}, "populations": pops, "connections": conns,
            "meta": {"parts": metas}}, arrays
