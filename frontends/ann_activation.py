"""Recognise activation functions by probing them, and group pointwise ops into call sites.

Importers emit structural nodes (``AnnNode``) and pointwise nodes (``Pointwise``: relu, clip,
floor, arithmetic with constants, detach, ...). ``group_pointwise`` merges each connected region
of pointwise ops that depends on a single tensor into one activation call site, and turns a
pointwise sum of two different tensors into a residual ``add``. A region is classified by
evaluating it on a 1-D grid of inputs (``classify``):

    relu         f(z) = max(z, 0)
    clip         f(z) = clip(z, 0, lam)                          (ReLU6, Hardtanh(0, lam), TCL)
    quant        f(z) = lam/L * clip(floor(z L/lam + shift), 0, L)  (QCFS: shift = 1/2)
    linear       f(z) = c z                                      (identity, detach, constant scale)

so QCFS exported as Div -> Mul -> Add(0.5) -> Floor -> Div -> Clip -> Mul, a custom torch module
or an STE ``(x.floor() - x).detach() + x`` are all recognised. Anything else is an error naming
the op and where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontends.ann_graph import ActKind, ActSpec, AnnKind, AnnNode

MAX_LEVELS = 256
REL_TOL = 1e-4


@dataclass
class Pointwise:
    """An elementwise op on tensors ``inputs`` (constants are inside ``fn``)."""

    name: str
    inputs: list[str]
    fn: Callable[[list[torch.Tensor]], torch.Tensor]
    where: str = ""
    opname: str = ""
    magnitudes: list[float] = field(default_factory=list)  # |constants|, to size the probe grid
    is_add: bool = False  # a plain sum (residual add when its inputs differ)
    label: str = ""


def _fail(where: str, why: str) -> UserInputError:
    return UserInputError(
        f"activation at {where} is not supported ({why}); supported: ReLU, clip to [0, lam]"
        " (ReLU6, Hardtanh, TCL), QCFS staircases, identity/scaling")


def classify(fn: Callable[[torch.Tensor], torch.Tensor], where: str, magnitude: float = 1.0) -> ActSpec:
    """Identify the scalar function ``fn`` (applied elementwise to a float32 tensor)."""
    raw = fn
    fn = lambda t: raw(t.clone())  # noqa: E731 - in-place activations must not touch the probe
    with torch.no_grad():
        big = torch.tensor([1e3, 1e4, -1e3, -1e4], dtype=torch.float32)
        fb = fn(big).double()
        if fb.shape != big.shape:
            raise _fail(where, "it changes the tensor shape")
        if torch.allclose(fb, big.double() * float(fb[1] / 1e4), rtol=1e-4) and float(fb[1]) != 0:
            c = float(fb[1] / 1e4)
            z = torch.linspace(-10 * magnitude, 10 * magnitude, 2001)
            if torch.allclose(fn(z).double(), z.double() * c, rtol=1e-4, atol=1e-6 * magnitude):
                return ActSpec(ActKind.LINEAR, scale=1.0 if abs(c - 1) < 1e-6 else c)
        top = float(fb[1])
        if not np.isfinite(top) or abs(float(fb[2])) > 1e-6 * abs(top) + 1e-9:
            raise _fail(where, "it is not zero for negative inputs")
        relu_like = abs(top - 1e4) < 1e-4 * 1e4
        span = 16.0 * max(1.0, magnitude) if relu_like else 2.0 * max(top, 1e-6)
        z = torch.linspace(-span, span, 80001, dtype=torch.float32)
        f = fn(z).double()
        zd = z.double()
        tol = REL_TOL * max(1.0, float(f.abs().max()))
        # probe elementwise-ness: a permuted input gives the permuted output
        perm = torch.randperm(z.numel(), generator=torch.Generator().manual_seed(0))
        if not torch.allclose(fn(z[perm]).double(), f[perm], atol=tol):
            raise _fail(where, "it is not elementwise")
        neg = zd <= 0
        if (f[neg].abs() > tol).any():
            raise _fail(where, "it is not zero for negative inputs")
        if relu_like:
            if ((f - torch.relu(zd)).abs() > tol * (1 + zd.abs())).any():
                raise _fail(where, "it grows like ReLU but is not ReLU")
            return ActSpec(ActKind.RELU)
        lam = top
        if ((f - zd.clamp(0, lam)).abs() <= tol).all():
            return ActSpec(ActKind.CLIP, lam=lam)
        return _staircase(zd, f, lam, tol, where)


def _staircase(z: torch.Tensor, f: torch.Tensor, lam: float, tol: float, where: str) -> ActSpec:
    pos = z >= 0
    vals = torch.unique(torch.round(f[pos] / tol) * tol)
    levels = len(vals) - 1
    if not 1 <= levels <= MAX_LEVELS:
        raise _fail(where, f"it has {levels + 1} output levels")
    unit = lam / levels
    if (torch.abs(vals / unit - torch.round(vals / unit)) > 1e-3).any():
        raise _fail(where, "its output levels are not evenly spaced")
    k = torch.round(f / unit)
    first = z[(k >= 1) & pos]
    if first.numel() == 0:
        raise _fail(where, "it never leaves zero")
    z1 = float(first.min())
    shift = 1.0 - z1 / unit
    shift = round(shift * 64) / 64  # snap (grid resolution is far finer than 1/64 of a step)
    ref = unit * torch.clamp(torch.floor(z / unit + shift), 0, levels)
    step = float(z[1] - z[0])
    edges = (torch.frac(z / unit + shift) * unit).abs()
    near = (edges < 3 * step) | ((unit - edges) < 3 * step)
    bad = ((ref - f).abs() > tol) & ~near
    if bad.any():
        raise _fail(where, "it is a staircase that is not lam/L*clip(floor(z L/lam + shift), 0, L)")
    return ActSpec(ActKind.QUANT, lam=lam, levels=levels, shift=shift)


def group_pointwise(items: list, output: str) -> tuple[list[AnnNode], str]:
    """Turn the importer's mixed list of ``AnnNode`` and ``Pointwise`` (topological order) into
    ``AnnNode``s only: one ``act`` per single-source pointwise region, ``add`` for sums of
    different tensors. Returns the nodes and the (possibly renamed) output tensor."""
    source: dict[str, str] = {}  # pointwise tensor -> the structural tensor it depends on
    members: dict[str, list[Pointwise]] = {}
    out: list[AnnNode] = []
    for it in items:
        if isinstance(it, AnnNode):
            out.append(it)
            continue
        srcs = {source.get(i, i) for i in it.inputs}
        if len(srcs) == 1:
            s = srcs.pop()
            source[it.name] = s
            members.setdefault(s, []).append(it)
            continue
        if not it.is_add:
            raise UserInputError(
                f"{it.opname or 'elementwise op'} at {it.where} combines two different tensors;"
                " only residual additions (x + y) are supported")
        out.append(AnnNode(it.name, AnnKind.ADD, list(it.inputs), it.where, label=it.label))
    # every region is evaluated lazily: its consumers decide which member is the region output
    used: dict[str, set[str]] = {}
    for it in items:
        for i in it.inputs:
            used.setdefault(i, set()).add(it.name)
    acts: dict[str, AnnNode] = {}
    for s, mem in members.items():
        names = {m.name for m in mem}
        exits = [m for m in mem if (used.get(m.name, set()) - names) or m.name == output]
        if len(exits) != 1:
            raise UserInputError(
                f"elementwise ops after {s} ({mem[0].where}) have {len(exits)} outputs used"
                " elsewhere; an activation must be one function of one tensor")
        ex = exits[0]
        fn = _region_fn(mem, s, ex.name)
        mag = max([1.0, *[m_ for m in mem for m_ in m.magnitudes]])
        spec = classify(fn, ex.where or s, mag)
        label = ex.label.rsplit(".", 1)[0] if len(mem) > 1 and "." in ex.label else ex.label
        node = AnnNode(ex.name, AnnKind.ACT, [s], ex.where, {"spec": spec, "ops": [m.opname for m in mem]}, label)
        acts[s] = node
    # rebuild in order: an act goes right after its source
    final: list[AnnNode] = []
    for n in out:
        final.append(n)
        if n.name in acts:
            final.append(acts.pop(n.name))
    if acts:  # region on the graph input
        for s, node in list(acts.items()):
            final.insert([i for i, n in enumerate(final) if n.name == s][0] + 1, node)
    return _sort(final), output


def _region_fn(mem: list[Pointwise], src: str, exit_name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(z: torch.Tensor) -> torch.Tensor:
        vals = {src: z}
        for m in mem:
            vals[m.name] = m.fn([vals[i] for i in m.inputs])
        return vals[exit_name]
    return fn


def _sort(nodes: list[AnnNode]) -> list[AnnNode]:
    """Stable topological sort (inputs before consumers)."""
    done: set[str] = set()
    pending = list(nodes)
    result: list[AnnNode] = []
    while pending:
        progressed = False
        for n in list(pending):
            if all(i in done for i in n.inputs):
                result.append(n)
                done.add(n.name)
                pending.remove(n)
                progressed = True
        if not progressed:
            raise UserInputError(f"the ANN graph has a cycle or a missing tensor near {pending[0].where or pending[0].name}")
    return result
