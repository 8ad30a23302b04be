"""PyTorch ANN importer (torch.fx): ``pkg.module:factory`` + ``--weights`` with ``--convert``.

The module is traced with ``torch.fx`` (every module without children is a leaf), so each call of
a module is its own node: a reused ``nn.ReLU`` object gets one neuron population per call site.
Leaf modules: Linear, Conv1d/2d, BatchNorm1d/2d (folded), AvgPool1d/2d, MaxPool1d/2d,
AdaptiveAvgPool to size 1, Flatten, Dropout/Identity (dropped); any other leaf module is probed
as an elementwise activation (ReLU, ReLU6, Hardtanh, QCFS/TCL modules, see ``ann_activation``).
Functions: relu/relu6/hardtanh/clamp/floor, arithmetic with constants, detach, ``x + y``
(residual), flatten/view/reshape to (batch, features). Anything else is an error naming the op
and its node.
"""

from __future__ import annotations

import operator
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions, ImportResult
from rsnn_compiler.frontends.ann_activation import Pointwise, group_pointwise
from rsnn_compiler.frontends.ann_graph import (
    AnnGraph, AnnKind, AnnNode, drop_linear_identities, infer_shapes, resolve_global_pools,
)


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return len(list(m.children())) == 0


_ARITH = {
    operator.add: torch.add, operator.sub: torch.sub, operator.mul: torch.mul,
    operator.truediv: torch.div, torch.add: torch.add, torch.sub: torch.sub, torch.mul: torch.mul,
    torch.div: torch.div, torch.minimum: torch.minimum, torch.maximum: torch.maximum,
}
_METHOD_ARITH = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
_UNARY = {
    F.relu: torch.relu, torch.relu: torch.relu, F.relu6: F.relu6, torch.floor: torch.floor,
}
_FLATTEN_FN = (torch.flatten,)
_FLATTEN_METHODS = ("flatten", "view", "reshape")


def _np(t) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy().astype(np.float32)


def _pair(v, n: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * n


def _module_node(name: str, inp: str, mod: nn.Module, where: str):
    if isinstance(mod, nn.Linear):
        return AnnNode(name, AnnKind.DENSE, [inp], where, {"weight": _np(mod.weight), "bias": _np(mod.bias)})
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        n = 1 if isinstance(mod, nn.Conv1d) else 2
        if isinstance(mod.padding, str) or mod.padding_mode != "zeros":
            raise UserInputError(f"{where}: only numeric zero padding is supported")
        return AnnNode(name, AnnKind.CONV, [inp], where, {
            "weight": _np(mod.weight), "bias": _np(mod.bias), "stride": _pair(mod.stride, n),
            "padding": _pair(mod.padding, n), "dilation": _pair(mod.dilation, n), "groups": mod.groups})
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if mod.running_mean is None:
            raise UserInputError(f"{where}: BatchNorm without running statistics cannot be folded")
        var = mod.running_var.double()
        gamma = mod.weight.detach().double() if mod.affine else torch.ones_like(var)
        beta = mod.bias.detach().double() if mod.affine else torch.zeros_like(var)
        scale = gamma / torch.sqrt(var + mod.eps)
        shift = beta - scale * mod.running_mean.double()
        return AnnNode(name, AnnKind.BN, [inp], where, {"scale": scale.numpy(), "shift": shift.numpy()})
    if isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool1d, nn.MaxPool2d)):
        n = 1 if isinstance(mod, (nn.AvgPool1d, nn.MaxPool1d)) else 2
        is_max = isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d))
        if getattr(mod, "ceil_mode", False) or (is_max and _pair(mod.dilation, n) != (1,) * n):
            raise UserInputError(f"{where}: ceil_mode and dilation are not supported")
        if not is_max and (not mod.count_include_pad or getattr(mod, "divisor_override", None)) \
                and max(_pair(mod.padding, n)) > 0:
            raise UserInputError(f"{where}: padded average pooling must count the padding")
        k = _pair(mod.kernel_size, n)
        return AnnNode(name, AnnKind.POOL, [inp], where, {
            "mode": "max" if is_max else "avg", "kernel": k,
            "stride": _pair(mod.stride if mod.stride is not None else k, n), "padding": _pair(mod.padding, n)})
    if isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        size = _pair(mod.output_size, 1 if isinstance(mod, nn.AdaptiveAvgPool1d) else 2)
        if any(s != 1 for s in size):
            raise UserInputError(f"{where}: adaptive pooling is only supported to size 1 (global average)")
        return AnnNode(name, AnnKind.POOL, [inp], where, {"mode": "avg", "kernel": None, "stride": None, "padding": None})
    if isinstance(mod, nn.Flatten):
        if mod.start_dim != 1 or mod.end_dim != -1:
            raise UserInputError(f"{where}: Flatten must keep the batch (start_dim=1, end_dim=-1)")
        return AnnNode(name, AnnKind.FLATTEN, [inp], where)
    if isinstance(mod, (nn.Dropout, nn.Identity)):
        return None
    # any other leaf: an elementwise activation, identified by probing
    if any(p.numel() > 1 for p in mod.parameters()):
        raise UserInputError(
            f"unsupported module {type(mod).__name__} at {where}; supported: Linear, Conv1d/2d, BatchNorm,"
            " AvgPool, MaxPool, AdaptiveAvgPool(1), Flatten, Dropout and elementwise activations")
    mags = [abs(float(p.detach().reshape(-1)[0])) for p in mod.parameters()]
    return Pointwise(name, [inp], lambda xs, m=mod: m(xs[0]), where, type(mod).__name__, mags)


def read_module(model: nn.Module, input_shape: tuple[int, ...]) -> AnnGraph:
    """Trace ``model`` (eval mode) into an ``AnnGraph``."""
    model = model.eval()
    try:
        graph = _LeafTracer().trace(model)
    except Exception as err:  # noqa: BLE001
        raise UserInputError(
            f"torch.fx cannot trace {type(model).__name__} ({type(err).__name__}: {str(err)[:160]});"
            " use activation modules or torch functions and no data-dependent control flow") from None
    mods = dict(model.named_modules())
    items: list = []
    alias: dict[str, str] = {}
    consts: dict[str, torch.Tensor] = {}
    out_name = None

    def ref(a):
        return alias.get(a.name, a.name) if isinstance(a, fx.Node) else a

    for node in graph.nodes:
        where = f"fx node '{node.name}' ({node.op} {node.target if isinstance(node.target, str) else getattr(node.target, '__name__', node.target)})"
        if node.op == "placeholder":
            if items:
                raise UserInputError(f"{type(model).__name__}.forward must take one tensor input")
            items.append(AnnNode(node.name, AnnKind.INPUT, [], "model input"))
            continue
        if node.op == "output":
            arg = node.args[0]
            if not isinstance(arg, fx.Node):
                raise UserInputError(f"{type(model).__name__}.forward must return one tensor")
            out_name = ref(arg)
            continue
        if node.op == "get_attr":
            t = model
            for part in node.target.split("."):
                t = getattr(t, part)
            consts[node.name] = t.detach() if isinstance(t, torch.Tensor) else torch.as_tensor(t)
            continue
        tensor_args = [a for a in node.args if isinstance(a, fx.Node) and a.name not in consts]
        if node.op == "call_module":
            mod = mods[node.target]
            item = _module_node(node.name, ref(node.args[0]), mod, f"module '{node.target}' ({type(mod).__name__})")
            if item is None:
                alias[node.name] = ref(node.args[0])
                continue
            items.append(item)
            continue
        target = node.target
        if (node.op == "call_method" and target == "size") or (
                node.op == "call_function" and target is getattr and node.args[1:] == ("shape",)):
            consts[node.name] = torch.tensor(-1.0)  # only used as a view/reshape argument
            continue
        if node.op == "call_method" and target in ("detach", "contiguous", "clone"):
            alias[node.name] = ref(node.args[0])
            continue
        if (node.op == "call_function" and target in _FLATTEN_FN) or (
                node.op == "call_method" and target in _FLATTEN_METHODS):
            items.append(AnnNode(node.name, AnnKind.FLATTEN, [ref(node.args[0])], where))
            continue
        fn = _pointwise_fn(node, consts)
        if fn is None:
            raise UserInputError(
                f"unsupported operation at {where}; supported: Linear/Conv/BN/pool/Flatten modules,"
                " relu/clamp/floor, arithmetic with constants, x + y (see docs/conversion.md)")
        call, mags = fn
        names = [ref(a) for a in tensor_args]
        is_add = target in (operator.add, torch.add, "add") and len(names) == 2
        items.append(Pointwise(node.name, names, call, where, str(getattr(target, "__name__", target)), mags, is_add))
    if out_name is None:
        raise UserInputError(f"{type(model).__name__}.forward returns nothing")
    nodes, output = group_pointwise(items, out_name)
    ann = AnnGraph(nodes, tuple(input_shape), output, "torch.fx")
    resolve_global_pools(ann)
    return drop_linear_identities(infer_shapes(ann))


def _pointwise_fn(node: fx.Node, consts: dict[str, torch.Tensor]):
    """(fn(list of tensor inputs) -> tensor, constant magnitudes) for a supported elementwise node."""
    target = node.target
    kwargs = dict(node.kwargs)
    mags: list[float] = []

    def value(a, xs_iter):
        if isinstance(a, fx.Node):
            if a.name in consts:
                return consts[a.name]
            return next(xs_iter)
        return a

    for a in list(node.args[1:]) + list(kwargs.values()):
        if isinstance(a, (int, float)):
            mags.append(abs(float(a)))
        elif isinstance(a, fx.Node) and a.name in consts and consts[a.name].numel() == 1:
            mags.append(abs(float(consts[a.name].reshape(-1)[0])))
        elif isinstance(a, fx.Node) and a.name in consts:
            return None  # per-element constants: not a scalar activation

    if node.op == "call_function" and target in _UNARY:
        f = _UNARY[target]
        return (lambda xs: f(xs[0])), mags
    if node.op == "call_method" and target in ("relu", "floor"):
        return (lambda xs, m=target: getattr(xs[0], m)()), mags
    if (node.op == "call_function" and target in (torch.clamp, torch.clip, F.hardtanh)) or (
            node.op == "call_method" and target in ("clamp", "clip")):
        args = list(node.args[1:])
        lo = kwargs.get("min", kwargs.get("min_val", args[0] if args else None))
        hi = kwargs.get("max", kwargs.get("max_val", args[1] if len(args) > 1 else None))
        if target is F.hardtanh:
            lo = -1.0 if lo is None else lo
            hi = 1.0 if hi is None else hi
        lo = consts[lo.name] if isinstance(lo, fx.Node) else lo
        hi = consts[hi.name] if isinstance(hi, fx.Node) else hi
        return (lambda xs, lo=lo, hi=hi: torch.clamp(xs[0], lo, hi)), mags
    fn = None
    if node.op == "call_function" and target in _ARITH:
        fn = _ARITH[target]
    elif node.op == "call_method" and target in _METHOD_ARITH:
        fn = _METHOD_ARITH[target]
    if fn is None:
        return None
    args = node.args

    def call(xs, args=args, fn=fn):
        it = iter(xs)
        return fn(*[value(a, it) for a in args])

    return call, mags


def _from_factory(source: str, options: ImportOptions, notes: list[str]) -> nn.Module:
    from rsnn_compiler.frontends.checkpoints import build_model

    return build_model(source, options.factory_args, options.weights, options.initial_weights, notes)


def input_shape_for(options: ImportOptions) -> tuple[int, ...]:
    shape = options.extra.get("input_shape")
    if shape is not None:
        return tuple(int(d) for d in shape)
    if options.calib_x is not None:
        return tuple(int(d) for d in np.asarray(options.calib_x).shape[2:])
    raise UserInputError("a PyTorch ANN needs --calib FILE.npz (x shaped (time, batch, *features)) to know its input shape")


def load(source: str | nn.Module, options: ImportOptions | None = None) -> ImportResult:
    """Import ``pkg.module:factory`` (or a module object) and convert it (``--convert``)."""
    from rsnn_compiler.frontends.ann_convert import convert_and_report

    start = time.perf_counter()
    options = options or ImportOptions()
    notes: list[str] = []
    model = source if isinstance(source, nn.Module) else _from_factory(str(source), options, notes)
    ann = read_module(model, input_shape_for(options))
    name = type(model).__name__ if isinstance(source, nn.Module) else str(source)
    result = convert_and_report(ann, options, name, "torch.fx", start)
    result.report.notes[:0] = notes
    return result
