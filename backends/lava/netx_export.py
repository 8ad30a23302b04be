"""``rsnnc export BUILD --format netx``: the loihi2 graph as a lava-dl netx ``.net`` (HDF5) file.

Supported subset (what netx turns back into the same Lava network; /work/shared notes §5):
a chain ``input -> [conv | dense (+ dense_rec) -> CUBA LIF] x L`` where

- every neuron is a FixedLIF that Lava's LIF runs as is: reset zero, comparator gt,
  ``v_reset = v_init = 0``, one du/dv/vth per layer (netx: ``iDecay = du + 1``, ``vDecay = dv``,
  ``vThMant = vth``), and a bias that is a multiple of 64 (netx sets ``bias_exp = 6``), only on
  layers at stage 0 (a LIF built by netx integrates its bias from Lava's first step);
- synapses are FixedDense with ``weight_exp >= 0`` (folded into the stored integer weights: netx
  re-derives Lava's weight exponent itself) or identity, or FixedConv2d (loihi2 conv arithmetic is
  Lava's Conv: no exponent, 24-bit wrap; weights in torch layout, netx flips them for Lava's true
  convolution; the layer's neurons may sit behind a ``Flatten``, torch C-H-W order like netx's); a recurrent synapse becomes
  ``dense_rec`` and must have Lava delay 1 (netx drops the weight exponent of delayed recurrent
  synapses); feed-forward Lava delays ``L`` become ``delay = L - 1`` (0..62);
- the input is binary (netx CUBA layers send binary spikes; a Quantize node must be 1-bit).

Layer timing is the retimed Lava program's (``backends/lava/retime.py``): layer ``k``'s spikes at IR step
``t`` appear at Lava step ``t + stage``. Known netx caveat (lava-dl, not ours): all-non-positive
weight matrices can lose their -256 entries (netx scales to -256, Lava clips at -255); the export
report lists such layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.fixed_ops import FixedConv2d, FixedDense, FixedLIF, FixedNeuron, Quantize
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Comparator, ResetMode
from rsnn_compiler.backends.lava.retime import RetimedPath, plan_retiming
from rsnn_compiler.target_api import Diagnostic


@dataclass(frozen=True)
class NetxSpec:
    max_delay: int = 62  # netx/slayer clip synaptic delays to 0..62
    bias_exp: int = 6  # netx builds LIF with bias_exp = 6
    bias_mant_range: tuple[int, int] = (-(1 << 15), (1 << 15) - 1)  # Lava LIF int16 bias_mant
    ref_delay: int = 1
    string_dtype: str = "S10"


NETX = NetxSpec()


@dataclass
class NetxLayer:
    node: str  # IR neuron
    weight: np.ndarray  # dense: (out, in) integers; conv: (out, in / groups, kH, kW)
    neuron: dict[str, int]
    shape: tuple[int, ...] = ()  # neuron shape in torch order: (out,) or (C, H, W)
    conv: dict[str, list[int] | int] | None = None  # geometry of a conv layer (torch order)
    bias: np.ndarray | None = None
    weight_rec: np.ndarray | None = None
    delay: int = 0
    warnings: list[str] = field(default_factory=list)


def _folded(graph: Graph, rp: RetimedPath, n_in: int, n_out: int) -> tuple[np.ndarray | None, list[Diagnostic]]:
    """Integer weights with the exponent folded in (``W << e``), or a diagnostic."""
    p = rp.path
    if p.synapse is None:
        return np.eye(n_out, n_in, dtype=np.int64), []
    op = graph.nodes[p.synapse]
    if isinstance(op, FixedConv2d):  # loihi2: weight_exp 0, 24-bit wrap = Lava Conv
        return np.asarray(op.weight, dtype=np.int64), []
    if not isinstance(op, FixedDense):
        return None, [Diagnostic(f"node '{p.synapse}'", f"{type(op).__name__} is not in the netx subset",
                                 "export dense and conv2d layers only")]
    e = int(op.weight_exp.flat[0]) if op.weight_exp.size else 0
    if e < 0:
        return None, [Diagnostic(f"node '{p.synapse}'", f"weight_exp {e} < 0: netx stores integer weights",
                                 "requantize with weight_exp >= 0 (more weight bits), or use --target lava")]
    return np.asarray(op.weight, dtype=np.int64) << e, []


def _neuron(name: str, op, spec: NetxSpec) -> tuple[dict[str, int], np.ndarray | None, list[Diagnostic]]:
    where = f"node '{name}'"
    if type(op) is not FixedLIF:
        return {}, None, [Diagnostic(where, f"{type(op).__name__} is not a netx CUBA neuron",
                                     "use LIF/CUBA-LIF neurons, or export with --target lava")]
    diags = []
    if op.reset is not ResetMode.ZERO or op.comparator is not Comparator.GT:
        diags.append(Diagnostic(where, f"reset '{op.reset.value}' / comparator '{op.comparator.value}'"
                                " (netx CUBA: zero reset, v > threshold)", "rebuild with --reset zero"))
    if (op.v_reset != 0).any() or (op.v_init != 0).any():
        diags.append(Diagnostic(where, "non-zero v_reset or v_init", "use 0 (netx has no such parameter)"))
    for p in ("du", "dv", "vth"):
        a = np.asarray(getattr(op, p)).ravel()
        if a.size and (a != a[0]).any():
            diags.append(Diagnostic(where, f"per-neuron {p} (netx stores one per layer)",
                                    "share it across the layer"))
    bias = np.asarray(op.bias_mant, np.int64) << np.asarray(op.bias_exp, np.int64)
    if (bias % (1 << spec.bias_exp)).any():
        diags.append(Diagnostic(where, f"bias not a multiple of {1 << spec.bias_exp} (netx uses"
                                f" bias_exp {spec.bias_exp})", "requantize biases with exponent >= 6"))
    b = bias >> spec.bias_exp
    if b.size and (b.min() < spec.bias_mant_range[0] or b.max() > spec.bias_mant_range[1]):
        diags.append(Diagnostic(where, "bias beyond Lava's int16 bias_mant", "reduce the bias"))
    neuron = {"iDecay": int(op.du.flat[0]) + op.du_offset, "vDecay": int(op.dv.flat[0]),
              "vThMant": int(op.vth.flat[0])}
    return neuron, (b.ravel() if b.any() else None), diags


def plan_netx(graph: Graph, spec: NetxSpec = NETX) -> tuple[list[NetxLayer], tuple[int, ...], list[Diagnostic]]:
    """Layers (in order), the input shape, and every reason the graph is outside the subset."""
    if graph.attrs.domain is not Domain.FIXED or graph.attrs.profile != "loihi2":
        return [], (), [Diagnostic("graph", "netx export needs the loihi2 fixed-point graph",
                                   "build with --target lava (or --profile loihi2)")]
    plan = plan_retiming(graph)
    diags = [Diagnostic(p.where, p.problem, p.fix) for p in plan.problems]
    if diags or plan.source is None:
        return [], (), diags
    src_op = graph.nodes[plan.source]
    if isinstance(src_op, Quantize) and (src_op.bits != 1 or src_op.signed):
        diags.append(Diagnostic(f"node '{plan.source}'", "graded input (netx CUBA layers take 0/1 spikes)",
                                "use spike inputs (1-bit Quantize)"))
    incoming: dict[str, list[RetimedPath]] = {}
    for rp in plan.paths:
        incoming.setdefault(rp.path.dst, []).append(rp)
    sizes = {plan.source: int(np.prod(src_op.shape))}
    layers: list[NetxLayer] = []
    prev = plan.source
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
        if bias is not None and plan.stages[name] > 0:
            diags.append(Diagnostic(f"node '{name}'", f"bias at stage {plan.stages[name]}: netx's LIF"
                                    " integrates it from Lava's first step, before the IR's step 0",
                                    "delay the layer's input by one step per layer, or drop the bias"))
        weight, wd = _folded(graph, ff, sizes[prev], sizes[name])
        diags += wd
        if not 0 <= ff.lava_delay - 1 <= spec.max_delay:
            diags.append(Diagnostic(name, f"Lava delay {ff.lava_delay} beyond netx's 1..{spec.max_delay + 1}",
                                    "shorten the delay"))
        layer = NetxLayer(name, weight, neuron, bias=bias, delay=ff.lava_delay - 1,
                          shape=(sizes[name],))
        syn = graph.nodes[ff.path.synapse] if ff.path.synapse else None
        if isinstance(syn, FixedConv2d):
            layer.shape = tuple(int(v) for v in syn.out_shape)
            layer.conv = {"inChannels": int(syn.input_shape[0]), "outChannels": int(syn.weight.shape[0]),
                          "kernelSize": [int(k) for k in syn.weight.shape[2:]],
                          "stride": list(syn.stride), "padding": list(syn.padding),
                          "dilation": list(syn.dilation), "groups": int(syn.groups)}
            if ff.lava_delay != 1:
                diags.append(Diagnostic(name, "a delayed conv layer (netx conv delays are not in the"
                                        " subset)", "remove the delay before the conv"))
        for rp in incoming.get(name, []):
            if rp is ff:
                continue
            if rp.path.src != name or layer.weight_rec is not None:
                diags.append(Diagnostic(f"node '{name}'", f"extra input from '{rp.path.src}' (netx layers"
                                        " have one feed-forward and one recurrent synapse)",
                                        "remove skip connections"))
                continue
            if rp.lava_delay != 1:
                diags.append(Diagnostic(f"node '{name}'", f"recurrent Lava delay {rp.lava_delay} (netx"
                                        " recurrent layers with delays lose their weight exponent)",
                                        "use a one-step recurrent edge"))
            layer.weight_rec, rd = _folded(graph, rp, sizes[name], sizes[name])
            diags += rd
        for w in (layer.weight, layer.weight_rec):
            if w is not None and w.size and w.max() <= 0 and w.min() == -256:
                layer.warnings.append(f"{name}: all-non-positive weights with -256 (netx/Lava may"
                                      " turn them into -255)")
        layers.append(layer)
        prev = name
    out_src = graph.in_edges(graph.output_name)
    if len(out_src) != 1 or out_src[0].src != prev or out_src[0].delay != 0:
        diags.append(Diagnostic(f"node '{graph.output_name}'", "the Output must read the last layer",
                                "feed the Output from the last neuron layer"))
    return layers, tuple(src_op.shape), diags


def write_netx(path: Path, layers: list[NetxLayer], input_shape: tuple[int, ...],
               spec: NetxSpec = NETX) -> None:
    import h5py

    def s(text: str) -> np.ndarray:
        return np.array(text.encode(), dtype=spec.string_dtype)

    with h5py.File(path, "w") as f:
        f.create_dataset("layer/0/type", data=s("input"))
        f.create_dataset("layer/0/shape", data=np.array(input_shape, dtype=np.int64))
        for i, layer in enumerate(layers, 1):
            g = f.create_group(f"layer/{i}")
            g.create_dataset("shape", data=np.array(layer.shape, dtype=np.int64))
            g.create_dataset("weight", data=layer.weight.astype(np.float32))
            if layer.conv is not None:
                g.create_dataset("type", data=s("conv"))
                for key, value in layer.conv.items():
                    g.create_dataset(key, data=np.asarray(value, dtype=np.int64))
            else:
                out_n, in_n = layer.weight.shape
                g.create_dataset("type", data=s("dense_rec" if layer.weight_rec is not None else "dense"))
                g.create_dataset("inFeatures", data=in_n)
                g.create_dataset("outFeatures", data=out_n)
            if layer.weight_rec is not None:
                g.create_dataset("weight_rec", data=layer.weight_rec.astype(np.float32))
            if layer.bias is not None:
                g.create_dataset("bias", data=layer.bias.astype(np.float32))
            if layer.delay:
                g.create_dataset("delay", data=np.full(layer.weight.shape[:2], layer.delay, np.float32))
            n = g.create_group("neuron")
            n.create_dataset("type", data=s("CUBA"))
            for key, value in layer.neuron.items():
                n.create_dataset(key, data=value)
            n.create_dataset("refDelay", data=spec.ref_delay)
            n.create_dataset("gradedSpike", data=False)


def export(graph: Graph, path: str | Path) -> None:
    """Write ``graph`` (the build's loihi2 graph) as a netx ``.net`` file; every reason it is
    outside the subset is listed in one error."""
    layers, shape, diags = plan_netx(graph)
    if diags:
        more = f" (and {len(diags) - 1} more: " + "; ".join(map(str, diags[1:4])) + ")" if len(diags) > 1 else ""
        raise UserInputError(f"netx export: {diags[0]}{more}")
    write_netx(Path(path), layers, shape)


export.graph_key = "loihi2"  # type: ignore[attr-defined]  # which build graph the CLI passes
