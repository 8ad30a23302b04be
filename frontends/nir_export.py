"""NIR exporter: ``export(graph, path)`` writes a nir 1.0.8 HDF5 file with ``nir.write``.

Float IR -> NIR, inverting the importer's forward-Euler map at the graph's dt (1e-4 s when the
graph has none), in float32 like snnTorch's exporter:
    tau = dt/(1 - beta), r = gain*tau/dt, v_leak = bias/(1 - beta)   (beta = 1: tau = r = inf)
    tau_syn = dt/(1 - alpha), w_in = gain_i*tau_syn/dt;  IF: r = gain/dt
Edges carry no delay in NIR: recurrent delays are implied (NIR readers put them on the edges
leaving neurons, as rsnnc's importer does). What NIR cannot say is kept in metadata so that
rsnnc's own round trip is lossless: graph ``rsnnc_version``, ``rsnnc_dt``, ``rsnnc_name``,
``rsnnc_edges`` (JSON [src, dst, delay] list), ``rsnnc_nodes`` (node order), and per node ``rsnnc_op`` (JSON kind and
attributes, including reset mode and comparator), ``rsnnc_reset``, ``rsnnc_comparator``,
``rsnnc_dt_used`` and the exact arrays as ``rsnnc_a_<name>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rsnn_compiler.artifact import atomic_file
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.sanitize import safe_name, unique_safe_names
from rsnn_compiler.ir.ops import (
    ALIF, IF, LI, LIF, Affine, BatchNorm, Conv1d, Conv2d, CubaLI, CubaLIF, Delay, Flatten, Identity,
    Input, Op, Output, Pool, PoolMode, Scale, Threshold,
)

META = "rsnnc_"
DEFAULT_DT = 1e-4
F32 = np.float32


def _tau(decay: np.ndarray, dt: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return (F32(dt) / (F32(1.0) - decay.astype(F32))).astype(F32)


def _scaled(gain: np.ndarray, tau: np.ndarray, dt: float) -> np.ndarray:
    """r (or w_in) = gain*tau/dt, float32; inf where tau is inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        base = (tau / F32(dt)).astype(F32)
        out = np.where(gain == 1, base, (gain.astype(np.float64) * tau / dt).astype(F32))
    return np.where(np.isinf(tau), F32(np.inf), out).astype(F32)


def _leak(bias: np.ndarray, decay: np.ndarray) -> np.ndarray:
    a = 1.0 - decay.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(a > 0, bias.astype(np.float64) / np.where(a > 0, a, 1.0), 0.0)
    return v.astype(F32)


def _meta(op: Op, dt: float) -> dict:
    md: dict = {
        META + "op": json.dumps({"kind": op.kind.value, "attributes": op.attributes()}),
        META + "dt_used": float(dt),
    }
    for name, arr in op.arrays().items():
        md[META + "a_" + name] = np.array(arr)
    if hasattr(op, "reset"):
        md[META + "reset"] = op.reset.value
    if hasattr(op, "comparator"):
        md[META + "comparator"] = op.comparator.value
    return md


def to_nir_node(name: str, op: Op, dt: float):
    import nir

    md = _meta(op, dt)
    arr = lambda a: np.array(a, dtype=F32)  # noqa: E731
    if isinstance(op, Input):
        return nir.Input(input_type={"input": np.array(op.shape)}, metadata=md)
    if isinstance(op, Output):
        return nir.Output(output_type={"output": np.array(op.shape)}, metadata=md)
    if isinstance(op, Affine):
        if op.bias is None:
            return nir.Linear(weight=arr(op.weight), metadata=md)
        return nir.Affine(weight=arr(op.weight), bias=arr(op.bias), metadata=md)
    if isinstance(op, Scale):
        return nir.Scale(scale=arr(op.scale), metadata=md)
    if isinstance(op, Identity):
        return nir.Scale(scale=np.ones(op.shape, F32), metadata=md)
    if isinstance(op, (Conv1d, Conv2d)):
        bias = arr(op.bias) if op.bias is not None else np.zeros(op.weight.shape[0], F32)
        if isinstance(op, Conv1d):
            return nir.Conv1d(
                input_shape=int(op.input_shape[1]), weight=arr(op.weight), stride=op.stride[0],
                padding=op.padding[0], dilation=op.dilation[0], groups=op.groups, bias=bias, metadata=md,
            )
        return nir.Conv2d(
            input_shape=tuple(op.input_shape[1:]), weight=arr(op.weight), stride=op.stride,
            padding=op.padding, dilation=op.dilation, groups=op.groups, bias=bias, metadata=md,
        )
    if isinstance(op, Pool):
        if op.spatial_dims != 2 or op.mode is PoolMode.MAX:
            raise UserInputError(
                f"node '{name}': NIR 1.0.8 has only 2-D sum/average pooling, not"
                f" {op.spatial_dims}-D {op.mode.value} pooling; export to another format"
            )
        cls = nir.SumPool2d if op.mode is PoolMode.SUM else nir.AvgPool2d
        return cls(kernel_size=np.array(op.kernel), stride=np.array(op.stride),
                   padding=np.array(op.padding), metadata=md)
    if isinstance(op, Flatten):
        return nir.Flatten(input_type={"input": np.array(op.input_shape)}, start_dim=op.start_dim,
                           end_dim=op.end_dim, metadata=md)
    if isinstance(op, Delay):
        return nir.Delay(delay=np.full(op.shape, op.steps * dt, dtype=F32), metadata=md)
    if isinstance(op, Threshold):
        return nir.Threshold(threshold=arr(op.theta), metadata=md)
    if isinstance(op, IF):
        with np.errstate(divide="ignore"):
            r = (op.gain.astype(np.float64) / dt).astype(F32)
        return nir.IF(r=r, v_threshold=arr(op.theta), v_reset=arr(op.v_reset), metadata=md)
    if isinstance(op, (LIF, LI)):
        tau = _tau(op.beta, dt)
        fields = dict(tau=tau, r=_scaled(op.gain, tau, dt), v_leak=_leak(op.bias, op.beta))
        if isinstance(op, LI):
            return nir.LI(**fields, metadata=md)
        return nir.LIF(**fields, v_threshold=arr(op.theta), v_reset=arr(op.v_reset), metadata=md)
    if isinstance(op, (CubaLIF, CubaLI)):
        ts, tm = _tau(op.alpha, dt), _tau(op.beta, dt)
        fields = dict(
            tau_syn=ts, tau_mem=tm, r=_scaled(op.gain_v, tm, dt), v_leak=_leak(op.bias, op.beta),
            w_in=_scaled(op.gain_i, ts, dt),
        )
        if isinstance(op, CubaLI):
            return nir.CubaLI(**fields, metadata=md)
        return nir.CubaLIF(**fields, v_threshold=arr(op.theta), v_reset=arr(op.v_reset), metadata=md)
    if isinstance(op, BatchNorm):
        raise UserInputError(f"node '{name}': NIR has no BatchNorm; run canonicalize (it folds BatchNorm) before exporting")
    if isinstance(op, ALIF):
        raise UserInputError(f"node '{name}': NIR has no adaptive LIF; export to another format")
    raise UserInputError(f"node '{name}': {type(op).__name__} cannot be expressed in NIR")


def to_nir(graph: Graph):
    """Build the in-memory ``nir.NIRGraph`` for a float graph."""
    import nir

    if graph.attrs.domain is not Domain.FLOAT:
        raise UserInputError("NIR export needs a float graph; export before quantization")
    dt = graph.attrs.dt if graph.attrs.dt else DEFAULT_DT
    safe = unique_safe_names(graph.nodes)  # HDF5 group names: never '/', '.' or '..'
    nodes = {safe[name]: to_nir_node(name, op, dt) for name, op in graph.nodes.items()}
    edges = [(safe[e.src], safe[e.dst]) for e in graph.edges]
    metadata = {
        META + "version": "1",
        META + "dt": float(dt),
        META + "name": safe_name(graph.attrs.name),
        META + "edges": json.dumps([[safe[e.src], safe[e.dst], e.delay] for e in graph.edges]),
        META + "nodes": json.dumps([safe[n] for n in graph.nodes]),  # HDF5 reads groups back sorted
    }
    if graph.attrs.dt is None:
        metadata[META + "dt_assumed"] = "graph had no dt; 1e-4 s used for the NIR time constants"
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)


def export(graph: Graph, path: str) -> None:
    """Write ``graph`` as a NIR file at ``path`` (whole or not at all: ``artifact.atomic_file``)."""
    import nir

    nir_graph = to_nir(graph)
    with atomic_file(Path(path)) as tmp:
        nir.write(str(tmp), nir_graph)
