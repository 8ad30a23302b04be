"""Deterministic text form of a graph and its structural hash.

The text lists the graph attributes, every node in graph order with its attributes and a
summary of each array (dtype, shape, range, content digest), then every edge in order.
The structural hash is the SHA-256 of the text form with full-length array digests (without the
pass-bookkeeping properties), so two graphs hash equal exactly when they have the same nodes,
parameters (bit for bit), edges and attributes.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from rsnn_compiler.ir.graph import Graph

FORMAT_VERSION = 1
_DTYPE_TAGS = {"float32": "f32", "float64": "f64", "int64": "i64", "bool": "bool"}


def array_digest(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))  # the bytes, without a copy
    return h.hexdigest()


def _num(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x)).lower()
    return format(float(x) + 0.0, ".6g")  # + 0.0 turns -0 into 0


def describe_array(arr: np.ndarray, digest_len: int = 8) -> str:
    tag = _DTYPE_TAGS.get(arr.dtype.name, arr.dtype.name)
    shape = ",".join(str(d) for d in arr.shape)
    if arr.size == 0:
        rng = "empty"
    elif arr.size == 1 or (arr == arr.flat[0]).all():
        rng = f"={_num(arr.flat[0])}"
    else:
        rng = f"in[{_num(arr.min())},{_num(arr.max())}]"
    return f"{tag}[{shape}]{rng}#{array_digest(arr)[:digest_len]}"


def _value(v) -> str:
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def to_text(graph: Graph, digest_len: int = 8, with_properties: bool = True) -> str:
    a = graph.attrs
    header = f"graph name={_value(a.name)} dt={_value(a.dt)} domain={a.domain.value} profile={_value(a.profile)}"
    if a.steps is not None:  # only when set, so hashes of graphs without it are unchanged
        header += f" steps={a.steps}"
    if with_properties:
        header += f" properties={_value(sorted(a.properties))}"
    lines = [f"rsnn-ir {FORMAT_VERSION}", header]
    for name, op in graph.nodes.items():
        parts = [f"node {name} : {op.kind.value}"]
        parts += [f"{k}={_value(v)}" for k, v in op.attributes().items()]
        parts += [f"{k}={describe_array(v, digest_len)}" for k, v in op.arrays().items()]
        lines.append(" ".join(parts))
    for e in graph.edges:
        lines.append(f"edge {e.src} -> {e.dst} delay={e.delay}")
    return "\n".join(lines) + "\n"


def structural_hash(graph: Graph) -> str:
    """Hash of structure and parameters; pipeline bookkeeping (properties) is not part of it."""
    return hashlib.sha256(to_text(graph, digest_len=64, with_properties=False).encode()).hexdigest()
