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
    ALIF, IF, LI, LIF, Affine, Comparator, Conv1d, CubaLI, CubaLIF, Delay, Flatten, Identity, Input,
    NeuronOp, Output, Pool, PoolMode,
)
from rsnn_compiler.ir.catalogue import neuron_op_class
from rsnn_compiler.ir.dynamics import op_values
from rsnn_compiler.ir.verify import verify
from rsnn_compiler.neurons import EXTENSION_OF, FIXED_FAMILIES, QUANTIZE_RULES, REWRITES
from rsnn_compiler.passes import quant_common as Q
from rsnn_compiler.pass_options import QuantizeOptions
from rsnn_compiler.passes_api import PassContext, PassReport, Prop
from rsnn_compiler.precision import PrecisionOptions

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
    accuracy_float: float | None = None  # percent, on accuracy_data
    accuracy_fixed: float | None = None
    accuracy_data: str = ""
    scale_calibration: list[dict] = field(default_factory=list)  # few-bit membranes: chosen log2 S


def _r(x) -> np.ndarray:
    return arith.round_half_away(x)


def _decay(f: np.ndarray, offset: int = 0) -> np.ndarray:
    """12-bit decay constant from a float keep-factor: round((1 - f) * 4096) - offset in 0..4095."""
    return np.clip(_r((1.0 - np.asarray(f, np.float64)) * 4096) - offset, 0, 4095)


class _Builder:
    def __init__(self, graph: Graph, ctx: PassContext, report: QuantizeStateReport, float_run,
                 precision: PrecisionOptions, scale_override: dict[str, int] | None = None,
                 bias_correction: dict[str, np.ndarray] | None = None):
        self.g, self.ctx, self.report, self.float_run = graph, ctx, report, float_run
        self.spec = ctx.options.of(QuantizeOptions).spec or Q.profile_spec(ctx.profile)  # a subset of it
        self.loihi = isinstance(self.spec, Loihi2Spec)
        self.precision = precision
        if self.loihi:
            wide = [k for k in ("state_bits", "current_bits", "acc_bits", "state_overflow")
                    if getattr(precision.default, k) is not None
                    or any(getattr(lp, k) is not None for _n, lp in precision.layers)]
            if wide:
                raise UserInputError(f"the loihi2 profile fixes {wide[0]} (Lava's 24-bit states, int32"
                                     " accumulators); use --profile fpga to choose it")
        self.state_bits = self.layer_state_bits("")  # the global width (reports)
        self.overflow = precision.default.state_overflow or Overflow.SATURATE
        self.acc_overflow = Overflow.WRAP if self.overflow is Overflow.WRAP else Overflow.SATURATE
        self.input_shift = 6 if self.loihi else 0
        self.vth_shift = 6 if self.loihi else 0
        self.nodes: dict = {}
        self.sigma: dict[str, float] = {}  # scale of each node's output
        self.scale: dict[str, int] = {}  # log2 S per neuron layer
        self.scale_rule: dict[str, int] = {}  # what the threshold rule alone gives
        self.scale_max: dict[str, float] = {}  # largest log2 S the synapse exponents allow
        self.scale_override = dict(scale_override or {})
        self.bias_correction = dict(bias_correction or {})  # v units per step, added to a layer's bias

    # --- widths ---------------------------------------------------------------------
    def wbits(self, syn: str) -> int:
        return Q.weight_bits(self.spec, self.precision, syn)

    def acc_bits(self, syn: str) -> int:
        bits = self.precision.layer(syn).acc_bits
        return getattr(self.spec, "acc_bits_default", 32) if bits is None else bits

    def layer_state_bits(self, neuron: str) -> int:
        if self.loihi:
            return 24
        bits = self.precision.layer(neuron).state_bits
        return self.spec.state_bits_default if bits is None else bits

    def layer_current_bits(self, neuron: str) -> int:
        bits = self.precision.layer(neuron).current_bits
        return self.layer_state_bits(neuron) if bits is None else bits

    def layer_overflow(self, neuron: str) -> Overflow:
        return self.precision.layer(neuron).state_overflow or self.overflow

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

    def theta_budget(self, state_bits: int) -> float:
        """theta * S <= this: a quarter of the positive v range (loihi2: 2^21 of 24 bits)."""
        return float(1 << 21) if self.loihi else 2.0 ** (state_bits - 3)

    def synapse_limit(self, name: str, sigma_in: float) -> float:
        """Largest S keeping this synapse's exponent in range."""
        syn = self.g.nodes[name]
        wmax = float(np.abs(syn.weight).max()) if syn.weight.size else 0.0
        if wmax == 0.0:
            return float("inf")
        if self.loihi and Q.is_conv(syn):
            mant, e_hi = 255.0, 0
        elif self.loihi:
            mant, e_hi = 254.0, self.spec.weight_exp_range[1]
        else:
            mant, e_hi = float((1 << (self.wbits(name) - 1)) - 1), self.spec.weight_exp_range[1]
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
            bits = self.wbits(name)
            m, e0, _ = arith.encode_loihi_weights(w, bits, *self.spec.weight_exp_range)
            e = np.full(w.shape[0], e0)
            kw = dict(weight_bits=bits, acc_bits=self.spec.dense_acc_bits, acc_overflow=self.spec.dense_acc_overflow)
        else:
            axis = 0 if Q.per_channel(self.spec, self.ctx.options.of(QuantizeOptions)) else None
            bits, acc_bits = self.wbits(name), self.acc_bits(name)
            m, e = arith.encode_mant_exp(w, bits, *self.spec.weight_exp_range, axis=axis)
            e = np.broadcast_to(e, (w.shape[0],)).copy()
            kw = dict(weight_bits=bits, acc_bits=acc_bits, acc_overflow=self.acc_overflow)
            if cuba_bias is not None:
                lo, hi = arith.signed_range(acc_bits)
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
        limits = [self.synapse_limit(s, sig[s]) for s in syns]
        state_bits = self.layer_state_bits(name)
        v_budget = 2.0 ** (state_bits - 2)
        hard = min(limits) if limits else float("inf")
        if op.spiking:
            theta = float(np.max(op.theta)) if op.theta.size else 1.0
            if isinstance(op, MultiThreshold):  # m reaches (levels + 1) * theta before firing
                theta *= op.levels + 1
            elif hasattr(op, "levels"):  # a multi-spike family: as far as the calibration run reached
                theta = self._graded_bound(name, op, theta)
            limits.append(self.theta_budget(state_bits) / max(theta, 1e-30))
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
        self.scale_rule[name] = k
        self.scale_max[name] = Q.floor_pow2(hard) if np.isfinite(hard) else float("inf")
        if name in self.scale_override:  # calibrated scale (QuantizeState._calibrate_scales)
            k = self.scale_override[name]
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
        if name in self.bias_correction:  # calibrated rounding-bias correction (few-bit membranes)
            v_bias = v_bias + self.bias_correction[name].reshape(op.shape)
        self.nodes[name] = self._fixed_neuron(name, op, S, v_bias, cuba)
        self.sigma[name] = 1.0 if op.spiking else S
        info = {"node": name, "kind": type(self.nodes[name]).__name__, "log2_scale": k,
                "state_bits": state_bits}
        if k != self.scale_rule[name]:
            info["log2_scale_rule"] = self.scale_rule[name]
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

    def _fixed_neuron(self, name: str, op, S: float, v_bias: np.ndarray, cuba: bool):
        spec = self.spec
        state_bits, overflow = self.layer_state_bits(name), self.layer_overflow(name)
        if self.loihi:
            bm, be = arith.encode_mant_exp(v_bias.reshape(-1), 13, *spec.bias_exp_range, axis=0)
        else:
            # the bias is added as the integer shift(bias_mant, bias_exp) every step: a negative
            # exponent would floor it each time, so encode the nearest integer (exponent >= 0)
            bm, be = arith.encode_mant_exp(_r(v_bias.reshape(-1)), spec.bias_mant_bits,
                                           max(spec.bias_exp_range[0], 0), spec.bias_exp_range[1], axis=0)
        bm, be = bm.reshape(op.shape), np.broadcast_to(be.reshape(-1), (bm.size,)).reshape(op.shape)
        lo, hi = arith.signed_range(state_bits, Overflow.SATURATE_SYM)
        common = dict(bias_mant=bm, bias_exp=be, input_shift=self.input_shift, v_bits=state_bits)
        if self.loihi:
            common["v_overflow"] = spec.v_overflow
            cur = dict(u_bits=spec.u_bits, u_overflow=spec.u_overflow, du_offset=1)
        else:
            common["v_overflow"] = overflow
            cur = dict(u_bits=self.layer_current_bits(name), u_overflow=overflow, du_offset=1)
        vth_hi = spec.vth_range[1] if self.loihi else (1 << spec.vth_bits) - 1
        v_top = arith.signed_range(state_bits, overflow)[1]  # the largest membrane value

        def vth(theta):
            return np.clip(_r(theta.astype(np.float64) * S / 2.0**self.vth_shift), 1, vth_hi)

        comparator = getattr(op, "comparator", None)
        if (comparator is Comparator.GT and not self.loihi and op.spiking
                and int(vth(op.theta).max()) >= v_top):
            # a few-bit membrane whose threshold sits at its top level could never exceed it:
            # fire on reaching it (>=), the one integer reading of "v > theta" that can fire
            comparator = Comparator.GE
            self.report.notes.append(
                f"{name}: {state_bits}-bit membrane with the threshold at its top level {v_top}:"
                " spikes when v reaches it (comparator ge; gt could never fire)")
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
                                   comparator=comparator, vth_shift=self.vth_shift)
            return FixedMultiThreshold(**common, vth=vth(op.theta), v_init=v(op.v_init), levels=op.levels,
                                       reset=op.reset, vth_shift=self.vth_shift)
        du = _decay(op.alpha, 1) if cuba else np.full(op.shape, 4095)
        dv = np.zeros(op.shape, np.int64) if isinstance(op, IF) else _decay(op.beta)
        if isinstance(op, (LI, CubaLI)):
            return FixedLI(**common, **cur, du=du, dv=dv, v_init=v(op.v_init))
        kw = dict(**common, **cur, du=du, dv=dv, vth=vth(op.theta), v_reset=v(op.v_reset),
                  v_init=v(op.v_init), reset=op.reset, comparator=comparator, vth_shift=self.vth_shift)
        if isinstance(op, ALIF):
            return FixedALIF(**kw, da=_decay(op.rho), a_inc=np.clip(_r(op.kappa.astype(np.float64) * S), 0, hi))
        return FixedLIF(**kw)

    # --- input ----------------------------------------------------------------------
    def input_quantizer(self, name: str) -> Quantize:
        op = self.g.nodes[name]
        x = self.ctx.calib_x
        if x is not None and np.isin(np.unique(x), (0.0, 1.0)).all():
            q = Quantize(shape=op.shape, shift=0, bits=1, signed=False)
            source = "calibration (binary spikes)"
        else:
            bits = self.precision.input_bits or 8
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
        mant = 254.0 if self.loihi else float((1 << (self.wbits(name) - 1)) - 1)
        S = 2.0 ** Q.floor_pow2(mant / wmax)
        saved = self.input_shift
        self.input_shift = 0
        if syn.bias is not None and self.loihi:
            self.report.notes.append(f"{name}: Lava Dense has no bias; the readout bias was dropped")
        self.synapse(name, S, sigma_in, syn.bias if not self.loihi and syn.bias is not None else None)
        self.input_shift = saved
        self.sigma[name] = S


CALIBRATION_SAMPLES = 256  # samples of the calibration data the scale search runs on
SCALE_STEPS = (-1, 1, 2, 3)  # log2 S candidates around the threshold rule's


def _f1(a: np.ndarray, b: np.ndarray) -> float:
    """Spike-count overlap 2·Σmin(|a|,|b|) / (Σ|a| + Σ|b|) (1 when both are silent)."""
    a, b = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64))
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.minimum(a, b).sum() / total)


def _edge_input(graph: Graph, run, name: str) -> np.ndarray:
    """The summed integer input of node ``name`` at every recorded step (float64)."""
    total = None
    for e in graph.in_edges(name):
        v = run.values[e.src].astype(np.float64)
        if e.delay:
            v = np.concatenate([np.zeros_like(v[: e.delay]), v[: -e.delay]])[: len(v)]
        total = v if total is None else total + v
    return total


def drive_rounding_error(graph: Graph, run, name: str) -> np.ndarray | None:
    """Per neuron of ``name``: the mean over steps and samples of what its integer synapses deliver
    minus the exact value of their sums (``acc · 2^e + bias``), in v units — the bias that the
    floor of a right shift adds every step (about -1/2 per active synapse). None when a synapse
    is not a FixedDense."""
    total = 0.0
    for e in graph.in_edges(name):
        syn = graph.nodes[e.src]
        if not isinstance(syn, FixedDense):
            return None
        x = _edge_input(graph, run, e.src)
        exact = (x @ syn.weight.T.astype(np.float64)) * np.exp2(syn.weight_exp.astype(np.float64))
        if syn.bias is not None:
            exact = exact + syn.bias
        err = run.values[e.src].astype(np.float64) - exact
        total = total + err.reshape(-1, err.shape[-1]).mean(axis=0)
    return None if np.isscalar(total) else total


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    err = float(np.sum((ref - got) ** 2))
    return float("inf") if err == 0 else 10.0 * np.log10(max(float(np.sum(ref**2)), 1e-300) / err)


class QuantizeState:
    """Float graph -> fixed graph; the module docstring has the equations.

    Few-bit membranes (``state_scale``: "calibrate", or "auto" for states of at most 8 bits
    when calibration data exists) are calibrated per neuron layer in evaluation order, on the
    first 256 calibration samples:
    - bias correction: a synapse's right shift floors its output every step (about -1/2 of a
      membrane step per active synapse, which at a few bits is a large share of the threshold);
      the mean rounding error per neuron (``drive_rounding_error``) is measured and its rounded
      negative added to the neuron's bias;
    - scale: log2 S is chosen among the threshold rule's k and k-1, k+1, k+2, k+3 (within the
      synapse exponent range, threshold inside the membrane range), each with its own bias
      correction, to maximise the agreement with the float graph: spike-count overlap
      2·Σmin/(Σ+Σ) of that layer's spikes, or the SQNR of a LI readout's v. Ties keep the rule's k.
    Deterministic.
    """

    name: ClassVar[str] = "quantize_state"
    option_types: ClassVar[tuple[type, ...]] = (PrecisionOptions, QuantizeOptions)
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
        precision = ctx.options.of(PrecisionOptions)
        Q.check_precision_layers(graph, precision)
        report = QuantizeStateReport(name=self.name, profile=spec.name)
        float_run = run_float(graph, ctx.calib_x) if ctx.calib_x is not None else None
        builder = _Builder(graph, ctx, report, float_run, precision)
        fixed = builder.build()
        calibrate = self._layers_to_calibrate(builder, precision, float_run)
        if calibrate:
            overrides, corrections = self._calibrate_scales(graph, ctx, float_run, precision, calibrate)
            report = QuantizeStateReport(name=self.name, profile=spec.name)
            builder = _Builder(graph, ctx, report, float_run, precision, overrides, corrections)
            fixed = builder.build()
            report.scale_calibration = self.calibration
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
            if ctx.calib_y is not None:
                report.accuracy_data = Q.calibration_label(ctx.calib_x)
        report.reason = (
            f"{spec.name}: {len(report.layers)} neuron layers, {builder.state_bits}-bit states"
            + (f", spike agreement {report.spike_agreement:.3f}" if report.spike_agreement is not None else "")
        )
        return fixed, report

    # --- calibrated scales of few-bit membranes -------------------------------------------
    calibration: list[dict]

    @staticmethod
    def _layers_to_calibrate(builder: _Builder, precision: PrecisionOptions, float_run) -> list[str]:
        if builder.loihi or float_run is None or precision.state_scale == "threshold":
            return []
        layers = list(builder.scale_rule)
        if precision.state_scale == "auto":
            layers = [n for n in layers if builder.layer_state_bits(n) <= 8]
        return layers

    def _calibrate_scales(self, graph: Graph, ctx: PassContext, float_run, precision: PrecisionOptions,
                          layers: list[str]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        x = ctx.calib_x[:, :CALIBRATION_SAMPLES]
        ref = run_float(graph, x) if x.shape[1] != ctx.calib_x.shape[1] else float_run
        overrides: dict[str, int] = {}
        corrections: dict[str, np.ndarray] = {}
        self.calibration = []

        def trial(k_over: dict, corr: dict):
            b = _Builder(graph, ctx, QuantizeStateReport(name=self.name), float_run, precision, k_over, corr)
            fixed = b.build()
            return fixed, run_fixed(fixed, x)

        for name in layers:
            base = _Builder(graph, ctx, QuantizeStateReport(name=self.name), float_run, precision, overrides,
                            corrections)
            base.build()
            rule, top = base.scale_rule[name], base.scale_max[name]
            scores: dict[int, float] = {}
            fixes: dict[int, np.ndarray] = {}
            for k in [rule, *(rule + d for d in SCALE_STEPS)]:
                if k > top:
                    continue
                try:
                    fixed, run = trial({**overrides, name: k}, corrections)
                except UserInputError:
                    continue
                op = fixed.nodes[name]
                if k != rule and verify(fixed):
                    continue
                if k != rule and getattr(op, "vth", None) is not None and op.spiking:
                    v_top = arith.signed_range(op.v_bits, op.v_overflow)[1]
                    if int(op.vth.max()) > v_top - (getattr(op, "comparator", None) is Comparator.GT):
                        continue  # the threshold would leave the membrane range
                err = drive_rounding_error(fixed, run, name)
                fix = None if err is None else _r(-err)
                if fix is not None and np.any(fix):
                    try:
                        fixed, run = trial({**overrides, name: k}, {**corrections, name: fix})
                    except UserInputError:
                        fix = None
                        fixed, run = trial({**overrides, name: k}, corrections)
                fixes[k] = fix
                if op.spiking:
                    scores[k] = _f1(ref.spikes[name], run.spikes[name])
                else:
                    scores[k] = _sqnr(ref.states[f"v/{name}"], run.states[f"v/{name}"] / 2.0**k)
            best = max(scores, key=lambda k: (scores[k], k == rule, -abs(k - rule)))
            overrides[name] = best
            if fixes.get(best) is not None and np.any(fixes[best]):
                corrections[name] = fixes[best]
            self.calibration.append({
                "node": name, "log2_scale_rule": rule, "log2_scale": best,
                "metric": "spike overlap" if graph.nodes[name].spiking else "v SQNR (dB)",
                "scores": {str(k): round(v, 4) for k, v in sorted(scores.items())},
                "bias_correction": None if name not in corrections else
                [int(corrections[name].min()), int(corrections[name].max())],
            })
        return overrides, corrections
