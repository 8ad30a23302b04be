"""quant_check: everything quantization changed about the model's behaviour, said out loud.

Runs after the fixed-point pipeline on (float graph before quantization, final fixed graph):

- **clamped parameters** (static): a threshold, reset, initial value or adaptation step whose
  ideal integer ``round(value * S / 2^shift)`` (S = the layer's state scale from quantize_state)
  lies outside what the profile can store, so the stored value differs (e.g. theta = 1e9 on
  loihi2 becomes vth = 131071, a negative theta becomes 1 LSB); a neuron bias (with the Affine
  biases folded into it) more than one mantissa step from the stored one; an Affine bias
  dropped because the profile's synapse has none and no neuron absorbs it;
- **weights** (static): nonzero float weights that became zero mantissas (a wide weight range
  under one exponent), and weights quantize_weights clipped;
- **behaviour on data**: the float and the fixed graph run on the calibration data (at most
  ``MAX_SAMPLES`` samples) or, without it, on ``uniform [0, 1)`` random inputs (seed 0,
  ``RANDOM_STEPS`` x ``RANDOM_BATCH``; binary spikes for a graph that takes
  integer inputs): every state or accumulator the overflow rules changed
  (saturation or wrap events), every spiking layer the fixed model silences or that keeps less
  than ``SPIKE_LOSS`` of its float spikes (or fires where the float model does not), the spike
  agreement over all spiking layers, prediction agreement and, with labels, both accuracies.

Each finding is one line in ``report.warnings`` (the build prints each on its own stderr line and
keeps them in the manifest). ``gate`` fails the build (exit 1) when the accuracy drop exceeds
``max_accuracy_drop`` points or the spike agreement is below ``min_spike_agreement``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rsnn_compiler.budget import require_run_within_budget, require_within_budget
from rsnn_compiler.errors import CheckFailed, UserInputError
from rsnn_compiler.fixed import arith
from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir.fixed_ops import FixedNeuron, Quantize
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.passes import quant_common as Q
from rsnn_compiler.passes_api import PassReport
from rsnn_compiler.pipeline import CHECK_STEP
from rsnn_compiler.validate import check_max_accuracy_drop

NAME = CHECK_STEP
MAX_SAMPLES = 256
RANDOM_STEPS = 32
RANDOM_BATCH = 16
RANDOM_SEED = 0
SPIKE_LOSS = 0.5  # a layer keeping less than half of its float spikes is reported
ZEROED_WARN = 0.10  # a layer losing more than 10 % of its nonzero weights to zero is reported

# float parameter -> (fixed parameter, divided by 2^vth_shift)
_PARAMS = {"theta": ("vth", True), "theta_neg": ("vth_neg", True), "v_reset": ("v_reset", False),
           "v_init": ("v_init", False), "kappa": ("a_inc", False)}
_STATE_OVERFLOW = {"v": "v_overflow", "i": "u_overflow", "a": "v_overflow", "acc": "acc_overflow"}


@dataclass
class QuantCheckReport(PassReport):
    data: str = ""  # what the behaviour checks ran on
    clamped: list[dict] = field(default_factory=list)  # node, parameter, neurons, of, example
    zeroed_weights: list[dict] = field(default_factory=list)  # node, fraction of nonzero weights
    clipped_weights: list[dict] = field(default_factory=list)  # node, fraction (quantize_weights)
    overflow_events: dict = field(default_factory=dict)  # "<state>/<node>" -> count
    layers: list[dict] = field(default_factory=list)  # node, float_spikes, fixed_spikes, agreement
    spike_agreement: float | None = None
    prediction_agreement: float | None = None
    accuracy_float: float | None = None
    accuracy_fixed: float | None = None
    accuracy_drop: float | None = None  # points
    max_accuracy_drop: float | None = None
    min_spike_agreement: float | None = None


def _scales(reports) -> dict[str, int]:
    """log2 state scale per neuron node, from quantize_state's report."""
    for r in reports:
        if r.name == "quantize_state":
            return {layer["node"]: int(layer["log2_scale"]) for layer in getattr(r, "layers", [])
                    if "log2_scale" in layer}
    return {}


def clamped_parameters(float_graph: Graph, fixed: Graph, scales: dict[str, int]) -> list[dict]:
    out = []
    for name, fop in fixed.nodes.items():
        op = float_graph.nodes.get(name)
        if not isinstance(fop, FixedNeuron) or op is None or name not in scales:
            continue
        S = 2.0 ** scales[name]
        for pname, (fname, shifted) in _PARAMS.items():
            if not (hasattr(op, pname) and hasattr(fop, fname)):
                continue
            value = np.asarray(getattr(op, pname), np.float64)
            unit = 2.0 ** int(getattr(fop, "vth_shift", 0)) if shifted else 1.0
            ideal = arith.round_half_away(value * S / unit)
            stored = np.asarray(getattr(fop, fname), np.int64)
            if ideal.shape != stored.shape:
                continue
            bad = ideal != stored
            if bad.any():
                i = tuple(np.argwhere(bad)[0])
                out.append({"node": name, "parameter": pname, "neurons": int(bad.sum()), "of": int(bad.size),
                            "value": float(value[i]), "represented": float(stored[i] * unit / S)})
    return out


def bias_losses(float_graph: Graph, fixed: Graph, scales: dict[str, int]) -> list[dict]:
    """Biases the fixed graph does not carry: a neuron bias (its own plus the Affine biases
    feeding it, times the gain and the state scale S) more than one mantissa step away from
    ``bias_mant * 2^bias_exp`` (clamped to the profile's range), and Affine biases dropped
    (loihi2 Dense has none) where no neuron absorbs them."""
    out = []
    for name, fop in fixed.nodes.items():
        op = float_graph.nodes.get(name)
        if op is None:
            continue
        if isinstance(fop, FixedNeuron) and name in scales and hasattr(op, "gain") and hasattr(op, "bias"):
            ins = [float_graph.nodes[e.src] for e in float_graph.in_edges(name)]
            if not all(isinstance(s, Q.SYNAPSES) and not Q.is_conv(s) for s in ins):
                continue
            total = np.asarray(op.bias, np.float64).copy()
            for syn in ins:
                if syn.bias is not None:
                    total = total + np.asarray(op.gain, np.float64) * np.asarray(syn.bias, np.float64).reshape(total.shape)
            ideal = total * 2.0 ** scales[name]
            step = np.exp2(np.asarray(fop.bias_exp, np.float64))
            stored = np.asarray(fop.bias_mant, np.float64) * step
            bad = np.abs(ideal - stored) > np.maximum(step, 1.0)
            if bad.any():
                i = tuple(np.argwhere(bad)[0])
                out.append({"node": name, "parameter": "bias", "neurons": int(bad.sum()), "of": int(bad.size),
                            "value": float(total[i]), "represented": float(stored[i] / 2.0 ** scales[name])})
        elif isinstance(op, Q.SYNAPSES) and op.bias is not None and np.any(op.bias != 0) and hasattr(fop, "bias"):
            consumers = [fixed.nodes[e.dst] for e in fixed.out_edges(name)]
            if (fop.bias is None or not np.any(fop.bias)) and not any(isinstance(c, FixedNeuron) for c in consumers):
                out.append({"node": name, "parameter": "bias", "neurons": int(np.count_nonzero(op.bias)),
                            "of": int(op.bias.size), "value": float(np.abs(op.bias).max()), "represented": 0.0,
                            "dropped": True})
    return out


def weight_losses(float_graph: Graph, fixed: Graph) -> list[dict]:
    out = []
    for name, fop in fixed.nodes.items():
        op = float_graph.nodes.get(name)
        if op is None or not isinstance(op, Q.SYNAPSES) or not hasattr(fop, "weight"):
            continue
        w, m = np.asarray(op.weight), np.asarray(fop.weight)
        if w.shape != m.shape:
            continue
        nonzero = int(np.count_nonzero(w))
        zeroed = int(np.count_nonzero((w != 0) & (m == 0)))
        if nonzero and zeroed / nonzero > ZEROED_WARN:
            out.append({"node": name, "zeroed": zeroed, "nonzero": nonzero, "fraction": zeroed / nonzero})
    return out


def takes_integers(fixed: Graph) -> bool:
    """Whether the fixed graph's Input feeds integer ops directly (no Quantize reads it: an
    imported integer network such as a netx file), so it runs on integer inputs only."""
    readers = [fixed.nodes[e.dst] for e in fixed.out_edges(fixed.input_name)]
    return not (readers and all(isinstance(r, Quantize) for r in readers))


def check_inputs(float_graph: Graph, calib_x: np.ndarray | None,
                 integers: bool = False) -> tuple[np.ndarray, str, str]:
    """The data the behaviour checks run on, its description and its short name. Random inputs
    are uniform [0, 1), or binary spikes (0/1 with probability 1/2) when ``integers``."""
    if calib_x is not None:
        x = calib_x[:, :MAX_SAMPLES]
        return x, f"calibration data ({x.shape[1]} samples x {x.shape[0]} steps)", "calibration data"
    steps = min(float_graph.attrs.steps or RANDOM_STEPS, RANDOM_STEPS)
    shape = tuple(float_graph.nodes[float_graph.input_name].out_shape)
    require_within_budget(4 * steps * RANDOM_BATCH * math.prod(shape), "random inputs for the quantization check")
    x = np.random.default_rng(RANDOM_SEED).random((steps, RANDOM_BATCH, *shape), dtype=np.float32)
    kind = "uniform [0, 1) random inputs"
    if integers:
        x, kind = (x < 0.5).astype(np.float32), "random binary spike inputs"
    return x, (f"{kind} (no --calib; seed {RANDOM_SEED}, {RANDOM_BATCH} samples x {steps}"
               " steps)"), "random inputs (no --calib)"


def _overflow_warning(fixed: Graph, key: str, count: int, data: str) -> str:
    kind, node = key.split("/", 1)
    mode = getattr(fixed.nodes.get(node), _STATE_OVERFLOW.get(kind, ""), None)
    verb = "wrapped" if mode is not None and "wrap" in mode.value else "saturated"
    what = "accumulator" if kind == "acc" else f"state {kind}"
    return f"{node}: {what} {verb} {count} time(s) on {data} (the float model has no such limit)"


def check_quantization(float_graph: Graph, fixed: Graph, reports, calib_x, calib_y) -> QuantCheckReport:
    report = QuantCheckReport(name=NAME)
    warn = report.warnings.append
    scales = _scales(reports)
    for c in clamped_parameters(float_graph, fixed, scales) + bias_losses(float_graph, fixed, scales):
        report.clamped.append(c)
        if c.get("dropped"):
            warn(f"{c['node']}: bias dropped for {c['neurons']} of {c['of']} output(s) (|bias| up to {c['value']:g});"
                 " the profile's synapses have no bias and no neuron absorbs it")
            continue
        warn(f"{c['node']}: {c['parameter']} clamped for {c['neurons']} of {c['of']} neuron(s)"
             f" ({c['value']:g} is stored as {c['represented']:g}, the nearest value the profile holds)")
    for z in weight_losses(float_graph, fixed):
        report.zeroed_weights.append(z)
        warn(f"{z['node']}: {z['zeroed']} of {z['nonzero']} nonzero weights ({100 * z['fraction']:.0f}%) became zero"
             " (the weight range is too wide for the mantissa bits under one exponent)")
    for r in reports:
        if r.name == "quantize_weights":
            for layer in getattr(r, "layers", []):
                if layer.get("clipped_fraction", 0) > 0:
                    report.clipped_weights.append({"node": layer["node"], "fraction": layer["clipped_fraction"]})
                    warn(f"{layer['node']}: {100 * layer['clipped_fraction']:.2f}% of its weights were clipped"
                         " to the largest mantissa")

    x, report.data, on = check_inputs(float_graph, calib_x, takes_integers(fixed))
    require_run_within_budget(float_graph, 2 * x.shape[0], x.shape[1], "the quantization check (float and fixed)")
    y = None if calib_y is None or calib_x is None else calib_y[:MAX_SAMPLES]
    float_run = run_float(float_graph, x)
    stats: dict[str, int] = {}
    fixed_run = run_fixed(fixed, x, stats=stats)
    report.overflow_events = {k: v for k, v in sorted(stats.items()) if v}
    for key, count in report.overflow_events.items():
        warn(_overflow_warning(fixed, key, count, on))
    for node, fs in float_run.spikes.items():
        qs = fixed_run.spikes.get(node)
        if qs is None or qs.shape != fs.shape:
            continue
        nf, nq = float(np.abs(fs).sum()), float(np.abs(np.asarray(qs, np.float64)).sum())
        report.layers.append({"node": node, "float_spikes": nf, "fixed_spikes": nq,
                              "agreement": float(np.mean(np.asarray(fs, np.float64) == np.asarray(qs, np.float64)))})
        if nf > 0 and nq == 0:
            warn(f"{node}: silenced by quantization (float fires {nf:g} spikes on {on}, fixed-point none)")
        elif nf > 0 and nq < SPIKE_LOSS * nf:
            warn(f"{node}: keeps only {100 * nq / nf:.0f}% of its float spikes on {on} ({nq:g} of {nf:g})")
        elif nf == 0 and nq > 0:
            warn(f"{node}: fires {nq:g} spikes on {on} where the float model fires none")
        elif nf > 0 and nq > nf / SPIKE_LOSS:
            warn(f"{node}: fires {nq / nf:.1f}x its float spikes on {on} ({nq:g} vs {nf:g})")
    stats_all = Q.spike_stats(float_run, fixed_run)
    agreement = stats_all["spike_agreement"]
    report.spike_agreement = None if agreement != agreement else float(agreement)
    report.prediction_agreement = Q.prediction_agreement(float_run, fixed_run)
    if y is not None:
        report.accuracy_float = Q.accuracy(float_run, y)
        report.accuracy_fixed = Q.accuracy(fixed_run, y)
        report.accuracy_drop = report.accuracy_float - report.accuracy_fixed  # both in percent
    parts = [f"{len(report.warnings)} warning(s)", f"checked on {report.data}"]
    if report.spike_agreement is not None:
        parts.append(f"spike agreement {report.spike_agreement:.3f}")
    report.reason = ", ".join(parts)
    return report


def check_limits(max_accuracy_drop: float | None, min_spike_agreement: float | None, has_labels: bool) -> None:
    """Refuse meaningless gate options before anything runs (NaN would disable a check)."""
    check_max_accuracy_drop(max_accuracy_drop, has_labels)
    if min_spike_agreement is not None and not (0.0 <= min_spike_agreement <= 1.0):
        raise UserInputError(f"--min-spike-agreement {min_spike_agreement} must be a fraction in [0, 1]")


def gate(report: QuantCheckReport, max_accuracy_drop: float | None, min_spike_agreement: float | None) -> None:
    """Fail the build (exit 1) when quantization lost more than allowed."""
    report.max_accuracy_drop, report.min_spike_agreement = max_accuracy_drop, min_spike_agreement
    if max_accuracy_drop is not None and report.accuracy_drop is not None and report.accuracy_drop > max_accuracy_drop:
        raise CheckFailed(
            f"quantization drops accuracy {report.accuracy_drop:.2f} points ({report.accuracy_float:.2f}% ->"
            f" {report.accuracy_fixed:.2f}% on {report.data}), more than --max-accuracy-drop {max_accuracy_drop}"
        )
    agreement = report.spike_agreement  # None: no spiking layer, nothing to agree on
    if min_spike_agreement is not None and agreement is not None and agreement < min_spike_agreement:
        raise CheckFailed(
            f"float vs fixed-point spike agreement {agreement:.4f} on {report.data} is below"
            f" --min-spike-agreement {min_spike_agreement}"
        )
