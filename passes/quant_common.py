"""Shared helpers of the quantization passes: synapse/neuron discovery, gain folding, weight
grids, calibration runs and agreement metrics. No pass class lives here.
"""

from __future__ import annotations

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.profiles import FpgaSpec, Loihi2Spec, get_profile
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.conversion_ops import DualThresholdIF, MultiThreshold
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import (
    ALIF, IF, LI, LIF, Affine, Conv1d, Conv2d, CubaLI, CubaLIF, NeuronOp, _Conv,
)
from rsnn_compiler.precision import PrecisionOptions, check_layer_names

SYNAPSES = (Affine, Conv1d, Conv2d)
FLOAT_NEURONS = (LIF, IF, CubaLIF, LI, CubaLI, ALIF, DualThresholdIF, MultiThreshold)


def profile_spec(profile: str | None) -> Loihi2Spec | FpgaSpec:
    return get_profile(profile or "fpga")


def weight_bits(spec, precision: PrecisionOptions, name: str) -> int:
    """Mantissa width of synapse ``name``: its per-layer or global width, else the profile's
    default (loihi2: 8; Lava's ``num_weight_bits`` allows 1..8)."""
    bits = precision.layer(name).weight_bits
    if isinstance(spec, Loihi2Spec):
        if bits is not None and not 1 <= bits <= spec.weight_bits_max:
            raise UserInputError(f"loihi2 weights have 1..{spec.weight_bits_max} bits (Lava num_weight_bits);"
                                 f" '{name}' asks for {bits}: use --profile fpga for wider weights")
        return 8 if bits is None else bits
    return spec.weight_bits_default if bits is None else bits


def check_precision_layers(graph: Graph, precision: PrecisionOptions) -> None:
    """Every per-layer width names a synapse or neuron node of this (float) graph."""
    synapses = [n for n, op in graph.nodes.items() if isinstance(op, SYNAPSES)]
    neurons = [n for n, op in graph.nodes.items() if isinstance(op, NeuronOp)]
    check_layer_names(precision, synapses, neurons)


def is_conv(op) -> bool:
    return isinstance(op, _Conv)


def synapse_gain(graph: Graph, name: str) -> np.ndarray | None:
    """The per-output-channel input gain of the neuron this synapse alone feeds (None if the
    synapse feeds anything but one neuron with a gain)."""
    outs = graph.out_edges(name)
    if len(outs) != 1:
        return None
    dst = graph.nodes[outs[0].dst]
    gain = None
    if isinstance(dst, (LIF, IF, ALIF, LI)):
        gain = dst.gain.astype(np.float64)
    elif isinstance(dst, (CubaLIF, CubaLI)):
        gain = dst.gain_i.astype(np.float64) * dst.gain_v.astype(np.float64)
    if gain is None:
        return None
    op = graph.nodes[name]
    if is_conv(op):  # per channel only when the gain is uniform over space
        flat = gain.reshape(gain.shape[0], -1)
        if not np.all(flat == flat[:, :1]):
            return None
        return flat[:, 0]
    return gain.reshape(-1)


def fold_gains(graph: Graph) -> tuple[Graph, int]:
    """Fold each neuron's input gain into the synapses that feed only it (rows scale), set the
    gain to 1. For CubaLIF/CubaLI, gain_i*gain_v moves into the synapse (i is rescaled by
    gain_v, which leaves v unchanged). Neurons with any other input keep their gain."""
    folded = 0
    for name, op in list(graph.nodes.items()):
        if not isinstance(op, (LIF, IF, ALIF, LI, CubaLIF, CubaLI)):
            continue
        ins = graph.in_edges(name)
        srcs = [e.src for e in ins]
        if not ins or not all(isinstance(graph.nodes[s], SYNAPSES) for s in srcs):
            continue
        gains = [synapse_gain(graph, s) for s in srcs]
        if any(g is None for g in gains):
            continue
        if all(np.all(g == 1) for g in gains):
            continue
        for s, g in zip(srcs, gains):
            syn = graph.nodes[s]
            shape = (-1,) + (1,) * (syn.weight.ndim - 1)
            w = syn.weight.astype(np.float64) * g.reshape(shape)
            b = None if syn.bias is None else syn.bias.astype(np.float64) * g
            graph = graph.with_node(s, syn.replace(weight=w, bias=b))
        ones = np.ones(op.shape, np.float32)
        if isinstance(op, (CubaLIF, CubaLI)):
            graph = graph.with_node(name, op.replace(gain_i=ones, gain_v=ones))
        else:
            graph = graph.with_node(name, op.replace(gain=ones))
        folded += 1
    return graph, folded


def sqnr_db(w: np.ndarray, wq: np.ndarray) -> float:
    w = np.asarray(w, np.float64)
    err = float(np.sum((w - np.asarray(wq, np.float64)) ** 2))
    sig = float(np.sum(w**2))
    if err == 0.0:
        return float("inf")
    if sig == 0.0:
        return float("-inf")
    return 10.0 * np.log10(sig / err)


def layer_inputs(graph: Graph, result: RunResult, name: str, limit: int = 4096) -> np.ndarray | None:
    """Summed input of ``name`` at every recorded step, flattened to (samples, *in_shape)."""
    total = None
    for e in graph.in_edges(name):
        v = result.values.get(e.src)
        if v is None:
            return None
        v = v.astype(np.float64)
        if e.delay:
            v = np.concatenate([np.zeros_like(v[: e.delay]), v[: -e.delay or None]])[: len(v)]
        total = v if total is None else total + v
    if total is None:
        return None
    flat = total.reshape(-1, *total.shape[2:])
    if len(flat) > limit:
        flat = flat[np.linspace(0, len(flat) - 1, limit).astype(int)]
    return flat


def spike_stats(a: RunResult, b: RunResult) -> dict:
    """Agreement between two runs over the spiking nodes both have (0/1 or graded)."""
    same = total = spikes_a = spikes_b = hits = 0
    for name, sa in a.spikes.items():
        sb = b.spikes.get(name)
        if sb is None or sb.shape != sa.shape:
            continue
        sa64, sb64 = np.asarray(sa, np.float64), np.asarray(sb, np.float64)
        same += int(np.sum(sa64 == sb64))
        total += sa64.size
        spikes_a += float(np.abs(sa64).sum())
        spikes_b += float(np.abs(sb64).sum())
        hits += float(np.minimum(np.abs(sa64), np.abs(sb64)).sum())
    return {
        "spike_agreement": same / total if total else float("nan"),
        "spike_recall": hits / spikes_a if spikes_a else float("nan"),
        "spikes_before": spikes_a,
        "spikes_after": spikes_b,
    }


def accuracy(result: RunResult, y: np.ndarray | None) -> float | None:
    """Top-1 accuracy in percent (None without labels)."""
    if y is None:
        return None
    pred = np.asarray(result.out, np.float64).sum(axis=0).argmax(axis=-1)
    return float(np.mean(pred == np.asarray(y)) * 100.0)


def calibration_label(x: np.ndarray) -> str:
    """What the quantization passes' accuracy numbers are measured on."""
    return f"calibration data ({x.shape[1]} samples)"


def prediction_agreement(a: RunResult, b: RunResult) -> float:
    pa = np.asarray(a.out, np.float64).sum(axis=0).argmax(axis=-1)
    pb = np.asarray(b.out, np.float64).sum(axis=0).argmax(axis=-1)
    return float(np.mean(pa == pb))


def floor_pow2(x: float) -> int:
    """Largest power-of-two exponent k with 2^k <= x (x > 0)."""
    return int(np.floor(np.log2(x)))


def per_channel(spec, options) -> bool:
    """fpga: one exponent per output channel unless ``QuantizeOptions.per_channel`` is False."""
    return spec.per_channel_weight_exp and options.per_channel


def grid_weights(w: np.ndarray, spec, bits: int, calib_in: np.ndarray | None, conv: bool,
                 channelwise: bool = True):
    """Snap float weights to the profile's mantissa * 2^exponent grid.

    loihi2: one exponent per matrix, Lava weight rules (mixed matrices: even mantissas in
    [-254, 254]). fpga: one exponent per output channel, signed ``bits`` mantissas in
    [-(2^(bits-1) - 1), 2^(bits-1) - 1] (one exponent per layer if not ``channelwise``). With calibration inputs, also try one exponent finer
    (clipping outliers) and keep whichever gives the smaller output error.
    Returns (w_q float64, exponent(s), clipped fraction).
    """
    w = np.asarray(w, np.float64)
    loihi = isinstance(spec, Loihi2Spec)
    lim = 254 if loihi else (1 << (bits - 1)) - 1  # loihi2: encode_loihi_weights narrows it for bits < 8
    shape = (-1,) + (1,) * (w.ndim - 1)
    if loihi:
        e0 = int(arith.choose_exponent(np.abs(w).max() if w.size else 0.0, lim))
    else:
        rows = np.abs(w).reshape(w.shape[0], -1).max(axis=1) if w.size else np.zeros(w.shape[0])
        if not channelwise:
            rows = np.full(w.shape[0], rows.max() if rows.size else 0.0)
        e0 = arith.choose_exponent(rows, lim)

    def encode(offset: int):
        if loihi:
            m, e, clipped = arith.encode_loihi_weights(w, bits, -64, e0 - offset)
            return m * 2.0**e, np.asarray(e), clipped
        e = e0 - offset
        raw = arith.round_half_away(w / np.exp2(e.reshape(shape)))
        m = np.clip(raw, -lim, lim)
        clipped = float(np.mean(np.abs(raw) > lim)) if w.size else 0.0
        return m * np.exp2(e.reshape(shape)), e, clipped

    best = encode(0)
    if calib_in is not None and calib_in.size and not conv:
        ref = calib_in @ w.T
        err0 = float(np.mean((calib_in @ best[0].T - ref) ** 2))
        alt = encode(1)
        err1 = float(np.mean((calib_in @ alt[0].T - ref) ** 2))
        if err1 < err0:
            best = alt
    return best
