"""Random valid fixed-point graphs and inputs for differential testing of integer executors.

``random_fixed_graph(seed, profile, **knobs)`` builds Input -> [FixedDense -> neuron] x layers ->
Output (optionally a FixedConv1d front end, a LI readout, recurrent synapses, skip connections
and edge delays) whose parameters pass ``verify`` for the profile. Knobs (``None`` = drawn at
random from the seed):

- ``layers`` (1..3)         number of neuron layers; ``width`` (2..12) neurons per layer;
                            ``n_in`` (2..10) input features
- ``recurrent``             add a recurrent FixedDense per layer (edge delay >= 1)
- ``skip``                  add a skip synapse from the input or an earlier layer
- ``delays``                random feed-forward edge delays (0..``max_delay``; recurrent 1..)
- ``max_delay`` (4)         largest edge delay (kept within the profile)
- ``cuba``                  current decay du < 4095 (CUBA); False gives du = 4095 (plain LIF)
- ``graded``                integer (multi-bit, signed) input payloads instead of 0/1 spikes
- ``payload_bits`` (1..8)   input payload width when graded (signed)
- ``overflow``              parameters chosen so u wraps / v saturates / accumulators overflow
- ``neuron_kinds``          tuple from {"lif", "alif", "dual_if", "mtn"}; default ("lif",) for
                            loihi2 (Lava's standard LIF), all four for fpga
- ``resets``                tuple of ResetMode allowed for FixedLIF/ALIF; default (ZERO,) for
                            loihi2, every mode for fpga
- ``readout``               "spikes" (Output reads the last layer) or "li" (FixedLI readout)
- ``conv``                  put a FixedConv1d (+ Flatten) in front; input shape (C, L)
- ``quantize_input``        put a Quantize node after the Input (random_input then gives floats)

Decays include 0 and 4095, weight exponents both signs, biases with exponents. For loihi2 the
graph stays inside Lava's exactness envelope (|drive| < 2^25, Lava-exact weight mantissas).
``random_input(graph, steps, batch, seed)`` returns matching inputs (int64, or float64 when the
graph quantizes its input), shaped (steps, batch, *input_shape).
"""

from __future__ import annotations

import math
import re

import numpy as np

from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.fixed.profiles import Loihi2Spec, get_profile
from rsnn_compiler.ir import verify
from rsnn_compiler.ir.fixed_ops import (
    FixedALIF, FixedConv1d, FixedDense, FixedDualIF, FixedLI, FixedLIF, FixedMultiThreshold,
    Quantize, make_neuron,
)
from rsnn_compiler.ir.graph import Domain, Graph, GraphBuilder
from rsnn_compiler.ir.ops import Flatten, Input, Output, ResetMode

NEURON_KINDS = ("lif", "alif", "dual_if", "mtn")
# wrap_once is Lava's u rule; on fpga it could leave the declared width, so it is not drawn
FPGA_OVERFLOWS = ("wrap", "saturate", "saturate_sym")
# loihi2: |a| < 2^18 keeps |decay(u) + (a << 6)| < 3 * 2^23, so the one-shot wrap lands in 24 bits
LOIHI2_DRIVE_BOUND = 1 << 18
_NAME_RE = re.compile(r"_p(\d+)_")


class _Gen:
    def __init__(self, seed: int, spec, knobs: dict):
        self.rng = np.random.default_rng(seed)
        self.spec = spec
        self.loihi = isinstance(spec, Loihi2Spec)
        self.k = knobs

    def flag(self, name: str, p: float = 0.5) -> bool:
        value = self.k.get(name)
        return bool(self.rng.random() < p) if value is None else bool(value)

    def pick(self, name: str, lo: int, hi: int) -> int:
        value = self.k.get(name)
        return int(self.rng.integers(lo, hi + 1)) if value is None else int(value)

    # --- synapses -------------------------------------------------------------------
    def weights(self, n_out: int, n_in: int, payload: int, fan_in_total: int) -> dict:
        """Weight mantissas + exponent whose worst-case |shift(W x, e)| stays bounded."""
        r, overflow = self.rng, self.k["overflow"]
        if self.loihi:
            nwb = int(r.choice([8, 8, 6, 4, 2]))
            mode = r.choice(["mixed", "mixed", "exc", "inh"])
            w = r.integers(-256, 256, (n_out, n_in))
            if mode == "exc":
                w = np.abs(w)
            elif mode == "inh":
                w = -np.abs(w)
            w = w * (r.random((n_out, n_in)) < 0.7)
            while not arith.loihi_weights_exact(w, nwb):  # a sign may vanish: requantize
                w = arith.loihi_weight_quantize(w, nwb)
            bits, lo, hi = nwb, self.spec.weight_exp_range[0], self.spec.weight_exp_range[1]
            bound = LOIHI2_DRIVE_BOUND
        else:
            bits = int(r.integers(4, 13))
            half = 1 << (bits - 1)
            w = r.integers(-half, half, (n_out, n_in)) * (r.random((n_out, n_in)) < 0.7)
            lo, hi = -8, 8
            bound = 1 << 30
        worst = max(1, int(np.abs(w).sum(axis=1).max()) * payload * max(1, fan_in_total))
        e_max = min(hi, int(math.floor(math.log2(bound / worst))) - 1)
        if overflow:
            e = int(r.integers(max(lo, e_max - 3), e_max + 1))
        else:
            e = int(r.integers(lo, max(lo, min(e_max, 2)) + 1))
        e = max(lo, min(e, e_max))
        kw = dict(weight=w, weight_exp=np.full(n_out, e), weight_bits=bits)
        if self.loihi:
            kw.update(acc_bits=self.spec.dense_acc_bits, acc_overflow=self.spec.dense_acc_overflow)
        else:
            if self.rng.random() < 0.5:  # per-channel exponents
                kw["weight_exp"] = np.clip(e - r.integers(0, 3, n_out), lo, hi)
            kw.update(acc_bits=int(r.integers(16, 33)) if overflow else 32,
                      acc_overflow=Overflow(r.choice(["saturate", "wrap"])))
            if r.random() < 0.5:
                kw["bias"] = r.integers(-64, 65, n_out)
        return kw

    def typical_drive(self, dense: dict, payload: int) -> float:
        w, e = dense["weight"], dense["weight_exp"]
        return float(np.abs(w).sum(axis=1).mean() * max(1, payload) * 0.3 * 2.0 ** float(np.mean(e))) + 1

    # --- neurons --------------------------------------------------------------------
    def state_fields(self) -> dict:
        if self.loihi:
            return {}
        r = self.rng
        v_bits = int(r.integers(8, 14)) if self.k["overflow"] else int(r.integers(16, 25))
        return dict(
            input_shift=int(r.integers(0, 7)),
            v_bits=v_bits,
            v_overflow=Overflow(r.choice(FPGA_OVERFLOWS)),
        )

    def decays(self, n: int) -> np.ndarray:
        return self.rng.choice([0, 1, 7, 300, 1000, 2048, 3500, 4095], n)

    def neuron(self, kind: str, n: int, drive: float):
        r, spec = self.rng, self.spec
        st = self.state_fields()
        shift_in = st.get("input_shift", 6)
        scale_v = drive * (1 << shift_in)
        vth_shift = 6 if self.loihi else int(r.integers(0, 7))
        vth_hi = spec.vth_range[1] if self.loihi else (1 << 20)
        vth = np.clip((scale_v * r.uniform(0.3, 3.0, n)) / (1 << vth_shift), 1, vth_hi).astype(np.int64)
        if self.loihi:
            bm = r.integers(-300, 300, n) * (r.random(n) < 0.5)
            be = r.integers(*spec.bias_exp_range, n, endpoint=True)
        else:
            bm = r.integers(-300, 300, n) * (r.random(n) < 0.5)
            be = r.integers(-4, 7, n)
        common = dict(bias_mant=bm, bias_exp=be, **st)
        v_lo, v_hi = arith.signed_range(st.get("v_bits", 24), st.get("v_overflow", Overflow.SATURATE_SYM))
        vth = np.minimum(vth, max(1, v_hi >> vth_shift))
        if kind in ("lif", "alif"):
            cuba = self.k["cuba"]
            du = self.decays(n) if cuba else np.full(n, 4095)
            resets = self.k["resets"]
            kw = dict(
                du=du, dv=self.decays(n), vth=vth, vth_shift=vth_shift,
                reset=ResetMode(resets[int(r.integers(len(resets)))]),
            )
            if not self.loihi:
                kw["u_bits"] = int(r.integers(8, 14)) if self.k["overflow"] else int(r.integers(16, 25))
                kw["u_overflow"] = Overflow(r.choice(FPGA_OVERFLOWS))
                kw["du_offset"] = int(r.integers(0, 2))
                kw["comparator"] = r.choice(["gt", "ge"])
                kw["v_reset"] = np.clip(r.integers(-8, 9, n), v_lo, v_hi)
            if kind == "lif":
                return make_neuron(FixedLIF, (n,), **common, **kw)
            a_inc = np.clip((vth << vth_shift) // 2, 0, v_hi)
            return make_neuron(FixedALIF, (n,), **common, **kw, da=self.decays(n), a_inc=a_inc)
        if kind == "dual_if":
            theta = vth << vth_shift
            return make_neuron(FixedDualIF, (n,), **common, vth=vth, vth_shift=vth_shift,
                               vth_neg=np.zeros(n, np.int64), v_init=np.clip(theta // 2, v_lo, v_hi))
        theta = vth << vth_shift
        return make_neuron(
            FixedMultiThreshold, (n,), **common, vth=vth, vth_shift=vth_shift,
            levels=int(r.integers(1, 8)), reset=ResetMode(r.choice(["subtract", "zero"])),
            v_init=np.clip(theta // 2, v_lo, v_hi),
        )

    def readout(self, n: int):
        st = self.state_fields()
        kw = {}
        if not self.loihi:
            kw = dict(u_bits=st["v_bits"], u_overflow=st["v_overflow"], du_offset=1)
        return make_neuron(FixedLI, (n,), du=self.decays(n), dv=self.decays(n),
                           bias_mant=self.rng.integers(-50, 50, n), **st, **kw)


def _payload_max(op) -> int:
    if isinstance(op, FixedMultiThreshold):
        return op.levels
    return 1


def random_fixed_graph(seed: int, profile: str = "loihi2", **knobs) -> Graph:
    """A random graph that passes ``verify`` for ``profile``; see the module docstring."""
    spec = get_profile(profile)
    gen = _Gen(seed, spec, knobs)
    r = gen.rng
    loihi = isinstance(spec, Loihi2Spec)
    k = dict(knobs)
    k.setdefault("overflow", gen.flag("overflow", 0.3))
    k.setdefault("cuba", gen.flag("cuba", 0.6))
    k.setdefault("neuron_kinds", ("lif",) if loihi else NEURON_KINDS)
    k.setdefault("resets", (ResetMode.ZERO,) if loihi else tuple(ResetMode))
    gen.k = k
    layers = gen.pick("layers", 1, 3)
    width = knobs.get("width")
    n_in = gen.pick("n_in", 2, 10)
    graded = gen.flag("graded", 0.4)
    payload_bits = gen.pick("payload_bits", 2, 8) if graded else 1
    delays = gen.flag("delays", 0.5)
    max_delay = min(int(knobs.get("max_delay", 4)), spec.max_edge_delay)
    conv = bool(knobs.get("conv", False))
    quant = bool(knobs.get("quantize_input", False))
    readout = knobs.get("readout") or ("spikes" if loihi or r.random() < 0.5 else "li")

    def delay(min_d: int = 0) -> int:
        if not delays and min_d == 0:
            return 0
        return int(r.integers(min_d, max(min_d, max_delay) + 1))

    b = GraphBuilder(f"rand_{profile}_p{payload_bits}_s{seed}")
    in_payload = (1 << (payload_bits - 1)) if graded else 1
    if conv:
        channels = 2
        b.add("in", Input(shape=(channels, n_in)))
        prev = "in"
    else:
        b.add("in", Input(shape=(n_in,)))
        prev = "in"
    if quant:
        shape = b._nodes["in"].shape
        bits = payload_bits if graded else 1
        b.add("q", Quantize(shape=shape, shift=int(r.integers(0, 4)) if graded else 0,
                            bits=bits, signed=graded))
        b.connect("in", "q")
        prev = "q"
    if conv:
        c_out, kern = 3, 3
        w = r.integers(-128, 128, (c_out, channels, kern))
        kw = (dict(weight_exp=np.zeros(c_out), acc_bits=24, acc_overflow=Overflow.WRAP) if loihi
              else dict(weight_exp=np.full(c_out, int(r.integers(-2, 2))), weight_bits=8))
        b.add("conv", FixedConv1d(weight=w, input_shape=(channels, n_in), padding=1, **kw))
        b.connect(prev, "conv", delay())
        b.add("flat", Flatten(input_shape=(c_out, n_in)))
        b.connect("conv", "flat")
        # a spiking layer after the conv keeps the drive bounded for the dense layers
        conv_op = b._nodes["conv"]
        conv_drive = float(np.abs(conv_op.weight).sum() / c_out) * in_payload * 0.3 + 1
        b.add("conv_n", gen.neuron("lif", c_out * n_in, conv_drive))
        b.connect("flat", "conv_n")
        prev, n_prev, prev_payload = "conv_n", c_out * n_in, 1
    else:
        n_prev, prev_payload = n_in, in_payload

    names: list[tuple[str, int, int]] = [(prev, n_prev, prev_payload)]
    for li in range(layers):
        n = int(width) if width is not None else int(r.integers(2, 13))
        kind = k["neuron_kinds"][int(r.integers(len(k["neuron_kinds"])))]
        recurrent = gen.flag("recurrent", 0.5)
        skip = li > 0 and gen.flag("skip", 0.3)
        fan = 1 + int(recurrent) + int(skip)
        dense = gen.weights(n, n_prev, prev_payload, fan)
        b.add(f"fc{li}", FixedDense(**dense))
        b.connect(prev, f"fc{li}", delay())
        drive = gen.typical_drive(dense, prev_payload)
        neuron = gen.neuron(kind, n, drive)
        b.add(f"n{li}", neuron)
        b.connect(f"fc{li}", f"n{li}")
        if skip:
            src, n_src, p_src = names[int(r.integers(len(names) - 1))]
            b.add(f"skip{li}", FixedDense(**gen.weights(n, n_src, p_src, fan)))
            b.connect(src, f"skip{li}", delay())
            b.connect(f"skip{li}", f"n{li}")
        if recurrent:
            b.add(f"rec{li}", FixedDense(**gen.weights(n, n, _payload_max(neuron), fan)))
            b.connect(f"n{li}", f"rec{li}", delay(1))
            b.connect(f"rec{li}", f"n{li}")
        prev, n_prev, prev_payload = f"n{li}", n, _payload_max(neuron)
        names.append((prev, n_prev, prev_payload))

    if readout == "li":
        dense = gen.weights(3, n_prev, prev_payload, 1)
        b.add("fc_out", FixedDense(**dense))
        b.connect(prev, "fc_out", delay())
        b.add("readout", gen.readout(3))
        b.connect("fc_out", "readout")
        prev, n_prev = "readout", 3
    b.add("out", Output(shape=(n_prev,)))
    b.connect(prev, "out")
    graph = b.build().with_attrs(domain=Domain.FIXED, profile=profile)
    problems = verify(graph)
    if problems:  # pragma: no cover - a generator bug
        raise AssertionError(f"random_fixed_graph(seed={seed}) is invalid: {problems[:3]}")
    return graph


def random_input(graph: Graph, steps: int, batch: int, seed: int, density: float = 0.3) -> np.ndarray:
    """Inputs for a random graph: 0/1 spikes, or signed payloads when the graph is graded
    (payload width from the graph name), or floats when the input feeds a Quantize node."""
    rng = np.random.default_rng(seed)
    shape = (steps, batch, *graph.nodes[graph.input_name].in_shape)
    m = _NAME_RE.search(graph.attrs.name)
    bits = int(m.group(1)) if m else 1
    readers = [graph.nodes[e.dst] for e in graph.out_edges(graph.input_name)]
    active = rng.random(shape) < density
    if readers and all(isinstance(op, Quantize) for op in readers):
        q = readers[0]
        lo, hi = q.limits
        scale = 2.0 ** -q.shift
        x = rng.uniform((lo - 0.5) * scale * 1.1, (hi + 0.5) * scale * 1.1, shape) * active
        return x.astype(np.float64)
    if bits <= 1:
        return active.astype(np.int64)
    half = 1 << (bits - 1)
    return (rng.integers(-half, half, shape) * active).astype(np.int64)

