"""``rsnnc sensitivity``: what each layer's bit width costs, and a mixed-precision proposal.

For a build with a float graph and a fixed-point graph, re-quantize the float graph with the
build's own passes and widths (``PrecisionOptions`` from its manifest) and the same calibration
data — which must reproduce the build's fixed-point graph exactly (same structural hash), so
every number below is about that build — then, one layer at a time, lower that layer's width:

- synapse layers: ``weight_bits`` to each candidate below the build's; the cost is the accuracy
  change (points) on the held-out data and the SQNR (dB) of the layer's quantized weights;
- neuron layers: ``state_bits`` (membrane) to each candidate below the build's; the cost is the
  accuracy change and the SQNR of the layer's membrane v (fixed v / 2^k against the float v) on
  the held-out data.

Also the accuracy with every neuron layer at each state width (``state_sweep``).

Proposal (``budget``: points below the build's accuracy): for each layer its lowest candidate
width whose own cost is within the budget; layers in order of bits saved (width reduction times
weights or neurons; ties by name), each added at that width, or the next wider candidate within
the budget, when the combined assignment stays within the budget (measured). Every run is the
exact integer interpreter and the quantization is deterministic, so the report is too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rsnn_compiler.accuracy import EvalData, accuracy_percent
from rsnn_compiler.artifact import MANIFEST, read_manifest
from rsnn_compiler.data import load_data
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.executors import load_build_graph, resolve_profile
from rsnn_compiler.fixed.profiles import get_profile
from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir.fixed_ops import FixedDense, FixedNeuron, _FixedConv
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.text import structural_hash
from rsnn_compiler.pass_manager import run_pipeline
from rsnn_compiler.passes_api import PassContext
from rsnn_compiler.precision import PrecisionOptions, parse_precision

WEIGHT_WIDTHS = (8, 6, 5, 4, 3, 2)
STATE_WIDTHS = (16, 12, 10, 8, 6, 5, 4, 3, 2)
DEFAULT_BUDGET = 1.0
SQNR_SAMPLES = 256  # held-out samples the membrane SQNR is measured on


@dataclass
class WidthCost:
    width: int
    accuracy: float  # percent on the held-out data
    delta: float  # points vs the build's accuracy (negative: a loss)
    sqnr_db: float | None  # weights (synapse) or membrane v on held-out data (neuron)


@dataclass
class LayerSensitivity:
    node: str
    kind: str  # "synapse" or "neuron"
    parameter: str  # "weight_bits" or "state_bits"
    width: int  # the build's width
    elements: int  # weights or neurons the width applies to
    sqnr_kind: str
    costs: list[WidthCost] = field(default_factory=list)


@dataclass
class SensitivityReport:
    build: str
    profile: str
    data: str  # held-out data label
    calibration: str
    float_accuracy: float
    build_accuracy: float
    budget: float
    layers: list[LayerSensitivity] = field(default_factory=list)
    state_sweep: list[dict] = field(default_factory=list)  # {"state_bits", "accuracy"}: every neuron layer
    proposal: dict = field(default_factory=dict)  # node -> {parameter: width}
    proposal_accuracy: float | None = None
    proposal_bits_saved: int = 0
    base_precision: dict = field(default_factory=dict)  # the build's widths (manifest options)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def precision_file(self) -> str:
        """The build's widths with the proposal applied, as a ``--precision`` TOML file."""
        measured = (f"measured {self.proposal_accuracy:.2f}%" if self.proposal_accuracy is not None
                    else "no layer could be narrowed within the budget")
        lines = [f"# rsnnc sensitivity {self.build}: within {self.budget:g} points of the build's"
                 f" {self.build_accuracy:.2f}% on {self.data}; {measured}"]
        layers = {n: dict(w) for n, w in self.base_precision.get("layers", {}).items()}
        for node, widths in self.proposal.items():
            layers.setdefault(node, {}).update(widths)
        lines += [f"{k} = {_toml(v)}" for k, v in sorted(self.base_precision.items()) if k != "layers"]
        for node, widths in sorted(layers.items()):
            lines.append(f'[layers."{node}"]')
            lines += [f"{k} = {_toml(v)}" for k, v in sorted(widths.items())]
        return "\n".join(lines) + "\n"


def _toml(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _round(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


class _Quantizer:
    """Re-runs the build's quantization passes with other widths."""

    def __init__(self, float_graph: Graph, profile: str, calib: tuple[np.ndarray, np.ndarray | None] | None):
        self.float_graph, self.profile = float_graph, profile
        self.calib_x, self.calib_y = calib if calib is not None else (None, None)
        if self.calib_x is not None and float_graph.attrs.steps:
            self.calib_x = self.calib_x[: float_graph.attrs.steps]
        self.reports: dict = {}

    def __call__(self, precision: PrecisionOptions) -> Graph:
        ctx = PassContext(calib_x=self.calib_x, calib_y=self.calib_y, profile=self.profile,
                          options=[precision])
        fixed, reports = run_pipeline(self.float_graph, ["quantize_weights", "quantize_state"], ctx)
        self.reports = {r.name: r for r in reports}
        return fixed


def _candidates(widths: tuple[int, ...], current: int, lo: int) -> list[int]:
    return sorted({w for w in widths if lo <= w < current}, reverse=True)


def _membrane_sqnr(fixed: Graph, float_graph: Graph, node: str, scale_log2: int, x: np.ndarray) -> float | None:
    ref = run_float(float_graph, x).states.get(f"v/{node}")
    got = run_fixed(fixed, x).states.get(f"v/{node}")
    if ref is None or got is None:
        return None
    ref = ref.astype(np.float64)
    err = float(np.sum((got.astype(np.float64) / 2.0**scale_log2 - ref) ** 2))
    sig = float(np.sum(ref**2))
    return float("inf") if err == 0 else 10 * np.log10(max(sig, 1e-300) / err)


def analyse(build: str | Path, holdout: str | Path, calib: str | Path | None, budget: float = DEFAULT_BUDGET,
            weight_widths: tuple[int, ...] = WEIGHT_WIDTHS, state_widths: tuple[int, ...] = STATE_WIDTHS,
            profile: str | None = None, progress=lambda msg: None) -> SensitivityReport:
    build = Path(build)
    if not (build / MANIFEST).is_file():
        raise UserInputError(f"{build} is not an rsnnc build (no {MANIFEST}); run `rsnnc build` first")
    if not (np.isfinite(budget) and budget >= 0):
        raise UserInputError(f"--budget {budget} must be a number of points >= 0")
    manifest = read_manifest(build)
    if manifest.get("finetuned_from"):
        raise UserInputError(f"{build} was fine-tuned (rsnnc finetune), so re-quantizing cannot reproduce it;"
                             f" run sensitivity on the build it came from ({manifest['finetuned_from']['build']})")
    if "float" not in manifest.get("graphs", {}):
        raise UserInputError(f"{build} has no float graph (it was built from a fixed-point graph); analyse a"
                             " build of the float model")
    profile = resolve_profile(manifest, Domain.FIXED, profile)
    recorded_calib = manifest.get("options", {}).get("calib")
    if recorded_calib and calib is None:
        raise UserInputError(f"{build} was calibrated on {recorded_calib}; pass it with --calib so the layers"
                             " are re-quantized the same way")
    data = EvalData.load(holdout, "held out")
    steps = manifest.get("steps")
    if steps and data.x.shape[0] > steps:
        data = EvalData(data.x[:steps], data.y, data.label, data.sha256)
    float_graph = load_build_graph(build, manifest, "float")
    base = parse_precision(manifest.get("options", {}).get("precision") or {}, "the build's precision")
    quantize = _Quantizer(float_graph, profile, load_data(calib) if calib else None)

    progress("re-quantizing the build's float graph (it must reproduce the build)")
    baseline = quantize(base)
    if structural_hash(baseline) != manifest["graphs"][profile]["hash"]:
        raise UserInputError(
            f"re-quantizing {build}'s float graph does not reproduce its {profile} graph; pass the calibration"
            f" data the build used (--calib {recorded_calib or 'none: omit --calib'})")
    spec = get_profile(profile)
    report = SensitivityReport(
        build=build.name, profile=profile, data=data.label, base_precision=base.to_json(),
        calibration=Path(calib).name if calib else "none", budget=float(budget),
        float_accuracy=_round(accuracy_percent(float_graph, data)),
        build_accuracy=_round(accuracy_percent(baseline, data)),
    )
    x_sqnr = data.x[:, :SQNR_SAMPLES]
    loihi = profile == "loihi2"
    w_lo = 1 if loihi else spec.weight_bits_range[0]
    for name, op in baseline.nodes.items():
        if isinstance(op, (FixedDense, _FixedConv)) and name in float_graph.nodes:
            layer = LayerSensitivity(name, "synapse", "weight_bits", int(op.weight_bits), int(op.weight.size),
                                     "weights")
            for w in _candidates(weight_widths, op.weight_bits, w_lo):
                progress(f"{name}: {w}-bit weights")
                g = quantize(base.with_layer(name, weight_bits=w))
                sq = next((r["sqnr_db"] for r in quantize.reports["quantize_weights"].layers if r["node"] == name), None)
                acc = accuracy_percent(g, data)
                layer.costs.append(WidthCost(w, _round(acc), _round(acc - report.build_accuracy), _round(sq)))
            report.layers.append(layer)
        elif isinstance(op, FixedNeuron) and not loihi:
            layer = LayerSensitivity(name, "neuron", "state_bits", int(op.v_bits), int(np.prod(op.shape)),
                                     "membrane v, held-out data")
            for w in _candidates(state_widths, op.v_bits, spec.state_bits_range[0]):
                progress(f"{name}: {w}-bit membrane")
                g = quantize(base.with_layer(name, state_bits=w))
                k = next(r["log2_scale"] for r in quantize.reports["quantize_state"].layers if r["node"] == name)
                acc = accuracy_percent(g, data)
                sq = _membrane_sqnr(g, float_graph, name, k, x_sqnr)
                layer.costs.append(WidthCost(w, _round(acc), _round(acc - report.build_accuracy), _round(sq)))
            report.layers.append(layer)
    if loihi:
        report.notes.append("loihi2 fixes 24-bit states: only weight widths (1..8 bits) are analysed")
    else:
        neurons = [layer.node for layer in report.layers if layer.kind == "neuron"]
        top = max((layer.width for layer in report.layers if layer.kind == "neuron"), default=0)
        for w in _candidates(state_widths, top + 1, spec.state_bits_range[0]):
            progress(f"every neuron layer at {w}-bit membranes")
            p = base
            for n in neurons:
                p = p.with_layer(n, state_bits=w)
            report.state_sweep.append({"state_bits": w, "accuracy": _round(accuracy_percent(quantize(p), data))})
    _propose(report, base, quantize, data)
    return report


def _propose(report: SensitivityReport, base: PrecisionOptions, quantize: _Quantizer, data: EvalData) -> None:
    budget, ref = report.budget, report.build_accuracy

    def saved(layer: LayerSensitivity, w: int) -> int:
        return (layer.width - w) * layer.elements

    choices = []
    for layer in report.layers:
        ok = [c.width for c in layer.costs if -c.delta <= budget + 1e-9]
        if ok:
            choices.append((layer, sorted(ok)))  # narrowest first
    choices.sort(key=lambda item: (-saved(item[0], item[1][0]), item[0].node))
    current = base
    for layer, widths in choices:
        for w in widths:
            trial = current.with_layer(layer.node, **{layer.parameter: w})
            acc = accuracy_percent(quantize(trial), data)
            if ref - acc <= budget + 1e-9:
                current = trial
                report.proposal.setdefault(layer.node, {})[layer.parameter] = w
                report.proposal_accuracy = _round(acc)
                report.proposal_bits_saved += saved(layer, w)
                break
    if not report.proposal:
        report.notes.append(f"no layer can be narrowed within {budget:g} points")


__all__ = ["DEFAULT_BUDGET", "STATE_WIDTHS", "SensitivityReport", "WEIGHT_WIDTHS", "analyse"]
