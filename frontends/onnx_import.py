"""ONNX ANN importer: reads a feed-forward ANN into an ``AnnGraph`` and converts it to an SNN.

Supported ops: Gemm, MatMul (+ Add of a constant = bias), Conv (1-D/2-D, symmetric pads),
BatchNormalization (folded), Relu, Clip, Floor, Add/Sub/Mul/Div/Min/Max with constants (grouped
into activations: ReLU, clip, QCFS staircases, see ``ann_activation``), Add of two tensors
(residual), AveragePool (count_include_pad or no padding), GlobalAveragePool, MaxPool, Flatten,
Reshape/Squeeze to (batch, features), Identity, Dropout, Constant. Any other op is an error
naming it and its node. The first input dimension is the batch.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions, ImportResult
from rsnn_compiler.frontends.ann_activation import Pointwise, group_pointwise
from rsnn_compiler.frontends.ann_graph import (
    AnnGraph, AnnKind, AnnNode, drop_linear_identities, infer_shapes, resolve_global_pools,
)

PASS = ("Identity", "Dropout")


def _cast(x, to=1, **_):
    import onnx.helper as oh

    return np.asarray(x).astype(oh.tensor_dtype_to_np_dtype(to))


_CONST_FOLD = {  # ops evaluated at import time when every input is a constant
    "Identity": lambda x, **_: x, "Cast": _cast,
    "Add": lambda a, b, **_: a + b, "Sub": lambda a, b, **_: a - b,
    "Mul": lambda a, b, **_: a * b, "Div": lambda a, b, **_: a / b,
    "Neg": lambda a, **_: -a, "Sqrt": lambda a, **_: np.sqrt(a),
}


def _attrs(node) -> dict:
    import onnx.helper as oh

    return {a.name: oh.get_attribute_value(a) for a in node.attribute}


def _where(node, i: int) -> str:
    return f"ONNX node {i} '{node.name or node.output[0]}' ({node.op_type})"


def _dims(vi) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]


def _sym_pads(pads, n: int, where: str) -> tuple[int, ...]:
    pads = list(pads or [0] * (2 * n))
    if pads[:n] != pads[n:]:
        raise UserInputError(f"{where}: asymmetric padding {pads} is not supported; pad symmetrically")
    return tuple(int(p) for p in pads[:n])


def read_onnx(path: str | Path) -> AnnGraph:
    """Parse an ONNX file into an ``AnnGraph`` (BN not yet folded)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:  # pragma: no cover
        raise UserInputError("reading .onnx files needs the 'onnx' package: pip install onnx") from None
    try:
        model = onnx.load(str(path))
    except Exception as err:  # noqa: BLE001 - any parse failure is a user error
        raise UserInputError(f"{path} is not a readable ONNX model ({type(err).__name__}: {err})") from None
    try:  # node arities, attribute types, names: what the reader below relies on
        onnx.checker.check_model(model)
    except Exception as err:  # noqa: BLE001 - onnx raises ValidationError and others
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserInputError(f"{path} is not a valid ONNX model ({first}); export it again") from None
    g = model.graph
    consts: dict[str, np.ndarray] = {}
    for t in g.initializer:
        try:
            arr = numpy_helper.to_array(t)
        except Exception as err:  # noqa: BLE001 - e.g. raw_data shorter than its dims say
            raise UserInputError(f"{path}: initializer '{str(t.name)[:60]}' is malformed ({type(err).__name__}:"
                                 f" {str(err)[:120]}); export the model again") from None
        consts[t.name] = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
    inputs = [vi for vi in g.input if vi.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise UserInputError(f"{path}: the ANN must have one input and one output (has {len(inputs)} and {len(g.output)})")
    in_dims = _dims(inputs[0])
    if len(in_dims) < 2 or any(d <= 0 for d in in_dims[1:]):
        raise UserInputError(f"{path}: input '{inputs[0].name}' has shape {in_dims}; export with a fixed (batch, features...) shape")
    items: list = [AnnNode(inputs[0].name, AnnKind.INPUT, [], "ONNX input")]
    producer: dict[str, AnnNode] = {}
    uses: dict[str, int] = {}
    for node in g.node:
        for i in node.input:
            uses[i] = uses.get(i, 0) + 1
    alias: dict[str, str] = {}

    def src(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def const(name: str, where: str, what: str) -> np.ndarray:
        if name not in consts:
            raise UserInputError(f"{where}: {what} must be a constant (initializer)")
        return consts[name]

    defined = {inputs[0].name, *consts}
    for i, node in enumerate(g.node):
        op, a, where = node.op_type, _attrs(node), _where(node, i)
        unknown = [x for x in node.input if x and x not in defined]
        if unknown:  # ONNX nodes are topologically sorted: a later or missing name is a broken file
            raise UserInputError(f"{where}: input '{unknown[0][:60]}' is not defined by the graph input, an"
                                 " initializer or an earlier node; export the model again")
        defined.update(x for x in node.output if x)
        ins = [src(x) for x in node.input]
        out = node.output[0] if node.output else ""
        if op == "Constant":
            consts[out] = numpy_helper.to_array(a["value"]) if "value" in a else np.asarray(a.get("value_float", 0.0), np.float32)
            continue
        if node.input and all(x in consts for x in node.input if x) and op in _CONST_FOLD:
            consts[out] = _CONST_FOLD[op](*[consts[x] for x in node.input if x], **a)
            continue
        if op in PASS:
            alias[out] = ins[0]
            continue
        if op == "Gemm":
            w = const(node.input[1], where, "the weight B")
            if a.get("transA", 0):
                raise UserInputError(f"{where}: transA=1 is not supported")
            w = w if a.get("transB", 0) else w.T
            b = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            w = w * a.get("alpha", 1.0)
            b = None if b is None else (b * a.get("beta", 1.0)).reshape(-1)
            n = AnnNode(out, AnnKind.DENSE, [ins[0]], where, {"weight": w.astype(np.float32), "bias": None if b is None else b.astype(np.float32)})
        elif op == "MatMul":
            if node.input[1] not in consts:
                raise UserInputError(f"{where}: MatMul needs a constant right-hand side (weights)")
            n = AnnNode(out, AnnKind.DENSE, [ins[0]], where, {"weight": consts[node.input[1]].T.astype(np.float32), "bias": None})
        elif op == "Conv":
            w = const(node.input[1], where, "the weight")
            nd = w.ndim - 2
            if nd not in (1, 2):
                raise UserInputError(f"{where}: only 1-D and 2-D convolutions are supported")
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UserInputError(f"{where}: auto_pad is not supported; export with explicit pads")
            b = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            n = AnnNode(out, AnnKind.CONV, [ins[0]], where, {
                "weight": w, "bias": b, "stride": tuple(a.get("strides", [1] * nd)),
                "padding": _sym_pads(a.get("pads"), nd, where), "dilation": tuple(a.get("dilations", [1] * nd)),
                "groups": int(a.get("group", 1))})
        elif op == "BatchNormalization":
            gamma, beta, mean, var = (const(x, where, "BN statistics") for x in node.input[1:5])
            scale = gamma / np.sqrt(var.astype(np.float64) + a.get("epsilon", 1e-5))
            n = AnnNode(out, AnnKind.BN, [ins[0]], where, {"scale": scale, "shift": beta - scale * mean})
        elif op in ("AveragePool", "MaxPool"):
            k = tuple(a["kernel_shape"])
            pads = _sym_pads(a.get("pads"), len(k), where)
            if op == "AveragePool" and max(pads) > 0 and not a.get("count_include_pad", 0):
                raise UserInputError(f"{where}: padded AveragePool must use count_include_pad=1")
            if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1])):
                raise UserInputError(f"{where}: ceil_mode and dilations are not supported")
            n = AnnNode(out, AnnKind.POOL, [ins[0]], where, {
                "mode": "max" if op == "MaxPool" else "avg", "kernel": k,
                "stride": tuple(a.get("strides", k)), "padding": pads})
        elif op == "GlobalAveragePool":
            n = AnnNode(out, AnnKind.POOL, [ins[0]], where, {"mode": "avg", "kernel": None, "stride": None, "padding": None})
        elif op in ("Flatten", "Reshape", "Squeeze"):
            if op == "Flatten" and a.get("axis", 1) != 1:
                raise UserInputError(f"{where}: Flatten axis must be 1 (keep the batch)")
            if op == "Reshape":
                shape = const(node.input[1], where, "the target shape").tolist()
                if len(shape) != 2:
                    raise UserInputError(f"{where}: Reshape to {shape} is not supported; only (batch, features)")
            n = AnnNode(out, AnnKind.FLATTEN, [ins[0]], where)
        elif op in ("Relu", "Clip", "Floor", "Add", "Sub", "Mul", "Div", "Min", "Max"):
            n = _pointwise(node, op, a, ins, consts, producer, uses, where)
            if isinstance(n, _Alias):  # a constant Add folded into the layer's bias
                alias[n.name] = n.target
                continue
        else:
            raise UserInputError(
                f"unsupported ONNX op '{op}' at {where}; supported: Gemm, MatMul, Add, Conv, Relu, Clip,"
                " BatchNormalization, AveragePool, GlobalAveragePool, MaxPool, Flatten, Reshape (see docs/conversion.md)")
        name = node.name if isinstance(node.name, str) else bytes(node.name).decode("utf-8", "replace")  # invalid UTF-8
        n.label = (name or out).strip("/").replace("/", ".")
        items.append(n)
        if isinstance(n, AnnNode):
            producer[out] = n
    output = src(g.output[0].name)
    nodes, output = group_pointwise(items, output)
    ann = AnnGraph(nodes, tuple(in_dims[1:]), output, "onnx")
    resolve_global_pools(ann)
    return drop_linear_identities(infer_shapes(ann))


def _pointwise(node, op, a, ins, consts, producer, uses, where):
    """A pointwise op, or an ``_Alias`` when an Add of a constant became a MatMul/Gemm/Conv bias."""
    out = node.output[0]
    tensors = [x for x in node.input if x and x not in consts]
    cvals = [consts[x] for x in node.input if x and x in consts]
    if op == "Add" and len(tensors) == 1 and cvals:
        prev = producer.get(ins[0] if node.input[0] not in consts else ins[1])
        c = cvals[0].reshape(-1)
        if prev is not None and prev.kind in (AnnKind.DENSE, AnnKind.CONV) and uses.get(prev.name, 0) == 1 \
                and c.size == prev.p("weight").shape[0]:
            b = prev.p("bias")
            prev.params["bias"] = (c if b is None else b + c).astype(np.float32)
            return _Alias(out, prev.name)
    if op == "Clip":
        lo = consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else a.get("min")
        hi = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else a.get("max")
        lo = None if lo is None else float(np.asarray(lo))
        hi = None if hi is None else float(np.asarray(hi))
        return Pointwise(out, [ins[0]], lambda xs, lo=lo, hi=hi: torch.clamp(xs[0], lo, hi), where, op,
                         [abs(v) for v in (lo, hi) if v is not None])
    if op == "Relu":
        return Pointwise(out, [ins[0]], lambda xs: torch.relu(xs[0]), where, op)
    if op == "Floor":
        return Pointwise(out, [ins[0]], lambda xs: torch.floor(xs[0]), where, op)
    fns = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div,
           "Min": torch.minimum, "Max": torch.maximum}
    fn = fns[op]
    args = []
    mags = []
    for x, s in zip(node.input, ins):
        if x in consts:
            c = consts[x]
            if c.size != 1:
                raise UserInputError(f"{where}: {op} with a non-scalar constant is not supported")
            mags.append(abs(float(c.reshape(-1)[0])))
            args.append(("c", torch.tensor(float(c.reshape(-1)[0]))))
        else:
            args.append(("t", s))
    tin = [s for kind, s in args if kind == "t"]

    def call(xs, args=args, fn=fn):
        it = iter(xs)
        vals = [next(it) if kind == "t" else v for kind, v in args]
        return fn(*vals)

    if len(tin) == 2 and tin[0] == tin[1]:
        return Pointwise(out, [tin[0]], lambda xs, args=args, fn=fn: fn(xs[0], xs[0]), where, op, mags)
    return Pointwise(out, tin, call, where, op, mags, is_add=(op == "Add" and len(tin) == 2))


class _Alias:  # marker returned by _pointwise: output name -> existing tensor
    def __init__(self, name: str, target: str):
        self.name, self.target = name, target


def load(source: str, options: ImportOptions | None = None) -> ImportResult:
    """Import an ONNX ANN and convert it to an SNN (``--convert``, default sfn)."""
    from rsnn_compiler.frontends.ann_convert import convert_and_report

    start = time.perf_counter()
    ann = read_onnx(source)
    return convert_and_report(ann, options or ImportOptions(), source, "onnx", start)
