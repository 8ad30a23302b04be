"""quantize_state: turn a weight-quantized float graph into a fixed-point graph (domain FIXED).

Scales (docs/fixed-point.md): every neuron layer gets one power-of-two state scale S (membrane
and current in integer units = float value * S). S is the largest power of two with
- theta * S <= threshold budget (loihi2: 2^21, a quarter of the 24-bit v range; fpga:
  2^(state_bits - 3)), or for a LI readout max|v| * S <= 2^(v_bits - 2) (max|v| from the float
  run on ``ctx.calib_x``, else a weight bound);
- every incoming synapse's exponent within the profile range (loihi2 Dense e <= 7, Conv e = 0).
Edge values carry a scale sigma: spikes and graded counts 1, a Quantize node 2^shift, a LI
readout S. A synapse into a layer becomes mantissas of W * S / (sigma_in * 2^input_shift), which
is exact (no second rounding) when quantize_weights already snapped W to the grid.

Per neuron (decays 12-bit): dv = round((1 - beta) * 4096), du = round((1 - alpha) * 4096) - 1
(Lava's du + 1; du = 4095 for LIF/IF/LI without a current state), vth = round(theta * S) >> vth_shift,
v_init / v_reset = round(value * S), biases (neuron bias plus the feeding Affine biases, in v
units per step) as mantissa * 2^exponent (loihi2: 13-bit mantissa, exponent 0..7). An Affine
bias into a CUBA neuron enters the current: on fpga as the FixedDense bias (exact); on loihi2
(no Dense bias) as the equivalent steady-state v bias b / (1 - alpha) (noted in the report).
The float input becomes a Quantize node: 0/1 spikes pass as 1-bit values; analog inputs get
``input_bits`` (default 8) with the largest shift that holds max|x| of the calibration data.

With calibration data the report lists every state/accumulator the overflow rules changed
(saturation or wrap events) and the float -> fixed spike agreement and accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from rsnn_compiler.errors import PipelineError, UserInputError
from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.fixed.profiles import Loihi2Spec
from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import topology
from rsnn_compiler.ir.conversion_ops import DualThresholdIF, MultiThreshold
from rsnn_compiler.ir.fixed_ops import (
    FixedALIF, FixedConv1d, FixedConv2d, FixedDense, FixedDualIF, FixedLI, FixedLIF,
    FixedMultiThreshold, Quantize,
)
from rsnn_compiler.ir.graph import Domain, Edge, Graph
from rsnn_compiler.ir.ops import (
    ALIF, IF, LI, LIF, Affine, Conv1d, CubaLI, CubaLIF, Delay, Flatten, Identity, Input, NeuronOp,
    Output, Pool, PoolMode,
)
from rsnn_compiler.ir.catalogue import neuron_op_class
from rsnn_compiler.ir.dynamics import op_values
from rsnn_compiler.ir.verify import verify
from rsnn_compiler.neurons import EXTENSION_OF, FIXED_FAMILIES, QUANTIZE_RULES, REWRITES
from rsnn_compiler.passes import quant_common as Q
from rsnn_compiler.passes_api import PassContext, PassReport, Prop

STRUCTURAL = (Input, Output, Identity, Flatten, Delay, Pool)


@dataclass
class QuantizeStateReport(PassReport):
    profile: str = ""
    input: dict = field(default_factory=dict)  # shift, bits, signed, from ("calibration"/"assumed")
    layers: list[dict] = field(default_factory=list)  # node, kind, log2_scale, vth, du, dv, ...
    state_bits: int = 0
    overflow_events: dict = field(default_factory=dict)  # "<state>/<node>" -> count (calib run)
    saturating_states: list[str] = field(default_factory=list)
    spike_agreement: float | None = None  # float graph vs fixed graph on calibration data
    spike_recall: float | None = None
    spikes_float: float | None = None
    spikes_fixed: float | None = None
    prediction_agreement: float | None = None
    accuracy_float: float | None = None
    accuracy_fixed: float | None = None


def _r(x) -> np.ndarray:
    return arith.round_half_away(x)


def _decay(f: np.ndarray, offset: int = 0) -> np.ndarray:
    """12-bit decay constant from a float keep-factor: round((1 - f) * 4096) - offset in 0..4095."""
    return np.clip(_r((1.0 - np.asarray(f, np.float64)) * 4096) - offset, 0, 4095)


class _Builder:
    def __init__(self, graph: Graph, ctx: PassContext, report: QuantizeStateReport, float_run):
        self.g, self.ctx, self.report, self.float_run = graph, ctx, report, float_run
        self.spec = ctx.options.get("fixed_spec") or Q.profile_spec(ctx.profile)  # a subset of it
        self.loihi = isinstance(self.spec, Loihi2Spec)
        opts = ctx.options
        self.bits = Q.weight_bits(self.spec, opts)
        self.state_bits = 24 if self.loihi else int(opts.get("state_bits", self.spec.state_bits_default))
        self.acc_bits = int(opts.get("acc_bits", getattr(self.spec, "acc_bits_default", 32)))
        self.overflow = Overflow(opts.get("state_overflow", "saturate"))
        self.input_shift = 6 if self.loihi else 0
        self.vth_shift = 6 if self.loihi else 0
        self.nodes: dict = {}
        self.sigma: dict[str, float] = {}  # scale of each node's output
        self.scale: dict[str, int] = {}  # log2 S per neuron layer

    # --- scales ---------------------------------------------------------------------
    def sigma_of(self, name: str) -> float:
        if name in self.sigma:
            return self.sigma[name]
        op = self.g.nodes[name]
        if isinstance(op, NeuronOp) and op.spiking:
            return 1.0
        if isinstance(op, STRUCTURAL) and not isinstance(op, Input):
            ins = {self.sigma_of(e.src) for e in self.g.in_edges(name)}
            if len(ins) != 1:
                raise UserInputError(f"node '{name}' sums inputs of different scales; insert a synapse")
            return ins.pop()
        raise UserInputError(f"cannot quantize: the scale of node '{name}' is needed before it is known"
                             " (a non-spiking node inside a loop)")

    def theta_budget(self) -> float:
        return float(1 << 21) if self.loihi else float(1 << (self.state_bits - 3))

    def synapse_limit(self, syn, sigma_in: float) -> float:
        """Largest S keeping this synapse's exponent in range."""
        wmax = float(np.abs(syn.weight).max()) if syn.weight.size else 0.0
        if wmax == 0.0:
            return float("inf")
        if self.loihi and Q.is_conv(syn):
            mant, e_hi = 255.0, 0
        elif self.loihi:
            mant, e_hi = 254.0, self.spec.weight_exp_range[1]
        else:
            mant, e_hi = float((1 << (self.bits - 1)) - 1), self.spec.weight_exp_range[1]
        return mant * 2.0**e_hi * sigma_in * 2.0**self.input_shift / wmax

    # --- synapses -------------------------------------------------------------------
    def synapse(self, name: str, S: float, sigma_in: float, cuba_bias: np.ndarray | None):
        syn = self.g.nodes[name]
        w = syn.weight.astype(np.float64) * S / (sigma_in * 2.0**self.input_shift)
        if Q.is_conv(syn):
            cls = FixedConv1d if isinstance(syn, Conv1d) else FixedConv2d
            geo = dict(input_shape=syn.input_shape, stride=syn.stride, padding=syn.padding,
                       dilation=syn.dilation, groups=syn.groups)
        else:
            cls, geo = FixedDense, {}
        bias = None
        if self.loihi and Q.is_conv(syn):
            m = np.clip(_r(w), *self.spec.conv_weight_range)
            e = np.zeros(w.shape[0], np.int64)
            kw = dict(weight_bits=8, acc_bits=self.spec.conv_acc_bits, acc_overflow=self.spec.conv_acc_overflow)
        elif self.loihi:
            m, e0, _ = arith.encode_loihi_weights(w, 8, *self.spec.weight_exp_range)
            e = np.full(w.shape[0], e0)
            kw = dict(weight_bits=8, acc_bits=self.spec.dense_acc_bits, acc_overflow=self.spec.dense_acc_overflow)
        else:
            axis = 0 if Q.per_channel(self.spec, self.ctx.options) else None
            m, e = arith.encode_mant_exp(w, self.bits, *self.spec.weight_exp_range, axis=axis)
            e = np.broadcast_to(e, (w.shape[0],)).copy()
            kw = dict(weight_bits=self.bits, acc_bits=self.acc_bits, acc_overflow=self.overflow)
            if cuba_bias is not None:
                lo, hi = arith.signed_range(self.acc_bits)
                bias = np.clip(_r(cuba_bias * S / 2.0**self.input_shift), lo, hi)
        self.nodes[name] = cls(weight=m, weight_exp=e, bias=bias, **kw, **geo)

    # --- neurons --------------------------------------------------------------------
    def neuron(self, name: str) -> None:
        op = self._rewritten(name)
        ins = self.g.in_edges(name)
        syns = [e.src for e in ins]
        bad = [s for s in syns if not isinstance(self.g.nodes[s], Q.SYNAPSES)]
        if bad:
            raise UserInputError(
                f"cannot quantize neuron '{name}': its input '{bad[0]}' is not a synapse"
                " (Affine/Conv); insert a dense layer in front"
            )
        shared = [s for s in syns if len(self.g.out_edges(s)) != 1]
        if shared:
            raise UserInputError(
                f"cannot quantize synapse '{shared[0]}': it feeds several nodes, which may need"
                " different state scales; give each consumer its own copy of the layer"
            )
        gain = self._gain(op)
        if gain is not None:  # gain not folded by quantize_weights: apply it to the weights now
            for s in syns:
                syn = self.g.nodes[s]
                shape = (-1,) + (1,) * (syn.weight.ndim - 1)
                g = gain.reshape(syn.weight.shape[0], -1)[:, 0]
                self.g = self.g.with_node(s, syn.replace(
                    weight=syn.weight * g.reshape(shape).astype(np.float32),
                    bias=None if syn.bias is None else syn.bias * g.astype(np.float32)))
        sig = {s: self._sigma_in(s) for s in syns}
        limits = [self.synapse_limit(self.g.nodes[s], sig[s]) for s in syns]
        v_budget = float(1 << (self.state_bits - 2))
        if op.spiking:
            theta = float(np.max(op.theta)) if op.theta.size else 1.0
            if isinstance(op, MultiThreshold):  # m reaches (levels + 1) * theta before firing
                theta *= op.levels + 1
            elif hasattr(op, "levels"):  # a multi-spike family: as far as the calibration run reached
                theta = self._graded_bound(name, op, theta)
            limits.append(self.theta_budget() / max(theta, 1e-30))
            ext = EXTENSION_OF.get(op.family)
            for state in (ext.bound_states if ext is not None and self.float_run is not None else ()):
                reached = float(np.max(np.abs(self.float_run.states.get(f"{state}/{name}", 0.0)), initial=0.0))
                limits.append(v_budget / max(1.25 * reached, 1e-30))
        else:
            vmax = self._li_bound(name, op)
            limits.append(v_budget / max(vmax, 1e-30))
        k = Q.floor_pow2(min(limits))
        if self.loihi:
            k = max(k, 0)
        S = 2.0**k
        self.scale[name] = k
        cuba = isinstance(op, (CubaLIF, CubaLI))
        alpha = op.alpha.astype(np.float64) if cuba else None
        v_bias = (op.bias.astype(np.float64) if hasattr(op, "bias") else np.zeros(op.shape)) * S
        form = self._linear_form(op)
        if form is not None:  # an extension that says how its input and bias enter
            cuba, alpha = form.alpha is not None, form.alpha
            v_bias = np.broadcast_to(np.zeros(op.shape) if form.bias is None else form.bias, op.shape) * S
        for s in syns:
            syn = self.g.nodes[s]
            cb = None
            if syn.bias is not None:
                b = np.broadcast_to(syn.bias.reshape((-1,) + (1,) * (len(op.shape) - 1)), op.shape)
                if cuba and not self.loihi:
                    cb = syn.bias.astype(np.float64)
                elif cuba:
                    keep = 1.0 - (_decay(alpha, 1) + 1) / 4096.0
                    v_bias = v_bias + b * S / np.maximum(1.0 - keep, 1.0 / 4096)
                    self.report.notes.append(
                        f"{s}: bias into CUBA neuron '{name}' mapped to its steady-state v bias (loihi2)")
                else:
                    v_bias = v_bias + b * S
            self.synapse(s, S, sig[s], cb)
        self.nodes[name] = self._fixed_neuron(op, S, v_bias, cuba)
        self.sigma[name] = 1.0 if op.spiking else S
        info = {"node": name, "kind": type(self.nodes[name]).__name__, "log2_scale": k}
        fop = self.nodes[name]
        for p in ("vth", "du", "dv"):
            if hasattr(fop, p):
                arr = getattr(fop, p)
                info[p] = [int(arr.min()), int(arr.max())]
        self.report.layers.append(info)

    def _sigma_in(self, syn: str) -> float:
        """Scale of a synapse's summed input (every input edge must agree)."""
        scales = {self.sigma_of(e.src) for e in self.g.in_edges(syn)}
        if len(scales) > 1:
            raise UserInputError(f"synapse '{syn}' sums inputs of different scales; split the layer")
        return scales.pop() if scales else 1.0

    def _rewritten(self, name: str):
        """The node as the float family it quantizes as: a library's update form with an
        extension ``rewrite`` becomes the existing family with the same real-valued update."""
        op = self.g.nodes[name]
        if op.family not in REWRITES:
            return op
        family, values = REWRITES[op.family](op_values(op))
        new = neuron_op_class(Domain.FLOAT, family)(**values)
        self.g = self.g.with_node(name, new)
        self.report.notes.append(f"{name}: {op.family} quantized as {family} (the same update in real numbers)")
        return new

    @staticmethod
    def _linear_form(op):
        ext = EXTENSION_OF.get(op.family)
        return ext.linear(op_values(op)) if ext is not None and ext.linear is not None else None

    def _graded_bound(self, name: str, op, theta: float) -> float:
        """The largest membrane (in theta units times theta) a multi-spike population reached on the
        calibration run, with room for one more threshold; without calibration 4 thresholds."""
        if self.float_run is None or name not in self.float_run.spikes:
            return theta * min(op.levels + 1, 4)
        counts = float(np.max(self.float_run.spikes[name], initial=0.0))
        v = self.float_run.states.get(f"v/{name}")
        vmax = float(np.max(np.abs(v), initial=0.0)) if v is not None else 0.0
        return max(theta * (min(counts, op.levels) + 1) + vmax, theta)

    def _gain(self, op) -> np.ndarray | None:
        form = self._linear_form(op)
        if form is not None:
            g = None if form.gain is None else np.broadcast_to(form.gain, op.shape)
            return None if g is None or np.all(g == 1) else g
        g = None
        if isinstance(op, (LIF, IF, ALIF, LI)) or (op.family in QUANTIZE_RULES and hasattr(op, "gain")):
            g = op.gain.astype(np.float64)
        elif isinstance(op, (CubaLIF, CubaLI)):
            g = op.gain_i.astype(np.float64) * op.gain_v.astype(np.float64)
        return None if g is None or np.all(g == 1) else g

    def _li_bound(self, name: str, op) -> float:
        if self.float_run is not None and f"v/{name}" in self.float_run.states:
            v = np.abs(self.float_run.states[f"v/{name}"])
            m = float(v.max()) if v.size else 0.0
            if m > 0:
                return m * 1.25
        total = float(np.abs(op.bias).max()) if op.bias.size else 0.0
        for e in self.g.in_edges(name):
            syn = self.g.nodes[e.src]
            total += float(np.abs(syn.weight).reshape(syn.weight.shape[0], -1).sum(axis=1).max())
        beta = float(np.max(op.beta))
        return total / max(1.0 - beta, 1.0 / 64) / 4

    def _fixed_neuron(self, op, S: float, v_bias: np.ndarray, cuba: bool):
        spec = self.spec
        if self.loihi:
            bm, be = arith.encode_mant_exp(v_bias.reshape(-1), 13, *spec.bias_exp_range, axis=0)
        else:
            bm, be = arith.encode_mant_exp(v_bias.reshape(-1), spec.bias_mant_bits, *spec.bias_exp_range, axis=0)
        bm, be = bm.reshape(op.shape), np.broadcast_to(be.reshape(-1), (bm.size,)).reshape(op.shape)
        lo, hi = arith.signed_range(self.state_bits, Overflow.SATURATE_SYM)
        common = dict(bias_mant=bm, bias_exp=be, input_shift=self.input_shift, v_bits=self.state_bits)
        if self.loihi:
            common["v_overflow"] = spec.v_overflow
            cur = dict(u_bits=spec.u_bits, u_overflow=spec.u_overflow, du_offset=1)
        else:
            common["v_overflow"] = self.overflow
            cur = dict(u_bits=self.state_bits, u_overflow=self.overflow, du_offset=1)
        vth_hi = spec.vth_range[1] if self.loihi else (1 << spec.vth_bits) - 1

        def vth(theta):
            return np.clip(_r(theta.astype(np.float64) * S / 2.0**self.vth_shift), 1, vth_hi)

        def v(arr):
            return np.clip(_r(arr.astype(np.float64) * S), lo, hi)

        if op.family in QUANTIZE_RULES:  # a family added through the definition: its own rule
            fixed = QUANTIZE_RULES[op.family](op_values(op), S, dict(common, **cur, vth_shift=self.vth_shift))
            target = EXTENSION_OF[op.family].fixed_name
            names = FIXED_FAMILIES[target].param_names
            return neuron_op_class(Domain.FIXED, target)(**{k: v for k, v in fixed.items() if k in names})
        if isinstance(op, (DualThresholdIF, MultiThreshold)):
            if isinstance(op, DualThresholdIF):
                neg = np.clip(_r(op.theta_neg.astype(np.float64) * S / 2.0**self.vth_shift), -vth_hi, vth_hi)
                return FixedDualIF(**common, vth=vth(op.theta), vth_neg=neg, v_init=v(op.v_init),
                                   comparator=op.comparator, vth_shift=self.vth_shift)
            return FixedMultiThreshold(**common, vth=vth(op.theta), v_init=v(op.v_init), levels=op.levels,
                                       reset=op.reset, vth_shift=self.vth_shift)
        du = _decay(op.alpha, 1) if cuba else np.full(op.shape, 4095)
        dv = np.zeros(op.shape, np.int64) if isinstance(op, IF) else _decay(op.beta)
        if isinstance(op, (LI, CubaLI)):
            return FixedLI(**common, **cur, du=du, dv=dv, v_init=v(op.v_init))
        kw = dict(**common, **cur, du=du, dv=dv, vth=vth(op.theta), v_reset=v(op.v_reset),
                  v_init=v(op.v_init), reset=op.reset, comparator=op.comparator, vth_shift=self.vth_shift)
        if isinstance(op, ALIF):
            return FixedALIF(**kw, da=_decay(op.rho), a_inc=np.clip(_r(op.kappa.astype(np.float64) * S), 0, hi))
        return FixedLIF(**kw)

    # --- input ----------------------------------------------------------------------
    def input_quantizer(self, name: str) -> Quantize:
        op = self.g.nodes[name]
        x = self.ctx.calib_x
        opts = self.ctx.options
        if x is not None and np.isin(np.unique(x), (0.0, 1.0)).all():
            q = Quantize(shape=op.shape, shift=0, bits=1, signed=False)
            source = "calibration (binary spikes)"
        else:
            bits = int(opts.get("input_bits", 8))
            if x is not None:
                signed = bool(np.min(x) < 0)
                mx = float(np.abs(x).max()) or 1.0
                source = "calibration"
            else:
                signed, mx, source = True, 2.0, "assumed |x| <= 2 (no calibration data)"
            lim = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
            shift = int(np.clip(Q.floor_pow2(lim / mx), -16, 24))
            q = Quantize(shape=op.shape, shift=shift, bits=bits, signed=signed)
        self.report.input = {"shift": q.shift, "bits": q.bits, "signed": q.signed, "from": source}
        return q

    # --- driver ---------------------------------------------------------------------
    def build(self) -> Graph:
        g = self.g
        inp = g.input_name
        qname = f"{inp}.q"
        quant = self.input_quantizer(inp)
        self.sigma[inp] = 2.0**quant.shift
        for name in topology.evaluation_order(g):
            op = self.g.nodes[name]
            if isinstance(op, NeuronOp) and (isinstance(op, Q.FLOAT_NEURONS) or op.family in QUANTIZE_RULES
                                             or op.family in REWRITES):
                self.neuron(name)
        for name in g.nodes:
            op = self.g.nodes[name]
            if name in self.nodes:
                continue
            if isinstance(op, Pool) and op.mode is PoolMode.AVG:
                raise UserInputError(f"cannot quantize average pooling '{name}'; use sum pooling and"
                                     " fold 1/k into the next layer")
            if isinstance(op, STRUCTURAL):
                self.nodes[name] = op
            elif isinstance(op, Affine):
                self._free_affine(name)
            else:
                raise UserInputError(f"cannot quantize node '{name}' ({type(op).__name__})")
        nodes = {}
        for name in g.nodes:
            nodes[name] = self.nodes[name]
            if name == inp:
                nodes[qname] = quant
        edges = [Edge(inp, qname, 0)]
        edges += [Edge(qname if e.src == inp else e.src, e.dst, e.delay) for e in g.edges]
        return Graph(nodes, edges, g.attrs).with_attrs(domain=Domain.FIXED, profile=self.spec.name)

    def _free_affine(self, name: str) -> None:
        """An Affine not followed by a neuron (e.g. a linear readout): scale 2^-e of its grid."""
        syn = self.g.nodes[name]
        sigma_in = self._sigma_in(name)
        w = syn.weight.astype(np.float64) / sigma_in
        wmax = float(np.abs(w).max()) or 1.0
        mant = 254.0 if self.loihi else float((1 << (self.bits - 1)) - 1)
        S = 2.0 ** Q.floor_pow2(mant / wmax)
        saved = self.input_shift
        self.input_shift = 0
        if syn.bias is not None and self.loihi:
            self.report.notes.append(f"{name}: Lava Dense has no bias; the readout bias was dropped")
        self.synapse(name, S, sigma_in, syn.bias if not self.loihi and syn.bias is not None else None)
        self.input_shift = saved
        self.sigma[name] = S


class QuantizeState:
    name: ClassVar[str] = "quantize_state"
    requires: ClassVar[frozenset[str]] = frozenset({Prop.PRUNED, Prop.WEIGHTS_QUANTIZED})
    establishes: ClassVar[frozenset[str]] = frozenset({Prop.QUANTIZED})
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset({Prop.QUANTIZED})

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, QuantizeStateReport]:
        missing = [p for p in (Prop.PRUNED, Prop.WEIGHTS_QUANTIZED) if p not in graph.attrs.properties]
        if missing:
            raise PipelineError(
                f"quantize_state needs a '{missing[0]}' graph; run"
                f" {'pruning (or record it as skipped)' if missing[0] == Prop.PRUNED else 'quantize_weights'}"
                " before it (docs/design.md §5: prune -> quantize weights -> quantize state)"
            )
        if graph.attrs.domain is not Domain.FLOAT:
            raise UserInputError("quantize_state runs on a float graph; this one is already fixed")
        spec = Q.profile_spec(ctx.profile)
        report = QuantizeStateReport(name=self.name, profile=spec.name)
        float_run = run_float(graph, ctx.calib_x) if ctx.calib_x is not None else None
        builder = _Builder(graph, ctx, report, float_run)
        fixed = builder.build()
        report.state_bits = builder.state_bits
        problems = verify(fixed)
        if problems:
            raise UserInputError(f"quantize_state produced an invalid {spec.name} graph: {problems[0]}")
        if ctx.calib_x is not None:
            stats: dict[str, int] = {}
            fixed_run = run_fixed(fixed, ctx.calib_x, stats=stats)
            total = int(np.prod(ctx.calib_x.shape[:2]))
            report.overflow_events = {k: v for k, v in sorted(stats.items()) if v}
            report.saturating_states = sorted(report.overflow_events)
            agreement = Q.spike_stats(float_run, fixed_run)
            report.spike_agreement = agreement["spike_agreement"]
            report.spike_recall = agreement["spike_recall"]
            report.spikes_float = agreement["spikes_before"] / total
            report.spikes_fixed = agreement["spikes_after"] / total
            report.prediction_agreement = Q.prediction_agreement(float_run, fixed_run)
            report.accuracy_float = Q.accuracy(float_run, ctx.calib_y)
            report.accuracy_fixed = Q.accuracy(fixed_run, ctx.calib_y)
        report.reason = (
            f"{spec.name}: {len(report.layers)} neuron layers, {builder.state_bits}-bit states"
            + (f", spike agreement {report.spike_agreement:.3f}" if report.spike_agreement is not None else "")
        )
        return fixed, report
