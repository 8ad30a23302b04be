"""``rsnnc export BUILD --format netx``: the loihi2 graph as a lava-dl netx ``.net`` (HDF5) file.

The file is what lava-dl 0.6.0's ``netx.hdf5.Network`` turns back into the same Lava network
(behaviour in ``backends/lava/netx_format.py``; ``tests/test_netx.py`` runs every export with the
real netx in Lava ``fixed_pt`` against the loihi2 interpreter). netx expresses a chain
``input -> [dense | dense_rec | conv (1-D or 2-D)] -> CUBA LIF`` per layer, so a graph exports when

- every neuron is a FixedLIF that Lava's LIF runs as is: reset zero, comparator ``>``,
  ``v_reset = v_init = 0``, one du/dv/vth per layer (``iDecay = du + 1``, ``vDecay = dv``,
  ``vThMant = vth``), its bias a multiple of 64 within Lava's int16 ``bias_mant`` (netx: bias_exp 6);
- every dense synapse computes an integer matrix ``W = M * 2^e`` (``e >= 0``, or ``M`` divisible by
  ``2^-e``) that netx's weight optimizer and Lava's quantization keep exactly (netx has no weight
  exponent field: it derives ``weight_exp`` from the weights, so ``W`` is stored as is); conv
  synapses are Lava's Conv (no exponent, 24-bit wrap), weights in torch layout;
- a layer has at most one recurrent synapse with Lava delay 1 (``dense_rec``, no feed-forward
  delay: netx gives both synapses one delay matrix and drops the exponent); feed-forward Lava
  delays ``L`` become ``delay = L - 1`` (0..62) on dense layers;
- the Output reads the last layer.

**Pipeline start-up.** Layer ``k`` starts at Lava step ``stage + 1``; before that netx's LIF
would integrate its bias alone. A file whose biased layers all sit at stage 0 loads with plain
``Network(path)``. Otherwise it needs netx's own reset: ``Network(path, reset_interval=R,
reset_offset=1)`` with ``R`` at least the steps run per sample resets layer ``k`` at Lava step
``k + 2`` = its stage + 1 — exact when the chain has no feed-forward delays and no layer fires
from its bias alone before its input arrives (checked here with the interpreter). The loader
arguments are stored in the file (``rsnnc/reset_offset``, ``rsnnc/input_message_bits``) and
printed by the CLI. Graded input (a Quantize node wider than 1 bit, or integer input) needs
``input_message_bits``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsnn_compiler.artifact import atomic_file
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.ir import GraphBuilder, Input, Output
from rsnn_compiler.ir.fixed_ops import (
    FixedConv1d, FixedConv2d, FixedDense, FixedLIF, FixedNeuron, Quantize, _FixedConv,
)
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Comparator, ResetMode
from rsnn_compiler.target_api import Diagnostic

from rsnn_compiler.backends.lava.netx_format import NETX, NetxSpec, neuron_fields, netx_dense_weights
from rsnn_compiler.backends.lava.retime import RetimedPath, plan_retiming

GRADED_INPUT_BITS = 24  # Lava graded payloads (any int32 the RingBuffer sends)


@dataclass
class NetxLayer:
    node: str  # IR neuron
    stage: int
    weight: np.ndarray  # dense: (out, in) integers; conv: (out, in / groups, kH, kW)
    neuron: dict[str, int]
    shape: tuple[int, ...] = ()  # neuron shape in torch order: (out,) or (C, H, W)
    conv: dict[str, list[int] | int] | None = None  # geometry of a conv layer (torch order)
    bias: np.ndarray | None = None  # per neuron, torch order (bias_mant for bias_exp 6)
    weight_rec: np.ndarray | None = None
    delay: int = 0
    flatten_before: bool = False  # a dense layer after a conv layer (netx: a flatten layer)


@dataclass
class NetxPlan:
    layers: list[NetxLayer] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    input_message_bits: int = 0
    needs_reset: bool = False
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def file_indices(self) -> list[int]:
        """``layer/<i>`` index of each planned layer (a flatten layer takes an index too)."""
        out, i = [], 1
        for layer in self.layers:
            i += int(layer.flatten_before)
            out.append(i)
            i += 1
        return out

    @property
    def loader_args(self) -> str:
        """The netx.hdf5.Network keyword arguments this file needs."""
        args = []
        if self.needs_reset:
            args.append(f"reset_interval=STEPS_PER_SAMPLE, reset_offset={NETX.reset_offset}")
        if self.input_message_bits:
            args.append(f"input_message_bits={self.input_message_bits}")
        return ", ".join(args)


def _integer_weights(name: str, op: FixedDense) -> tuple[np.ndarray | None, list[Diagnostic]]:
    """``M * 2^e`` as integers (what the loihi2 synapse computes exactly), or why not."""
    m = np.asarray(op.weight, dtype=np.int64)
    e = int(op.weight_exp.flat[0]) if op.weight_exp.size else 0
    if e >= 0:
        return m << e, []
    if (m % (1 << -e)).any():
        return None, [Diagnostic(f"node '{name}'", f"weight_exp {e} floors the summed input (netx"
                                 " stores integer weights and derives no rounding)",
                                 "requantize with weight_exp >= 0 (rsnnc build --stock-neurons"
                                 " netx), or use --target lava")]
    return m >> -e, []


def _check_netx_weights(where: str, w: np.ndarray, w_rec: np.ndarray | None) -> list[Diagnostic]:
    try:
        parts = netx_dense_weights(w, w_rec)
    except ValueError as exc:
        return [Diagnostic(where, f"netx cannot load {exc}", "use --target lava")]
    lost = sum(int(np.count_nonzero(d.lava_weight != d.file_weight << -d.weight_exp)) for d in parts)
    if not lost:
        return []
    return [Diagnostic(where, f"netx + Lava would change {lost} weight(s) (integer weights in"
                       f" [{int(w.min())}, {int(w.max())}]: netx keeps mixed [-256, 254],"
                       " excitatory [0, 255], inhibitory (-256, 0] only where its scaling is"
                       " exact)", "requantize with --stock-neurons netx, or use --target lava")]


def _path_weights(graph: Graph, rp: RetimedPath, n_in: int, n_out: int) -> tuple[np.ndarray | None, list[Diagnostic]]:
    p = rp.path
    if p.synapse is None:
        return np.eye(n_out, n_in, dtype=np.int64), []
    op = graph.nodes[p.synapse]
    if isinstance(op, _FixedConv):  # loihi2 conv = Lava Conv: no exponent, 24-bit wrap
        return np.asarray(op.weight, dtype=np.int64), []
    if not isinstance(op, FixedDense):
        return None, [Diagnostic(f"node '{p.synapse}'", f"{type(op).__name__} is not a netx layer"
                                 " (netx 0.6 builds dense, dense_rec and conv layers; pool raises"
                                 " NotImplementedError)", "use --target lava")]
    return _integer_weights(p.synapse, op)


def _neuron(name: str, op, spec: NetxSpec) -> tuple[dict[str, int], np.ndarray | None, list[Diagnostic]]:
    where = f"node '{name}'"
    if type(op) is not FixedLIF:
        return {}, None, [Diagnostic(where, f"{type(op).__name__} is not a netx CUBA neuron",
                                     "use LIF/CUBA-LIF neurons (rsnnc build --stock-neurons), or"
                                     " export with --target lava")]
    diags = []
    if op.reset is not ResetMode.ZERO or op.comparator is not Comparator.GT:
        diags.append(Diagnostic(where, f"reset '{op.reset.value}' / comparator '{op.comparator.value}'"
                                " (netx CUBA: zero reset, v > threshold)",
                                "rebuild with --stock-neurons (or --reset zero)"))
    if (op.v_reset != 0).any() or (op.v_init != 0).any():
        diags.append(Diagnostic(where, "non-zero v_reset or v_init", "use 0 (netx has no such parameter)"))
    for p in ("du", "dv", "vth"):
        a = np.asarray(getattr(op, p)).ravel()
        if a.size and (a != a[0]).any():
            diags.append(Diagnostic(where, f"per-neuron {p} (netx stores one per layer)",
                                    "share it across the layer (rsnnc build --stock-neurons)"))
    bias = np.asarray(op.bias_mant, np.int64) << np.asarray(op.bias_exp, np.int64)
    if (bias % (1 << spec.bias_exp)).any():
        diags.append(Diagnostic(where, f"bias not a multiple of {1 << spec.bias_exp} (netx uses"
                                f" bias_exp {spec.bias_exp})",
                                "requantize biases with exponent >= 6 (rsnnc build --stock-neurons netx)"))
    b = bias >> spec.bias_exp
    if b.size and (b.min() < spec.bias_mant_range[0] or b.max() > spec.bias_mant_range[1]):
        diags.append(Diagnostic(where, "bias beyond Lava's int16 bias_mant", "reduce the bias"))
    neuron = neuron_fields(int(op.du.flat[0]), int(op.dv.flat[0]), int(op.vth.flat[0]), op.du_offset)
    return neuron, (b.ravel() if b.any() else None), diags


def fires_before_input(op: FixedLIF, steps: int) -> bool:
    """True when ``op`` from rest, on its bias alone, spikes within ``steps`` steps (the loihi2
    interpreter's own LIF)."""
    if steps <= 0:
        return False
    b = GraphBuilder("preroll")
    b.add("in", Input(shape=op.shape))
    b.add("n", op)
    b.add("out", Output(shape=op.shape))
    b.chain("in", "n", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")
    return bool(run_fixed(g, np.zeros((steps, 1, *op.shape), np.int64), record=False).out.any())


def netx_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A (C, L) shape as netx's 2-D (C, 1, L); others unchanged."""
    return (shape[0], 1, shape[1]) if len(shape) == 2 else tuple(shape)


def _conv_geometry(syn: _FixedConv) -> tuple[dict, tuple[int, ...], tuple[int, ...]]:
    """netx conv fields (2-D; a 1-D conv becomes height 1), input and output neuron shapes."""
    w = np.asarray(syn.weight, np.int64)
    if isinstance(syn, FixedConv1d):
        geo = {"inChannels": int(syn.input_shape[0]), "outChannels": int(w.shape[0]),
               "kernelSize": [1, int(w.shape[2])], "stride": [1, syn.stride[0]],
               "padding": [0, syn.padding[0]], "dilation": [1, syn.dilation[0]], "groups": int(syn.groups)}
        c, length = syn.input_shape
        oc, olen = syn.out_shape
        return geo, (int(c), 1, int(length)), (int(oc), 1, int(olen))
    geo = {"inChannels": int(syn.input_shape[0]), "outChannels": int(w.shape[0]),
           "kernelSize": [int(k) for k in w.shape[2:]], "stride": list(syn.stride),
           "padding": list(syn.padding), "dilation": list(syn.dilation), "groups": int(syn.groups)}
    return geo, tuple(int(v) for v in syn.input_shape), tuple(int(v) for v in syn.out_shape)


def plan_netx(graph: Graph, spec: NetxSpec = NETX) -> NetxPlan:
    """The layers (in order) and every reason the graph is outside what netx expresses."""
    plan = NetxPlan()
    if graph.attrs.domain is not Domain.FIXED or graph.attrs.profile != "loihi2":
        plan.diagnostics.append(Diagnostic("graph", "netx export needs the loihi2 fixed-point graph",
                                           "build with --target lava (or --profile loihi2)"))
        return plan
    retimed = plan_retiming(graph)
    diags = plan.diagnostics
    diags += [Diagnostic(p.where, p.problem, p.fix) for p in retimed.problems]
    if diags or retimed.source is None:
        return plan
    src_op = graph.nodes[retimed.source]
    plan.input_shape = tuple(int(v) for v in src_op.shape)
    one_bit = isinstance(src_op, Quantize) and src_op.bits == 1 and not src_op.signed
    plan.input_message_bits = 0 if one_bit else GRADED_INPUT_BITS
    incoming: dict[str, list[RetimedPath]] = {}
    for rp in retimed.paths:
        incoming.setdefault(rp.path.dst, []).append(rp)
    sizes = {retimed.source: int(np.prod(src_op.shape))}
    shapes = {retimed.source: netx_shape(plan.input_shape)}
    prev = retimed.source
    neurons = [n for n, op in graph.nodes.items() if isinstance(op, FixedNeuron)]
    for _ in neurons:
        nxt = [rp for n in neurons for rp in incoming.get(n, []) if rp.path.src == prev and n != prev]
        if len(nxt) != 1:
            diags.append(Diagnostic(f"after '{prev}'", f"{len(nxt)} feed-forward connections (netx"
                                    " layers form a chain)", "export a sequential network"))
            break
        ff = nxt[0]
        name = ff.path.dst
        op = graph.nodes[name]
        sizes[name] = int(np.prod(op.shape))
        neuron, bias, nd = _neuron(name, op, spec)
        diags += nd
        weight, wd = _path_weights(graph, ff, sizes[prev], sizes[name])
        diags += wd
        layer = NetxLayer(name, retimed.stages[name], weight, neuron, bias=bias,
                          delay=ff.lava_delay - 1, shape=(sizes[name],))
        syn = graph.nodes[ff.path.synapse] if ff.path.synapse else None
        if isinstance(syn, (FixedConv1d, FixedConv2d)):
            layer.conv, in_shape, layer.shape = _conv_geometry(syn)
            if len(shapes[prev]) != 3 or int(np.prod(shapes[prev])) != int(np.prod(in_shape)):
                diags.append(Diagnostic(f"node '{name}'", "a conv layer after a dense layer (netx"
                                        " convolves the previous layer's (C, H, W) neurons)",
                                        "keep conv layers before the dense layers"))
            if ff.lava_delay != 1:
                diags.append(Diagnostic(name, "a delayed conv layer (netx conv layers have no"
                                        " delay)", "remove the delay before the conv"))
        else:
            layer.flatten_before = len(shapes[prev]) == 3 and prev != retimed.source
            if not 0 <= layer.delay <= spec.max_delay:
                diags.append(Diagnostic(name, f"Lava delay {ff.lava_delay} beyond netx's"
                                        f" 1..{spec.max_delay + 1}", "shorten the delay"))
        shapes[name] = layer.shape
        if bias is not None:
            layer.bias = bias.reshape(layer.shape)
        for rp in incoming.get(name, []):
            if rp is ff:
                continue
            if rp.path.src != name or layer.weight_rec is not None or layer.conv is not None:
                diags.append(Diagnostic(f"node '{name}'", f"extra input from '{rp.path.src}' (netx layers"
                                        " have one feed-forward and at most one recurrent dense"
                                        " synapse)", "remove skip connections"))
                continue
            if rp.lava_delay != 1 or layer.delay:
                diags.append(Diagnostic(f"node '{name}'", f"recurrent layer with delays (Lava delays"
                                        f" {ff.lava_delay} / {rp.lava_delay}; netx gives both synapses"
                                        " one delay matrix and drops their weight exponent)",
                                        "use one-step recurrent edges and no feed-forward delay"))
            layer.weight_rec, rd = _path_weights(graph, rp, sizes[name], sizes[name])
            diags += rd
        if layer.conv is None and weight is not None:  # netx scales W and W_rec together
            what = "" if layer.weight_rec is None else " (dense_rec: W and W_rec scaled together)"
            diags += _check_netx_weights(f"node '{ff.path.synapse or name}'{what}", weight,
                                         layer.weight_rec)
        plan.layers.append(layer)
        prev = name
    out_src = graph.in_edges(graph.output_name)
    if len(out_src) != 1 or out_src[0].src != prev or out_src[0].delay != 0:
        diags.append(Diagnostic(f"node '{graph.output_name}'", "the Output must read the last layer",
                                "feed the Output from the last neuron layer"))
    _start_up(graph, plan)
    return plan


def _start_up(graph: Graph, plan: NetxPlan) -> None:
    """Decide whether the file needs netx's reset (biased layers after stage 0) and whether it
    is then exact (module docstring)."""
    late = [layer for layer in plan.layers if layer.bias is not None and layer.stage > 0]
    if not late or plan.diagnostics:
        return
    plan.needs_reset = True
    for k, layer in enumerate(plan.layers):
        if layer.stage != k + 1:
            plan.diagnostics.append(Diagnostic(
                f"node '{layer.node}'", f"stage {layer.stage} after feed-forward delays, while a"
                f" biased layer ({late[0].node}) needs netx's reset, whose offsets assume one step"
                " per layer", "remove the feed-forward delays, or the biases after the first layer"))
            return
    for layer in late:
        if fires_before_input(graph.nodes[layer.node], layer.stage):
            plan.diagnostics.append(Diagnostic(
                f"node '{layer.node}'", f"fires from its bias alone within its first {layer.stage}"
                " Lava step(s), before its input arrives (netx's reset clears the state, not the"
                " spikes already sent)", "use --target lava (it holds the bias until the stage)"))


def write_netx(path: Path, plan: NetxPlan, spec: NetxSpec = NETX) -> None:
    import h5py

    def s(text: str) -> np.ndarray:
        return np.array(text.encode(), dtype=spec.string_dtype)

    with h5py.File(path, "w") as f:
        f.create_dataset("layer/0/type", data=s("input"))
        f.create_dataset("layer/0/shape", data=np.array(netx_shape(plan.input_shape), dtype=np.int64))
        i = 1
        for layer in plan.layers:
            if layer.flatten_before:
                f.create_dataset(f"layer/{i}/type", data=s("flatten"))
                i += 1
            g = f.create_group(f"layer/{i}")
            i += 1
            g.create_dataset("shape", data=np.array(layer.shape, dtype=np.int64))
            if layer.conv is not None:
                g.create_dataset("type", data=s("conv"))
                w = layer.weight if layer.weight.ndim == 4 else layer.weight[:, :, None, :]
                g.create_dataset("weight", data=w.astype(np.float32))
                for key, value in layer.conv.items():
                    g.create_dataset(key, data=np.asarray(value, dtype=np.int64))
            else:
                out_n, in_n = layer.weight.shape
                g.create_dataset("type", data=s("dense_rec" if layer.weight_rec is not None else "dense"))
                g.create_dataset("weight", data=layer.weight.astype(np.float32))
                g.create_dataset("inFeatures", data=in_n)
                g.create_dataset("outFeatures", data=out_n)
            if layer.weight_rec is not None:
                g.create_dataset("weight_rec", data=layer.weight_rec.astype(np.float32))
            if layer.bias is not None:  # netx takes a full-shape bias in Lava's (x, y, c) layout
                g.create_dataset("bias", data=np.ascontiguousarray(layer.bias.T).astype(np.float32))
            if layer.delay:
                g.create_dataset("delay", data=np.full(layer.weight.shape[:2], layer.delay, np.float32))
            n = g.create_group("neuron")
            n.create_dataset("type", data=s("CUBA"))
            for key, value in layer.neuron.items():
                n.create_dataset(key, data=value)
            n.create_dataset("refDelay", data=spec.ref_delay)
            n.create_dataset("gradedSpike", data=False)
        f.create_dataset("rsnnc/input_message_bits", data=plan.input_message_bits)
        f.create_dataset("rsnnc/reset_offset", data=spec.reset_offset if plan.needs_reset else -1)
        f.create_dataset("rsnnc/stages", data=np.array([layer.stage for layer in plan.layers], np.int64))


def export(graph: Graph, path: str | Path) -> str:
    """Write ``graph`` (the build's loihi2 graph) as a netx ``.net`` file; every reason it is
    outside what netx expresses is listed in one error. Returns how to load it."""
    plan = plan_netx(graph)
    diags = plan.diagnostics
    if diags:
        more = f" (and {len(diags) - 1} more: " + "; ".join(map(str, diags[1:4])) + ")" if len(diags) > 1 else ""
        raise UserInputError(f"netx export: {diags[0]}{more}")
    with atomic_file(Path(path)) as tmp:  # whole or not at all
        write_netx(tmp, plan)
    return f"load with lava.lib.dl.netx.hdf5.Network({str(path)!r}{', ' + plan.loader_args if plan.loader_args else ''})"


export.graph_key = "loihi2"  # type: ignore[attr-defined]  # which build graph the CLI passes
