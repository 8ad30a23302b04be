"""IR verifier: collects every violation (what is wrong, where, and how to fix it)."""

from __future__ import annotations

import math
import re

import numpy as np

from rsnn_compiler.errors import VerificationError
from rsnn_compiler.ir import topology
from rsnn_compiler.ir.dynamics import family_of, has_family
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.verify_fixed import verify_domain
from rsnn_compiler.ir.ops import (
    ALIF, Affine, BatchNorm, Delay, Flatten, Input, NeuronOp, Op, Output, Pool,
    _Conv,
)

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")  # whole name (fullmatch)
MAX_STEPS = (1 << 31) - 1  # GraphAttrs.steps: a positive int32
# Parameters that are decay factors: they must lie in [0, 1].
DECAYS = ("alpha", "beta", "rho")


def _where(name: str, op: Op) -> str:
    return f"node '{name}' ({type(op).__name__})"


def _index(arr: np.ndarray, mask: np.ndarray) -> str:
    idx = tuple(int(i) for i in np.argwhere(mask)[0])
    return str(idx if arr.ndim else "()")


def _check_params(name: str, op: Op) -> list[str]:
    problems = []
    where = _where(name, op)
    for pname, arr in op.arrays().items():
        if np.issubdtype(arr.dtype, np.floating):
            bad = ~np.isfinite(arr)
            if bad.any():
                kind = "NaN" if np.isnan(arr).any() else "Inf"
                problems.append(
                    f"{where}: parameter '{pname}' contains {kind} at index {_index(arr, bad)};"
                    " retrain or clean the checkpoint so every parameter is finite"
                )
                continue
        if pname in DECAYS and isinstance(op, NeuronOp):
            bad = (arr < 0) | (arr > 1)
            if bad.any():
                value = arr[tuple(np.argwhere(bad)[0])]
                problems.append(
                    f"{where}: parameter '{pname}' = {value:g} at index {_index(arr, bad)} is"
                    " outside [0, 1]; decay factors must lie in [0, 1] (clamp it, as snnTorch does)"
                )
    for q in family_of(op).params if has_family(op) else ():
        if q.positive and getattr(op, q.name, None) is not None:
            arr = np.asarray(getattr(op, q.name))
            bad = ~(arr > 0)
            if bad.any():
                first = arr[tuple(np.argwhere(bad)[0])] if arr.ndim else arr
                problems.append(
                    f"{where}: parameter '{q.name}' = {first.item():g} at index {_index(arr, bad)} must be > 0"
                    " (the neuron divides by it); fix or re-export the model"
                )
    shape_problems = op.shape_problems()  # normally refused at construction already
    problems += [f"{where}: {msg}" for msg in shape_problems]
    if isinstance(op, _Conv) and not shape_problems:
        if min(op.stride) < 1 or min(op.dilation) < 1 or min(op.padding) < 0:
            problems.append(f"{where}: stride and dilation must be >= 1 and padding >= 0")
        elif min(op.out_shape[1:]) < 1:
            problems.append(f"{where}: kernel larger than the padded input {op.input_shape}")
    if isinstance(op, Pool):
        if op.spatial_dims not in (1, 2):
            problems.append(f"{where}: pooling supports 1 or 2 spatial dims, input is {op.input_shape}")
        elif min(op.kernel) < 1 or min(op.stride) < 1 or min(op.padding) < 0:
            problems.append(f"{where}: kernel and stride must be >= 1 and padding >= 0")
        elif min(op.out_shape[1:]) < 1:
            problems.append(f"{where}: kernel {op.kernel} larger than the input {op.input_shape}")
    if isinstance(op, Flatten):
        n = len(op.input_shape)
        if n == 0 or not (-n <= op.start_dim < n and -n <= op.end_dim < n):
            problems.append(f"{where}: dims {op.start_dim}..{op.end_dim} invalid for shape {op.input_shape}")
        elif op.start_dim % n > op.end_dim % n:
            problems.append(f"{where}: start_dim {op.start_dim} is after end_dim {op.end_dim}")
    if isinstance(op, Delay) and op.steps < 0:
        problems.append(f"{where}: delay of {op.steps} steps is negative")
    if isinstance(op, BatchNorm):
        if (op.var < 0).any() or op.eps <= 0:
            problems.append(f"{where}: variance must be >= 0 and eps > 0")
    if isinstance(op, ALIF) and (op.kappa < 0).any():
        problems.append(f"{where}: adaptation strength 'kappa' must be >= 0")
    return problems


def _check_shapes(name: str, op: Op) -> list[str]:
    """Every op reads and writes at least one value per sample (no empty layers)."""
    try:
        shapes = (tuple(op.in_shape), tuple(op.out_shape))
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError) as exc:
        return [f"{_where(name, op)}: its attributes give no valid shape ({exc}); fix the layer geometry"]
    for shape in shapes:
        if any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
            return [f"{_where(name, op)}: shape {shape} has an empty dimension; every layer needs"
                    " at least one neuron/feature per dimension"]
    return []


def _check_attrs(graph: Graph) -> list[str]:
    """Graph-wide attributes: a text name, dt > 0 (or unknown), steps a positive int32 (or all)."""
    a = graph.attrs
    problems = []
    if not isinstance(a.name, str) or len(a.name) > 1000:
        problems.append("graph name must be a text of at most 1000 characters")
    if a.dt is not None and (isinstance(a.dt, bool) or not isinstance(a.dt, (int, float)) or not (a.dt > 0 and math.isfinite(a.dt))):
        problems.append(f"graph dt {a.dt!r} must be a positive number of seconds (or absent)")
    if a.steps is not None and (isinstance(a.steps, bool) or not isinstance(a.steps, int) or not 1 <= a.steps <= MAX_STEPS):
        problems.append(f"graph steps {a.steps!r} must be an integer in 1..{MAX_STEPS} (or absent: run every step of the data)")
    return problems


def verify(graph: Graph) -> list[str]:
    """Return every problem found (empty list when the graph is valid)."""
    problems: list[str] = _check_attrs(graph)
    for name, op in graph.nodes.items():
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.append(
                f"node name '{name}' is invalid; use letters, digits, '_', '.', '-' (no '/', no spaces)"
            )
        problems.extend(_check_params(name, op) or _check_shapes(name, op))
    problems.extend(verify_domain(graph))

    for kind, cls in (("Input", Input), ("Output", Output)):
        count = len(graph.names_of(cls))
        if count != 1:
            problems.append(f"graph has {count} {kind} nodes; exactly one is supported")

    fed: set[str] = set()
    for e in graph.edges:
        label = f"edge {e.src} -> {e.dst}"
        missing = [n for n in (e.src, e.dst) if n not in graph.nodes]
        if missing:
            problems.append(f"{label}: unknown node '{missing[0]}'; define it or remove the edge")
            continue
        if e.delay < 0:
            problems.append(f"{label}: delay {e.delay} is negative; delays count steps >= 0")
        src, dst = graph.nodes[e.src], graph.nodes[e.dst]
        if isinstance(dst, Input):
            problems.append(f"{label}: Input nodes take no incoming edges")
        if isinstance(src, Output):
            problems.append(f"{label}: Output nodes have no outgoing edges")
        if src.out_shape != dst.in_shape:
            problems.append(
                f"{label}: shape mismatch, '{e.src}' produces {src.out_shape} but '{e.dst}'"
                f" expects {dst.in_shape}; insert a Flatten or fix the layer sizes"
            )
        fed.add(e.dst)
    for name, op in graph.nodes.items():
        if not isinstance(op, Input) and name not in fed:
            problems.append(f"node '{name}' ({type(op).__name__}) has no input edge; connect or remove it")

    if not any("unknown node" in p for p in problems):
        cycle = topology.same_step_cycle(graph)
        if cycle:
            loop = " -> ".join(cycle + [cycle[0]])
            problems.append(
                f"cycle {loop} has no delayed edge; give one of its edges delay >= 1"
                f" (e.g. {cycle[-1]} -> {cycle[0]})"
            )
    return problems


def verify_or_raise(graph: Graph) -> Graph:
    problems = verify(graph)
    if problems:
        raise VerificationError(problems)
    return graph
