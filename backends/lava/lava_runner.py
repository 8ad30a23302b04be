#!/usr/bin/env python3
"""Run an integer network description in Lava 0.10 ``fixed_pt`` simulation.

Standalone script for the Python 3.10 Lava environment: it imports only numpy, scipy and lava,
never ``rsnn_compiler``. The compiler side (``rsnn_compiler.backends.lava.env``) calls it through
a subprocess. Everything is in Lava's own units; the compiler does any retiming.

    python lava_runner.py NETWORK_DIR [--inputs X.npz] [--out RESULTS.npz]
                          [--steps T] [--replicas K] [--readout get|file]

NETWORK_DIR holds ``network.json`` (+ ``arrays.npz`` for array-valued fields). The input file holds
``x`` shaped (T, batch, n_in) or (T, n_in), integers sent by a source RingBuffer (row t at Lava
step t + 1). The result file holds ``spikes/<pop>``, ``v/<pop>``, ``u/<pop>`` shaped (T, batch, n)
(or (T, n) for 2-D input) and ``meta`` (a JSON string with timings). Schema: docs/lava-runner.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

FORMAT = "rsnnc-lava-net"
VERSION = 1
MAX_DELAY = 63
RECORDABLE = ("spikes", "v", "u", "a", "c")
SIGN_MODES = ("auto", "mixed", "excitatory", "inhibitory")
#: Budget (dense matrix elements x (max_delay + 1)) for one replicated connection.
REPLICA_ELEMENT_BUDGET = 1 << 22
RECORD_ELEMENT_BUDGET = 1 << 26  # int32 elements held by all sinks of one run
MAX_AUTO_REPLICAS = 64


class SpecError(ValueError):
    """The network description is invalid (exit code 2)."""


# --------------------------------------------------------------------------------------------
# Network description
# --------------------------------------------------------------------------------------------


@dataclass
class Population:
    """A group of neurons of one kind (``neuron``) with its parameters in Lava units."""

    name: str
    neuron: str
    size: int
    params: dict[str, Any]  # scalars stay Python ints; per-neuron values are int64 arrays
    record: tuple[str, ...] = ()


@dataclass
class Connection:
    """A synapse process from the input or a population to a population."""

    name: str
    kind: str  # dense | sparse | delay_dense | delay_sparse | direct
    src: str
    dst: str
    weights: np.ndarray | None = None  # (n_dst, n_src) int64
    delays: np.ndarray | None = None  # (n_dst, n_src) int64, delay_dense / delay_sparse only
    max_delay: int | None = None
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: str = "auto"
    num_message_bits: int = 0
    # kind "conv": Lava Conv in torch terms; weights (C_out, C_in / groups, kH, kW)
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) of the source, flat in that order
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def conv_out_shape(self) -> tuple[int, int, int]:
        """(C_out, H', W') of a conv connection (the destination's flat order)."""
        spatial = []
        for i in range(2):
            eff = self.dilation[i] * (self.weights.shape[2 + i] - 1) + 1
            spatial.append((self.input_shape[1 + i] + 2 * self.padding[i] - eff) // self.stride[i] + 1)
        return (int(self.weights.shape[0]), *spatial)


@dataclass
class Network:
    """A parsed ``network.json``."""

    input_name: str
    input_size: int
    populations: list[Population]
    connections: list[Connection]
    num_steps: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def size_of(self, name: str) -> int:
        if name == self.input_name:
            return self.input_size
        return next(p.size for p in self.populations if p.name == name)


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SpecError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _resolve(value: Any, arrays: dict[str, np.ndarray], what: str) -> Any:
    """Turn ``{"array": key}`` / lists into int64 arrays; leave ints (and choice strings) alone."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "csr" in value:
        return _resolve_csr(value, arrays, what)
    if isinstance(value, dict):
        if set(value) != {"array"}:
            raise SpecError(f"{what}: an array reference is {{\"array\": KEY}} or "
                            f"{{\"csr\": KEY, \"shape\": [ROWS, COLS]}}, got {value!r}")
        key = value["array"]
        if key not in arrays:
            raise SpecError(f"{what}: array {key!r} not found in arrays.npz")
        value = arrays[key]
    if isinstance(value, (list, np.ndarray)):
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise SpecError(f"{what} must hold integers, got dtype {arr.dtype}")
        return arr.astype(np.int64)
    return _as_int(value, what)


def _resolve_csr(ref: dict, arrays: dict[str, np.ndarray], what: str) -> sp.csr_matrix:
    """``{"csr": KEY, "shape": [ROWS, COLS]}``: a CSR matrix from KEY.data/.indices/.indptr."""
    if set(ref) != {"csr", "shape"} or not isinstance(ref["shape"], list) or len(ref["shape"]) != 2:
        raise SpecError(f"{what}: a CSR reference is {{\"csr\": KEY, \"shape\": [ROWS, COLS]}}, got {ref!r}")
    key = ref["csr"]
    parts = []
    for suffix in ("data", "indices", "indptr"):
        if f"{key}.{suffix}" not in arrays:
            raise SpecError(f"{what}: array {key}.{suffix!r} not found in arrays.npz")
        arr = np.asarray(arrays[f"{key}.{suffix}"])
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise SpecError(f"{what}: {key}.{suffix} must be a 1-D integer array")
        parts.append(arr.astype(np.int64))
    rows, cols = (_as_int(n, f"{what} shape") for n in ref["shape"])
    data, indices, indptr = parts
    if (len(indptr) != rows + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(data)
            or len(indices) != len(data) or (len(indices) and (indices.min() < 0 or indices.max() >= cols))):
        raise SpecError(f"{what}: {key} is not a valid CSR matrix of shape ({rows}, {cols})")
    return sp.csr_matrix((data, indices, indptr), shape=(rows, cols))


def _check_range(value: Any, lo: int, hi: int, what: str) -> None:
    arr = np.asarray(value)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise SpecError(f"{what} must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")


POPULATION_KEYS = {"name", "neuron", "size", "params", "record"}
CONNECTION_KEYS = {"name", "kind", "src", "dst", "weights", "delays", "max_delay", "weight_exp",
                   "num_weight_bits", "sign_mode", "num_message_bits", "input_shape", "stride",
                   "padding", "dilation", "groups"}
CONV_GEOMETRY = {"input_shape": 3, "stride": 2, "padding": 2, "dilation": 2}


def _check_keys(d: dict, allowed: set[str], what: str) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise SpecError(f"{what}: unknown keys {sorted(unknown)}")


def _parse_population(d: dict, arrays: dict) -> Population:
    name = d["name"]
    _check_keys(d, POPULATION_KEYS, f"population {name}")
    neuron = d.get("neuron", "lif")
    known = neuron_kinds()
    if neuron not in known:
        raise SpecError(f"population {name}: unknown neuron {neuron!r} (known: {sorted(known)})")
    size = _as_int(d["size"], f"population {name} size")
    params = {k: _resolve(v, arrays, f"population {name} {k}") for k, v in d.get("params", {}).items()}
    record = tuple(d.get("record", ()))
    recordable = RECORDABLE + tuple(r for r in _custom_neurons().RECORDABLE if r not in RECORDABLE)
    bad = [r for r in record if r not in recordable]
    if bad:
        raise SpecError(f"population {name}: cannot record {bad} (recordable: {recordable})")
    pop = Population(name, neuron, size, params, record)
    known[neuron].validate(pop)
    return pop


def _parse_connection(d: dict, arrays: dict, sizes: dict[str, int], input_name: str) -> Connection:
    name = d.get("name", f"{d['src']}->{d['dst']}")
    _check_keys(d, CONNECTION_KEYS, f"connection {name}")
    kind = d["kind"]
    if kind not in CONNECTIONS:
        raise SpecError(f"connection {name}: unknown kind {kind!r} (known: {sorted(CONNECTIONS)})")
    src, dst = d["src"], d["dst"]
    if src not in sizes:
        raise SpecError(f"connection {name}: unknown source {src!r}")
    if dst not in sizes or dst == input_name:
        raise SpecError(f"connection {name}: destination {dst!r} is not a population")
    if kind == "direct" and src != input_name:
        raise SpecError(f"connection {name}: direct connections come from the input only")
    c = Connection(name=name, kind=kind, src=src, dst=dst)
    for key in ("weight_exp", "num_weight_bits", "num_message_bits"):
        if key in d:
            setattr(c, key, _as_int(d[key], f"connection {name} {key}"))
    c.sign_mode = d.get("sign_mode", "auto")
    if c.sign_mode not in SIGN_MODES:
        raise SpecError(f"connection {name}: sign_mode must be one of {SIGN_MODES}")
    if "weights" in d:
        c.weights = _resolve(d["weights"], arrays, f"connection {name} weights")
    if "delays" in d:
        c.delays = _resolve(d["delays"], arrays, f"connection {name} delays")
    if "max_delay" in d:
        c.max_delay = _as_int(d["max_delay"], f"connection {name} max_delay")
    for key, n in CONV_GEOMETRY.items():
        if key in d:
            value = d[key]
            if not isinstance(value, list) or len(value) != n:
                raise SpecError(f"connection {name}: {key} must be a list of {n} integers")
            setattr(c, key, tuple(_as_int(v, f"connection {name} {key}") for v in value))
    if "groups" in d:
        c.groups = _as_int(d["groups"], f"connection {name} groups")
    CONNECTIONS[kind].validate(c, sizes[src], sizes[dst])
    return c


def load_network(net_dir: Path) -> Network:
    """Parse and validate ``network.json`` (+ ``arrays.npz``) in ``net_dir``."""
    doc = json.loads((net_dir / "network.json").read_text())
    _check_keys(doc, {"format", "version", "num_steps", "input", "populations", "connections",
                      "meta"}, "network.json")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise SpecError(f"network.json must have format {FORMAT!r} and version {VERSION}")
    arrays: dict[str, np.ndarray] = {}
    if (net_dir / "arrays.npz").exists():
        with np.load(net_dir / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    inp = doc["input"]
    input_name, input_size = inp.get("name", "input"), _as_int(inp["size"], "input size")
    pops = [_parse_population(p, arrays) for p in doc["populations"]]
    sizes = {input_name: input_size, **{p.name: p.size for p in pops}}
    if len(sizes) != len(pops) + 1:
        raise SpecError("population and input names must be unique")
    conns = [_parse_connection(c, arrays, sizes, input_name) for c in doc.get("connections", [])]
    steps = doc.get("num_steps")
    return Network(input_name, input_size, pops, conns,
                   None if steps is None else _as_int(steps, "num_steps"), doc.get("meta", {}))


# --------------------------------------------------------------------------------------------
# Batch replication: k independent copies of the graph in one Lava run (block-diagonal weights)
# --------------------------------------------------------------------------------------------


def _tile(value: Any, k: int) -> Any:
    return np.tile(value, k) if isinstance(value, np.ndarray) else value


def replicate(net: Network, k: int, dense_as: str = "sparse") -> Network:
    """Return ``net`` with every population and connection copied ``k`` times, block-diagonally.

    Sample ``b`` occupies neurons ``[b*n, (b+1)*n)`` of every population. Block-diagonal matrices
    keep Lava's automatic sign mode (the added zeros change neither "min >= 0" nor "max <= 0").
    With ``dense_as="sparse"`` a replicated ``dense`` connection becomes Lava ``Sparse`` (same
    fixed_pt arithmetic, cost linear instead of quadratic in ``k``); ``delay_dense`` stays dense.
    """
    if k == 1:
        return net
    pops = [replace(p, size=p.size * k, params={n: _tile(v, k) for n, v in p.params.items()})
            for p in net.populations]
    conns = []
    for c in net.connections:
        if c.weights is None:  # direct
            conns.append(c)
            continue
        if c.kind == "conv":  # copies as extra channel groups: (k*C, H, W), k * groups
            cin, h, w = c.input_shape
            conns.append(replace(c, weights=np.tile(c.weights, (k, 1, 1, 1)),
                                 input_shape=(k * cin, h, w), groups=k * c.groups))
            continue
        kind = "sparse" if c.kind == "dense" and dense_as == "sparse" else c.kind
        w = sp.block_diag([c.weights] * k, format="csr")
        w = w if kind.endswith("sparse") else w.toarray()
        if c.delays is None:
            conns.append(replace(c, kind=kind, weights=w))
            continue
        # Off-diagonal blocks get delay 0 with weight 0; keep Lava's max_delay unchanged.
        max_delay = c.max_delay if c.max_delay is not None else int(c.delays.max())
        delays = (sp.block_diag([c.delays] * k, format="csr") if kind == "delay_sparse"
                  else np.kron(np.eye(k, dtype=np.int64), c.delays))
        conns.append(replace(c, kind=kind, weights=w, max_delay=max_delay, delays=delays))
    return Network(net.input_name, net.input_size * k, pops, conns, net.num_steps, net.meta)


def auto_replicas(net: Network, batch: int, steps: int, dense_as: str = "sparse") -> int:
    """Samples per Lava run: bounded so that no replicated dense matrix exceeds the element
    budget (dense cost grows with k^2) and the recorded buffers stay below ~256 MB."""
    worst = 1
    for c in net.connections:
        stays_dense = c.kind == "delay_dense" or (c.kind == "dense" and dense_as == "dense")
        if c.weights is not None and stays_dense:
            depth = 1 if c.delays is None else (c.max_delay or int(c.delays.max())) + 1
            worst = max(worst, c.weights.size * depth)
    k_dense = int(np.sqrt(REPLICA_ELEMENT_BUDGET / worst))
    recorded = sum(p.size * len(p.record) for p in net.populations) * steps
    k_memory = RECORD_ELEMENT_BUDGET // max(recorded, 1)
    return max(1, min(batch, k_dense, k_memory, MAX_AUTO_REPLICAS))


# --------------------------------------------------------------------------------------------
# Lava process construction (imported lazily so that --help and validation work without Lava)
# --------------------------------------------------------------------------------------------


@dataclass
class NeuronKind:
    """How to validate and build one ``neuron`` kind: the extension point for custom neurons."""

    validate: Callable[[Population], None]
    build: Callable[["LavaBuild", Population], Any]  # -> handle with .a_in, .s_out, .probes


@dataclass
class ConnectionKind:
    """How to validate and build one connection ``kind``."""

    validate: Callable[[Connection, int, int], None]
    build: Callable[["LavaBuild", Connection], Any]  # -> process with s_in / a_out, or None


LIF_PARAMS = {  # name: (default, lo, hi, per-neuron allowed); ranges = Lava's storage dtypes
    "du": (0, 0, 4095, False), "dv": (0, 0, 4095, False), "vth": (10, 0, 2**31 - 1, False),
    "bias_mant": (0, -(2**15), 2**15 - 1, True), "bias_exp": (0, -(2**15), 2**15 - 1, True),
    "u": (0, -(2**31), 2**31 - 1, True), "v": (0, -(2**31), 2**31 - 1, True),
    # Lava steps 1..start run with bias_mant = v = 0; before step start + 1 the host sets them
    # (Var.set between run segments): a population that starts late in the pipeline stays at rest.
    "start": (0, 0, 2**31 - 1, False),
}


def _validate_lif(pop: Population) -> None:
    if set(pop.record) - {"spikes", "v", "u"}:
        raise SpecError(f"population {pop.name}: Lava's LIF records spikes, v and u only")
    unknown = set(pop.params) - set(LIF_PARAMS)
    if unknown:
        raise SpecError(f"population {pop.name}: unknown LIF parameters {sorted(unknown)}")
    for key, (_, lo, hi, per_neuron) in LIF_PARAMS.items():
        val = pop.params.get(key)
        if val is None:
            continue
        if isinstance(val, np.ndarray):
            if not per_neuron:
                raise SpecError(f"population {pop.name}: Lava's LIF takes a scalar {key}")
            if val.shape != (pop.size,):
                raise SpecError(f"population {pop.name}: {key} must have shape ({pop.size},)")
        _check_range(val, lo, hi, f"population {pop.name} {key}")


def _validate_weights(c: Connection, n_src: int, n_dst: int) -> None:
    if c.weights is None or c.weights.shape != (n_dst, n_src):
        raise SpecError(f"connection {c.name}: weights must have shape ({n_dst}, {n_src})")
    if sp.issparse(c.weights) and not c.kind.endswith("sparse"):
        c.weights = c.weights.toarray()  # a CSR reference feeding a dense process
    values = c.weights.data if sp.issparse(c.weights) else c.weights
    _check_range(values, -(2**31), 2**31 - 1, f"connection {c.name} weights")
    if not 1 <= c.num_weight_bits <= 8:
        raise SpecError(f"connection {c.name}: num_weight_bits must lie in 1..8")


def _validate_dense(c: Connection, n_src: int, n_dst: int) -> None:
    _validate_weights(c, n_src, n_dst)
    if c.delays is not None:
        raise SpecError(f"connection {c.name}: delays need kind delay_dense or delay_sparse")


def _validate_delay_dense(c: Connection, n_src: int, n_dst: int) -> None:
    _validate_weights(c, n_src, n_dst)
    if c.delays is None:
        raise SpecError(f"connection {c.name}: {c.kind} needs delays")
    if not isinstance(c.delays, np.ndarray):
        c.delays = np.full((n_dst, n_src), c.delays, dtype=np.int64)
    if c.delays.shape != (n_dst, n_src):
        raise SpecError(f"connection {c.name}: delays must have shape ({n_dst}, {n_src})")
    _check_range(c.delays, 0, MAX_DELAY, f"connection {c.name} delays")
    if c.max_delay is not None:
        _check_range(c.max_delay, int(c.delays.max()), MAX_DELAY, f"connection {c.name} max_delay")


def _validate_delay_sparse(c: Connection, n_src: int, n_dst: int) -> None:
    """Like delay_dense, but weights and delays end up CSR on the weights' nonzero pattern."""
    _validate_weights(c, n_src, n_dst)
    if c.delays is None:
        raise SpecError(f"connection {c.name}: {c.kind} needs delays")
    w = sp.csr_matrix(c.weights)
    w.eliminate_zeros()
    rows, cols = w.nonzero()
    if isinstance(c.delays, np.ndarray):
        if c.delays.shape != (n_dst, n_src):
            raise SpecError(f"connection {c.name}: delays must have shape ({n_dst}, {n_src})")
        values = c.delays[rows, cols]
    else:
        values = np.full(len(rows), _as_int(c.delays, f"connection {c.name} delays"), np.int64)
    _check_range(values, 0, MAX_DELAY, f"connection {c.name} delays")
    c.weights = w
    c.delays = sp.csr_matrix((values, (rows, cols)), shape=w.shape, dtype=np.int64)
    if c.max_delay is not None:
        _check_range(c.max_delay, int(values.max(initial=0)), MAX_DELAY, f"connection {c.name} max_delay")


def _validate_conv(c: Connection, n_src: int, n_dst: int) -> None:
    w = c.weights
    if w is None or sp.issparse(w) or w.ndim != 4 or c.input_shape is None:
        raise SpecError(f"connection {c.name}: conv needs 4-D weights and input_shape")
    _check_range(w, -(2**31), 2**31 - 1, f"connection {c.name} weights")
    cin = c.input_shape[0]
    if (min(c.input_shape) < 1 or c.groups < 1 or cin % c.groups or w.shape[0] % c.groups
            or w.shape[1] * c.groups != cin or min(c.stride + c.dilation) < 1 or min(c.padding) < 0):
        raise SpecError(f"connection {c.name}: inconsistent conv geometry")
    if int(np.prod(c.input_shape)) != n_src or min(c.conv_out_shape) < 1 \
            or int(np.prod(c.conv_out_shape)) != n_dst:
        raise SpecError(f"connection {c.name}: conv maps {c.input_shape} -> {c.conv_out_shape},"
                        f" populations have {n_src} -> {n_dst} neurons")
    if c.delays is not None:
        raise SpecError(f"connection {c.name}: Lava's Conv has no delays")


def _validate_direct(c: Connection, n_src: int, n_dst: int) -> None:
    if n_src != n_dst or c.weights is not None or c.delays is not None:
        raise SpecError(f"connection {c.name}: direct needs equal sizes and no weights/delays")


class LavaBuild:
    """Lava processes for one replicated network and one input block, plus their sinks."""

    def __init__(self, net: Network, x: np.ndarray, steps: int, readout: str, tmpdir: Path):
        from lava.proc.io.source import RingBuffer as Source

        self.net, self.steps, self.readout, self.tmpdir = net, steps, readout, tmpdir
        # Keyed by process instance: Lava's compiler then skips its model search (which would
        # import every module next to the process's defining file).
        self.model_map: dict[Any, type] = {}
        self.sinks: dict[str, Any] = {}  # "spikes/pop" -> sink process
        self.holds: list[tuple[int, Any, dict[str, np.ndarray]]] = []  # (start, LIF, values)
        self.source = Source(data=np.ascontiguousarray(x.T.astype(np.int32)))  # (n_in, T)
        kinds = neuron_kinds()
        self.neurons = {p.name: kinds[p.neuron].build(self, p) for p in net.populations}
        self.synapses = [self._connect(c) for c in net.connections]
        for pop in net.populations:
            handle = self.neurons[pop.name]
            for what in pop.record:
                if handle.record_file is None:
                    port = handle.s_out if what == "spikes" else handle.probes[what]
                    self.sinks[f"{what}/{pop.name}"] = self._sink(port, pop.size)
        self._tie_isolated()

    def record_file(self, pop: Population) -> str:
        """Where a self-recording neuron model saves its recordings (``.npz``)."""
        self._files = getattr(self, "_files", 0) + 1
        return str(self.tmpdir / f"rec{self._files}.npz")

    def out_port(self, name: str):
        return self.source.s_out if name == self.net.input_name else self.neurons[name].s_out

    def _connect(self, c: Connection):
        proc = CONNECTIONS[c.kind].build(self, c)
        src, dst = self.out_port(c.src), self.neurons[c.dst].a_in
        if proc is None:
            src.connect(dst)
        elif c.kind == "conv":  # flat torch (C, H, W) order <-> Lava's (x, y, c) ports
            src.reshape(c.input_shape).transpose([2, 1, 0]).connect(proc.s_in)
            proc.a_out.transpose([2, 1, 0]).reshape((int(np.prod(c.conv_out_shape)),)).connect(dst)
        else:
            src.connect(proc.s_in)
            proc.a_out.connect(dst)
        return proc

    def _sink(self, port, size: int):
        if self.readout == "file":
            custom = _custom_classes()
            proc = custom["FileSink"](shape=(size,), buffer=self.steps,
                                      path=str(self.tmpdir / f"sink{len(self.sinks)}.npy"))
            self.model_map[proc] = custom["PyFileSinkModel"]
        else:
            from lava.proc.io.sink import RingBuffer as Sink

            proc = Sink(shape=(size,), buffer=self.steps)
        port.connect(proc.a_in)
        return proc

    def _tie_isolated(self) -> None:
        """Connect populations unreachable from the source with all-zero Dense (adds nothing),
        so that one ``run`` call compiles the whole graph."""
        linked = {self.net.input_name}
        changed = True
        while changed:
            changed = False
            for c in self.net.connections:
                if (c.src in linked) != (c.dst in linked):
                    linked |= {c.src, c.dst}
                    changed = True
        from lava.proc.dense.process import Dense

        for pop in self.net.populations:
            if pop.name not in linked:
                zero = Dense(weights=np.zeros((pop.size, self.net.input_size), dtype=np.int32))
                self.source.s_out.connect(zero.s_in)
                zero.a_out.connect(self.neurons[pop.name].a_in)
                self.synapses.append(zero)
                linked.add(pop.name)

    def run(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Run ``steps`` steps; return recordings (T, n) as int64 and phase timings."""
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=self.model_map)
        t0 = time.perf_counter()
        done = 0
        for start in sorted({h[0] for h in self.holds}):  # run up to each held LIF's start
            self.source.run(condition=RunSteps(num_steps=start - done), run_cfg=cfg)
            done = start
            for _, proc, values in (h for h in self.holds if h[0] == start):
                for var, value in values.items():
                    getattr(proc, var).set(value)
        self.source.run(condition=RunSteps(num_steps=self.steps - done), run_cfg=cfg)
        t1 = time.perf_counter()
        out = {}
        if self.readout == "get":
            out = {k: np.asarray(s.data.get()).astype(np.int64).T for k, s in self.sinks.items()}
        t2 = time.perf_counter()
        self.source.stop()
        t3 = time.perf_counter()
        if self.readout == "file":
            out = {k: np.load(s.proc_params["path"]).astype(np.int64).T for k, s in self.sinks.items()}
        for pop in self.net.populations:  # self-recorded populations
            path = self.neurons[pop.name].record_file
            if path is not None and pop.record:
                with np.load(path) as z:
                    out.update({f"{w}/{pop.name}": z[w].astype(np.int64).T for w in pop.record})
        return out, {"run_s": t1 - t0, "read_s": t2 - t1 + time.perf_counter() - t3,
                     "stop_s": t3 - t2}


# ---- LIF -----------------------------------------------------------------------------------


@dataclass
class NeuronHandle:
    a_in: Any
    s_out: Any
    probes: dict[str, Any]  # recorded item -> OutPort (read through sinks)
    process: Any
    record_file: str | None = None  # the model records itself into this .npz instead


def _build_lif(b: LavaBuild, pop: Population) -> NeuronHandle:
    kw = {k: pop.params.get(k, LIF_PARAMS[k][0]) for k in LIF_PARAMS}
    kw = {k: (v.astype(np.int32) if isinstance(v, np.ndarray) else int(v)) for k, v in kw.items()}
    start = kw.pop("start")
    held = {}
    if start > 0:
        held = {k: np.broadcast_to(np.asarray(kw[k], np.int32), (pop.size,)).copy()
                for k in ("bias_mant", "v")}
        kw.update(bias_mant=np.zeros(pop.size, np.int32), v=np.zeros(pop.size, np.int32))
    handle = _lif_process(b, pop, kw)
    if held and start < b.steps:
        b.holds.append((start, handle.process, held))
    return handle


def _lif_process(b: LavaBuild, pop: Population, kw: dict[str, Any]) -> NeuronHandle:
    """Lava's LIF (or a subclass whose model only adds recording) with parameters ``kw``."""
    from lava.proc.lif.process import LIF

    if pop.record and b.readout == "file":
        custom = _custom_classes()
        path = b.record_file(pop)
        proc = custom["RecordingLIF"](shape=(pop.size,), name=pop.name, record=pop.record,
                                      num_steps=b.steps, path=path, **kw)
        b.model_map[proc] = custom["PyRecordingLifModel"]
        return NeuronHandle(proc.a_in, proc.s_out, {}, proc, record_file=path)
    if {"v", "u"} & set(pop.record):
        custom = _custom_classes()
        proc = custom["ProbedLIF"](shape=(pop.size,), name=pop.name, **kw)
        b.model_map[proc] = custom["PyProbedLifModel"]
        return NeuronHandle(proc.a_in, proc.s_out, {"v": proc.v_out, "u": proc.u_out}, proc)
    proc = LIF(shape=(pop.size,), name=pop.name, **kw)
    return NeuronHandle(proc.a_in, proc.s_out, {}, proc)


# ---- connections ---------------------------------------------------------------------------


def _weight_kwargs(c: Connection) -> dict[str, Any]:
    kw: dict[str, Any] = dict(weight_exp=c.weight_exp, num_weight_bits=c.num_weight_bits,
                              num_message_bits=c.num_message_bits, name=c.name)
    if c.sign_mode != "auto":
        from lava.utils.weightutils import SignMode

        kw["sign_mode"] = SignMode[c.sign_mode.upper()]
    return kw


def _build_dense(b: LavaBuild, c: Connection):
    from lava.proc.dense.process import Dense

    return Dense(weights=np.asarray(c.weights, dtype=np.int32), **_weight_kwargs(c))


def _build_sparse(b: LavaBuild, c: Connection):
    from lava.proc.sparse.process import Sparse

    w = c.weights if sp.issparse(c.weights) else sp.csr_matrix(c.weights)
    return Sparse(weights=w.astype(np.int32).tocsr(), **_weight_kwargs(c))


def _build_delay_sparse(b: LavaBuild, c: Connection):
    from lava.proc.sparse.process import DelaySparse

    w = sp.csr_matrix(c.weights).astype(np.int32)
    delays = sp.csr_matrix(c.delays).astype(int)  # on the weights' pattern (_validate_delay_sparse)
    max_delay = c.max_delay if c.max_delay is not None else int(delays.max())
    return DelaySparse(weights=w, delays=delays, max_delay=max_delay, **_weight_kwargs(c))


def _build_delay_dense(b: LavaBuild, c: Connection):
    from lava.proc.dense.process import DelayDense

    max_delay = c.max_delay if c.max_delay is not None else int(c.delays.max())
    return DelayDense(weights=np.asarray(c.weights, dtype=np.int32),
                      delays=np.asarray(c.delays, dtype=int), max_delay=max_delay,  # int32 rejected
                      **_weight_kwargs(c))


def _build_conv(b: LavaBuild, c: Connection):
    """Lava's Conv on (x, y, c) = (W, H, C) data: torch's (C_out, C_in, kH, kW) kernel flipped
    (Lava convolves, torch correlates) and laid out (C_out, kW, kH, C_in); geometry in (x, y)."""
    from lava.proc.conv.process import Conv

    cin, h, w = c.input_shape
    kernel = np.ascontiguousarray(c.weights[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)).astype(np.int32)
    return Conv(weight=kernel, input_shape=(w, h, cin), stride=c.stride[::-1],
                padding=c.padding[::-1], dilation=c.dilation[::-1], groups=c.groups,
                num_message_bits=c.num_message_bits, name=c.name)


# ---- custom neurons (lava_custom_neurons.py) -------------------------------------------------


def _custom_neurons():
    """The sibling module with the custom neuron arithmetic (importable when run as a script
    or as ``rsnn_compiler.backends.lava.lava_runner``)."""
    try:
        from . import lava_custom_neurons as m  # type: ignore[no-redef]
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent))  # rsnn_neurons/ is shipped here
        import lava_custom_neurons as m  # type: ignore[no-redef]
    return m


def _validate_custom(pop: Population) -> None:
    m = _custom_neurons()
    kind = pop.neuron.removeprefix("rsnn_")
    spec = m.PARAMS[kind]
    unknown = set(pop.params) - set(spec)
    if unknown:
        raise SpecError(f"population {pop.name}: unknown {pop.neuron} parameters {sorted(unknown)}")
    choices = m.CHOICES[kind]
    for key, val in pop.params.items():
        default, per_neuron = spec[key]
        if isinstance(default, str):
            if val not in choices[key]:
                raise SpecError(f"population {pop.name}: {key} must be one of {choices[key]}")
            continue
        if isinstance(val, str):
            raise SpecError(f"population {pop.name}: {key} must be an integer")
        if isinstance(val, np.ndarray) and (not per_neuron or val.shape != (pop.size,)):
            raise SpecError(f"population {pop.name}: {key} must be a scalar"
                            + (f" or shaped ({pop.size},)" if per_neuron else ""))
        if key in ("du", "dv", "da"):
            _check_range(val, 0, 4095, f"population {pop.name} {key}")
    bad = set(pop.record) - {"spikes", *m.STATES[kind]}
    if bad:
        raise SpecError(f"population {pop.name}: {pop.neuron} cannot record {sorted(bad)}")


def _build_custom(b: LavaBuild, pop: Population) -> NeuronHandle:
    m = _custom_neurons()
    cls = m.lava_classes()
    path = b.record_file(pop)
    proc = cls["RsnnNeuron"](shape=(pop.size,), kind=pop.neuron.removeprefix("rsnn_"),
                             params=dict(pop.params), record=pop.record, num_steps=b.steps,
                             path=path, name=pop.name)
    b.model_map[proc] = cls["PyRsnnNeuronModel"]
    return NeuronHandle(proc.a_in, proc.s_out, {}, proc, record_file=path)


NEURONS: dict[str, NeuronKind] = {"lif": NeuronKind(_validate_lif, _build_lif)}


def neuron_kinds() -> dict[str, NeuronKind]:
    """Lava's LIF plus ``rsnn_<family>`` for every fixed family of the neuron definition."""
    custom = NeuronKind(_validate_custom, _build_custom)
    return {**NEURONS, **{f"rsnn_{k}": custom for k in _custom_neurons().KINDS}}
CONNECTIONS: dict[str, ConnectionKind] = {
    "dense": ConnectionKind(_validate_dense, _build_dense),
    "sparse": ConnectionKind(_validate_dense, _build_sparse),
    "delay_dense": ConnectionKind(_validate_delay_dense, _build_delay_dense),
    "delay_sparse": ConnectionKind(_validate_delay_sparse, _build_delay_sparse),
    "direct": ConnectionKind(_validate_direct, lambda b, c: None),
    "conv": ConnectionKind(_validate_conv, _build_conv),
}


# ---- custom Lava classes (probe ports, file sink) -------------------------------------------

_CUSTOM: dict[str, type] = {}


def _custom_classes() -> dict[str, type]:
    """Define (once) the few Lava classes the runner adds on top of Lava's own.

    - ``ProbedLIF`` / ``PyProbedLifModel``: Lava's LIF with ``v_out`` and ``u_out`` ports; the model
      is Lava's bit-accurate LIF model, extended to send v and u after each step (post-reset, what a
      Monitor would record) so that states are recorded by sinks instead of slow Monitors.
    - ``FileSink`` / ``PyFileSinkModel``: a sink that keeps its (n, T) buffer inside the model
      process and saves it to ``path`` after the last step, instead of being read back element by
      element through the runtime.
    """
    if _CUSTOM:
        return _CUSTOM
    from lava.magma.core.decorator import requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.lif.models import PyLifModelBitAcc
    from lava.proc.lif.process import LIF

    class ProbedLIF(LIF):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.v_out = OutPort(shape=kwargs["shape"])
            self.u_out = OutPort(shape=kwargs["shape"])

    class PyProbedLifModel(PyLifModelBitAcc):
        implements_process = ProbedLIF  # inherited @implements(LIF) may not be re-decorated
        v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        u_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

        def run_spk(self):
            super().run_spk()
            self.v_out.send(self.v)
            self.u_out.send(self.u)

    class FileSink(AbstractProcess):
        def __init__(self, *, shape: tuple[int, ...], buffer: int, path: str):
            super().__init__(shape=shape, buffer=buffer, path=path)
            self.a_in = InPort(shape=shape)

    @requires(CPU)
    @tag("fixed_pt")
    class PyFileSinkModel(PyLoihiProcessModel):
        implements_process = FileSink
        implements_protocol = LoihiProtocol
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

        def __init__(self, proc_params):
            super().__init__(proc_params)
            shape = tuple(proc_params["shape"]) + (proc_params["buffer"],)
            self.buf = np.zeros(shape, dtype=np.int32)

        def run_spk(self):
            self.buf[..., (self.time_step - 1) % self.buf.shape[-1]] = self.a_in.recv()
            if self.time_step == self.buf.shape[-1]:
                np.save(self.proc_params["path"], self.buf)

    class RecordingLIF(LIF):
        """Lava's LIF whose model keeps its own recordings (kwargs record, num_steps, path)."""

    class PyRecordingLifModel(PyLifModelBitAcc):
        implements_process = RecordingLIF

        def __init__(self, proc_params):
            super().__init__(proc_params)
            self.rs_steps = int(proc_params["num_steps"])  # prefixed: Lava owns plain names
            self.rs_rec = {w: [] for w in proc_params["record"]}

        def run_spk(self):
            super().run_spk()
            state = {"spikes": self.s_out_buff, "v": self.v, "u": self.u}
            for what, seq in self.rs_rec.items():
                seq.append(np.array(state[what], dtype=np.int64))
            if self.time_step == self.rs_steps:
                np.savez(self.proc_params["path"],
                         **{w: np.stack(seq, axis=1) for w, seq in self.rs_rec.items()})

    _CUSTOM.update(ProbedLIF=ProbedLIF, PyProbedLifModel=PyProbedLifModel, FileSink=FileSink,
                   PyFileSinkModel=PyFileSinkModel, RecordingLIF=RecordingLIF,
                   PyRecordingLifModel=PyRecordingLifModel)
    return _CUSTOM


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def run_network(net: Network, x: np.ndarray, steps: int | None = None, replicas: int | None = None,
                readout: str = "file", dense_as: str = "sparse",
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run ``x`` (T, batch, n_in) through ``net``; return recordings (T, batch, n) and meta."""
    if x.ndim != 3 or x.shape[2] != net.input_size:
        raise SpecError(f"inputs must be shaped (T, batch, {net.input_size}), got {x.shape}")
    if x.size and (x.min() < -(2**31) or x.max() > 2**31 - 1):
        raise SpecError("inputs must fit int32")
    steps = steps or net.num_steps or x.shape[0]
    if x.shape[0] < steps:  # run past the input: feed zeros
        x = np.concatenate([x, np.zeros((steps - x.shape[0],) + x.shape[1:], x.dtype)])
    x = x[:steps]
    batch = x.shape[1]
    if batch == 0 or steps <= 0:
        raise SpecError("need at least one sample and one time step")
    k = min(replicas or auto_replicas(net, batch, steps, dense_as), max(batch, 1))
    results: dict[str, list[np.ndarray]] = {}
    timings: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="rsnnc-lava-") as tmp:
        for start in range(0, batch, k):
            chunk = x[:, start:start + k]
            kk = chunk.shape[1]
            t0 = time.perf_counter()
            build = LavaBuild(replicate(net, kk, dense_as), chunk.reshape(steps, -1), steps,
                              readout, Path(tmp))
            t1 = time.perf_counter()
            out, tm = build.run()
            timings.append({"build_s": t1 - t0, **tm, "samples": kk})
            for key, arr in out.items():  # (T, kk*n) -> (T, kk, n)
                results.setdefault(key, []).append(arr.reshape(steps, kk, -1))
    merged = {k: np.concatenate(v, axis=1) for k, v in results.items()}
    meta = {"steps": steps, "batch": batch, "replicas_per_run": k, "runs": timings,
            "readout": readout, "dense_as": dense_as if k > 1 else "dense"}
    return merged, meta


def lava_version() -> str:
    try:
        from importlib.metadata import version

        return version("lava-nc")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


def _load_inputs(args: argparse.Namespace) -> tuple[Network, np.ndarray | None]:
    """The validated network and the input array (None with --check)."""
    net = load_network(args.network_dir)
    if args.check:
        return net, None
    with np.load(args.inputs or args.network_dir / "inputs.npz", allow_pickle=False) as z:
        x = z["x"]
    if x.dtype.kind not in "iub" or x.ndim not in (2, 3):
        raise SpecError(f"inputs x must be integers shaped (T, batch, n_in) or (T, n_in), "
                        f"got {x.dtype} {x.shape}")
    return net, x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("network_dir", type=Path)
    ap.add_argument("--inputs", type=Path, help="npz with x (T, batch, n_in); default NETWORK_DIR/inputs.npz")
    ap.add_argument("--out", type=Path, help="result npz; default NETWORK_DIR/results.npz")
    ap.add_argument("--steps", type=int, help="time steps (default: num_steps or input length)")
    ap.add_argument("--replicas", type=int, help="samples per Lava run (default: automatic)")
    ap.add_argument("--readout", choices=("file", "get"), default="file",
                    help="file: sinks save their buffer at the last step (fast); get: sink.data.get()")
    ap.add_argument("--replicate-dense-as", choices=("sparse", "dense"), default="sparse",
                    help="Lava process for a dense connection copied for several samples in one run")
    ap.add_argument("--check", action="store_true", help="validate the network and exit")
    args = ap.parse_args(argv)
    try:
        net, x = _load_inputs(args)
    except (ValueError, KeyError, TypeError, OSError) as exc:  # ValueError covers SpecError
        msg = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"lava_runner: error: {msg}", file=sys.stderr)
        return 2
    if x is None:
        print(f"ok: {len(net.populations)} populations, {len(net.connections)} connections")
        return 0
    squeeze = x.ndim == 2
    x = x[:, None, :] if squeeze else x
    t0 = time.perf_counter()
    try:
        res, meta = run_network(net, x.astype(np.int64), args.steps, args.replicas, args.readout,
                                args.replicate_dense_as)
    except SpecError as exc:
        print(f"lava_runner: error: {exc}", file=sys.stderr)
        return 2
    meta.update(total_s=time.perf_counter() - t0, lava_version=lava_version(),
                python=sys.version.split()[0])
    if squeeze:
        res = {k: v[:, 0] for k, v in res.items()}
    out = args.out or args.network_dir / "results.npz"
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta)), **res)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
