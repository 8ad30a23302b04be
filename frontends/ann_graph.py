"""A small ANN graph shared by the ONNX and torch.fx importers, and its float forward.

Nodes are in topological order; every node produces one tensor named after the node. Shapes
exclude the batch. Parameters are float32 numpy arrays. ``forward`` evaluates the ANN with torch
(batch first) and can override the activation function per call site (used to simulate an SFN
network at T = 1 and to fine-tune clipping thresholds).

Kinds:  input | dense (W (out,in), b) | conv (W, b, stride, padding, dilation, groups)
        | bn (scale, shift per channel) | act (ActSpec) | pool (mode, kernel, stride, padding)
        | flatten | add (residual sum of two or more tensors)
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.budget import require_within_budget
from rsnn_compiler.errors import UserInputError


class AnnKind(enum.Enum):
    INPUT = "input"
    DENSE = "dense"
    CONV = "conv"
    BN = "bn"
    ACT = "act"
    POOL = "pool"
    FLATTEN = "flatten"
    ADD = "add"


class ActKind(enum.Enum):
    RELU = "relu"  # a = max(z, 0)
    CLIP = "clip"  # a = clip(z, 0, lam)
    QUANT = "quant"  # a = lam/L * clip(floor(z L / lam + shift), 0, L)   (QCFS: shift = 1/2)
    LINEAR = "linear"  # a = scale * z (identity, detach, constant factors)


@dataclass(frozen=True)
class ActSpec:
    kind: ActKind
    lam: float | None = None
    levels: int | None = None
    shift: float = 0.5
    scale: float = 1.0

    def describe(self) -> str:
        if self.kind is ActKind.RELU:
            return "relu"
        if self.kind is ActKind.CLIP:
            return f"clip(0, {self.lam:.4g})"
        if self.kind is ActKind.QUANT:
            return f"quant(lam={self.lam:.4g}, L={self.levels}, shift={self.shift:g})"
        return f"linear({self.scale:g})"


def apply_act(spec: ActSpec, z: torch.Tensor) -> torch.Tensor:
    """The ANN activation ``spec`` on a tensor (exact formulas, see ActKind)."""
    if spec.kind is ActKind.RELU:
        return torch.relu(z)
    if spec.kind is ActKind.CLIP:
        return torch.clamp(z, 0.0, spec.lam)
    if spec.kind is ActKind.QUANT:
        unit = spec.lam / spec.levels
        return unit * torch.clamp(torch.floor(z / unit + spec.shift), 0, spec.levels)
    return z * spec.scale


@dataclass
class AnnNode:
    name: str
    kind: AnnKind
    inputs: list[str]
    where: str = ""  # location in the source model, for messages
    params: dict = field(default_factory=dict)
    label: str = ""  # readable base name for the IR node (defaults to ``name``)

    def p(self, key: str):
        return self.params[key]


@dataclass
class AnnGraph:
    nodes: list[AnnNode]
    input_shape: tuple[int, ...]
    output: str
    source_format: str = ""
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def node(self, name: str) -> AnnNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def consumers(self, name: str) -> list[AnnNode]:
        return [n for n in self.nodes if name in n.inputs]

    def acts(self) -> list[AnnNode]:
        return [n for n in self.nodes if n.kind is AnnKind.ACT and n.p("spec").kind is not ActKind.LINEAR]


# ------------------------------------------------------------------------------------------
# Forward
# ------------------------------------------------------------------------------------------
ActOverride = Callable[[AnnNode, torch.Tensor], torch.Tensor]


def _t(a) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, np.float32))


def eval_node(node: AnnNode, xs: list[torch.Tensor], params: dict | None = None) -> torch.Tensor:
    """One node on batch-first tensors; ``params`` may override the node's arrays (training)."""
    p = params if params is not None else node.params
    k = node.kind
    if k is AnnKind.DENSE:
        return F.linear(xs[0], _t(p["weight"]), None if p["bias"] is None else _t(p["bias"]))
    if k is AnnKind.CONV:
        fn = F.conv1d if _t(p["weight"]).dim() == 3 else F.conv2d
        b = None if p["bias"] is None else _t(p["bias"])
        return fn(xs[0], _t(p["weight"]), b, node.p("stride"), node.p("padding"), node.p("dilation"),
                  node.p("groups"))
    if k is AnnKind.BN:
        shape = (1, -1) + (1,) * (xs[0].dim() - 2)
        return xs[0] * _t(p["scale"]).reshape(shape) + _t(p["shift"]).reshape(shape)
    if k is AnnKind.ACT:
        return apply_act(node.p("spec"), xs[0])
    if k is AnnKind.POOL:
        x = xs[0]
        two = x.dim() == 4
        if node.p("mode") == "max":
            pad = node.p("padding")
            if max(pad) > 0:
                x = F.pad(x, [q for q in reversed(pad) for _ in (0, 1)], value=-float("inf"))
            return (F.max_pool2d if two else F.max_pool1d)(x, node.p("kernel"), node.p("stride"))
        return (F.avg_pool2d if two else F.avg_pool1d)(
            x, node.p("kernel"), node.p("stride"), node.p("padding"), count_include_pad=True)
    if k is AnnKind.FLATTEN:
        return torch.flatten(xs[0], 1) if xs[0].dim() > 2 else xs[0]
    if k is AnnKind.ADD:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
    raise UserInputError(f"cannot evaluate ANN node {node.name} ({k.value})")


def forward(ann: AnnGraph, x, override: ActOverride | None = None, record: bool = False,
            params: dict[str, dict] | None = None):
    """Run the ANN on ``x`` (batch, *input_shape). Returns the output, or all tensors by name."""
    vals: dict[str, torch.Tensor] = {}
    for node in ann.nodes:
        if node.kind is AnnKind.INPUT:
            vals[node.name] = _t(x).float()
            continue
        xs = [vals[i] for i in node.inputs]
        if node.kind is AnnKind.ACT and override is not None and node.p("spec").kind is not ActKind.LINEAR:
            vals[node.name] = override(node, xs[0])
        else:
            vals[node.name] = eval_node(node, xs, None if params is None else params.get(node.name))
    return vals if record else vals[ann.output]


def _probe(ann: AnnGraph, record: bool = False):
    """Run ``ann`` on one zero sample: the layers must fit the declared input shape (a file that
    says otherwise is bad input, refused in one line) and the sample must fit the memory budget."""
    size = math.prod(int(d) for d in ann.input_shape)
    require_within_budget(4 * size * max(len(ann.nodes), 1), f"the ANN's input shape {tuple(ann.input_shape)}")
    try:
        with torch.no_grad():
            return forward(ann, torch.zeros((1, *ann.input_shape)), record=record)
    except (RuntimeError, ValueError, IndexError) as err:
        raise UserInputError(f"the ANN's layers do not fit its input shape {tuple(ann.input_shape)}"
                             f" ({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''});"
                             " export the model again with its real input shape") from None


def resolve_global_pools(ann: AnnGraph) -> None:
    """GlobalAveragePool -> average pool whose kernel is the whole spatial extent."""
    for n in ann.nodes:
        if n.kind is AnnKind.POOL and n.params.get("kernel") is None:
            prefix = AnnGraph(ann.nodes[: ann.nodes.index(n)], ann.input_shape, n.inputs[0])
            shape = tuple(_probe(prefix).shape[2:])
            n.params.update(kernel=shape, stride=shape, padding=(0,) * len(shape))


def infer_shapes(ann: AnnGraph) -> AnnGraph:
    vals = _probe(ann, record=True)
    ann.shapes = {k: tuple(int(d) for d in v.shape[1:]) for k, v in vals.items()}
    return ann


# ------------------------------------------------------------------------------------------
# Clean-up passes
# ------------------------------------------------------------------------------------------
def _rename_input(ann: AnnGraph, old: str, new: str) -> None:
    for n in ann.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
    if ann.output == old:
        ann.output = new


def drop_linear_identities(ann: AnnGraph) -> AnnGraph:
    """Remove LINEAR activations with scale 1 (detach, identity regions)."""
    for n in list(ann.nodes):
        if n.kind is AnnKind.ACT and n.p("spec").kind is ActKind.LINEAR and n.p("spec").scale == 1.0:
            ann.nodes.remove(n)
            _rename_input(ann, n.name, n.inputs[0])
    return ann


def fold_batchnorm(ann: AnnGraph) -> tuple[AnnGraph, int]:
    """Fold BN into the preceding dense/conv when that layer feeds only the BN:
    W' = W*s (per output channel), b' = b*s + t. Otherwise fold forward into the single
    following dense/conv (no padding): W' = W*s (per input channel), b' = b + W t."""
    folded = 0
    for bn in [n for n in ann.nodes if n.kind is AnnKind.BN]:
        s = bn.p("scale").astype(np.float64)
        t = bn.p("shift").astype(np.float64)
        prev = ann.node(bn.inputs[0])
        if prev.kind in (AnnKind.DENSE, AnnKind.CONV) and len(ann.consumers(prev.name)) == 1:
            w = prev.p("weight").astype(np.float64)
            b = np.zeros(w.shape[0]) if prev.p("bias") is None else prev.p("bias").astype(np.float64)
            prev.params["weight"] = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
            prev.params["bias"] = (b * s + t).astype(np.float32)
        else:
            nxt = ann.consumers(bn.name)
            ok = len(nxt) == 1 and nxt[0].kind in (AnnKind.DENSE, AnnKind.CONV) and (
                nxt[0].kind is AnnKind.DENSE or max(nxt[0].p("padding")) == 0)
            if not ok or (nxt[0].kind is AnnKind.DENSE and len(ann.shapes.get(bn.inputs[0], (0,))) != 1):
                raise UserInputError(
                    f"BatchNormalization {bn.where or bn.name} cannot be folded: it neither follows a"
                    " layer that feeds only it nor precedes a single unpadded layer; move it next to"
                    " a Linear/Conv layer")
            nx_ = nxt[0]
            w = nx_.p("weight").astype(np.float64)
            b = np.zeros(w.shape[0]) if nx_.p("bias") is None else nx_.p("bias").astype(np.float64)
            if nx_.kind is AnnKind.DENSE:
                nx_.params["bias"] = (b + w @ t).astype(np.float32)
                nx_.params["weight"] = (w * s[None, :]).astype(np.float32)
            else:
                if nx_.p("groups") != 1:
                    raise UserInputError(f"BatchNormalization {bn.where or bn.name} before a grouped conv cannot be folded")
                sp = (1, -1) + (1,) * (w.ndim - 2)
                nx_.params["bias"] = (b + (w * t.reshape(sp)).sum(axis=tuple(range(1, w.ndim)))).astype(np.float32)
                nx_.params["weight"] = (w * s.reshape(sp)).astype(np.float32)
        ann.nodes.remove(bn)
        _rename_input(ann, bn.name, bn.inputs[0])
        folded += 1
    return ann, folded


def with_params(ann: AnnGraph, updates: dict[str, dict]) -> AnnGraph:
    """A copy of ``ann`` with some node params replaced."""
    nodes = [replace(n, params={**n.params, **updates.get(n.name, {})}, inputs=list(n.inputs)) for n in ann.nodes]
    return AnnGraph(nodes, ann.input_shape, ann.output, ann.source_format, dict(ann.shapes), list(ann.notes))
