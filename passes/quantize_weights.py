"""quantize_weights: snap every synapse weight to an integer mantissa times a power of two.

The graph stays float (so the float interpreter measures the effect); weights become exactly
``mantissa * 2^exponent`` in float32:
- neuron input gains are first folded into the synapses that feed only that neuron (exact up to
  float rounding), so the mantissas carry the whole synaptic scale;
- ``loihi2``: one exponent per matrix and Lava's weight rules (mixed-sign: even mantissas in
  [-254, 254]; single-sign: [0, 255] / [-255, 0]), so quantize_state maps them to Lava Dense
  weights without rounding again;
- ``fpga``: one exponent per output channel (``QuantizeOptions(per_channel=False)``: per layer),
  signed ``weight_bits`` mantissas (default 8) in a symmetric range.
Widths come from ``PrecisionOptions`` (``rsnn_compiler/precision.py``: global and per layer;
loihi2 accepts 1..8-bit weights, Lava's ``num_weight_bits``).
With calibration data (``ctx.calib_x``) each dense layer also tries one exponent finer (clipping
outlier weights) and keeps the one with the smaller output error on the layer's calibration
inputs; the report gives per-layer SQNR and clipped fraction and the spike agreement / accuracy
of the float graph before -> after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from rsnn_compiler.errors import PipelineError, UserInputError
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.passes import quant_common as Q
from rsnn_compiler.pass_options import QuantizeOptions
from rsnn_compiler.passes_api import PassContext, PassReport, Prop
from rsnn_compiler.precision import PrecisionOptions


@dataclass
class QuantizeWeightsReport(PassReport):
    profile: str = ""
    weight_bits: int = 0
    layers: list[dict] = field(default_factory=list)  # node, exponent(s), sqnr_db, clipped_fraction
    mean_sqnr_db: float = float("nan")
    min_sqnr_db: float = float("nan")
    clipped_fraction: float = 0.0
    gains_folded: int = 0
    spike_agreement: float | None = None  # float graph before vs after, on calibration data
    spike_recall: float | None = None
    prediction_agreement: float | None = None
    accuracy_before: float | None = None  # percent, on accuracy_data
    accuracy_after: float | None = None
    accuracy_data: str = ""


class QuantizeWeights:
    name: ClassVar[str] = "quantize_weights"
    option_types: ClassVar[tuple[type, ...]] = (PrecisionOptions, QuantizeOptions)
    requires: ClassVar[frozenset[str]] = frozenset({Prop.PRUNED})
    establishes: ClassVar[frozenset[str]] = frozenset({Prop.WEIGHTS_QUANTIZED})
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset({Prop.QUANTIZED})

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, QuantizeWeightsReport]:
        if Prop.PRUNED not in graph.attrs.properties:
            raise PipelineError(
                "quantize_weights needs a pruned graph; run pruning first (or record it as skipped)"
            )
        if graph.attrs.domain is not Domain.FLOAT:
            raise UserInputError("quantize_weights runs on a float graph; this one is already fixed")
        spec = Q.profile_spec(ctx.profile)
        precision = ctx.options.of(PrecisionOptions)
        Q.check_precision_layers(graph, precision)
        bits = Q.weight_bits(spec, precision, "")  # the global width (per-layer entries below)
        report = QuantizeWeightsReport(name=self.name, profile=spec.name, weight_bits=bits)
        graph, report.gains_folded = Q.fold_gains(graph)

        before = None
        if ctx.calib_x is not None:
            before = run_float(graph, ctx.calib_x)
        sqnrs, clipped_total, count = [], 0.0, 0
        for name, op in list(graph.nodes.items()):
            if not isinstance(op, Q.SYNAPSES):
                continue
            calib_in = Q.layer_inputs(graph, before, name) if before is not None else None
            layer_bits = Q.weight_bits(spec, precision, name)
            wq, exp, clipped = Q.grid_weights(op.weight, spec, layer_bits, calib_in, Q.is_conv(op),
                                              Q.per_channel(spec, ctx.options.of(QuantizeOptions)))
            graph = graph.with_node(name, op.replace(weight=wq.astype(np.float32)))
            s = Q.sqnr_db(op.weight, wq)
            sqnrs.append(s)
            clipped_total += clipped * op.weight.size
            count += op.weight.size
            report.layers.append({
                "node": name,
                "weight_bits": layer_bits,
                "exponent": exp.tolist() if np.ndim(exp) else int(exp),
                "sqnr_db": round(s, 2) if np.isfinite(s) else s,
                "clipped_fraction": clipped,
                "weights": int(op.weight.size),
            })
        finite = [s for s in sqnrs if np.isfinite(s)]
        if sqnrs:
            report.mean_sqnr_db = float(np.mean(finite)) if finite else float("inf")
            report.min_sqnr_db = float(np.min(sqnrs))
        report.clipped_fraction = clipped_total / count if count else 0.0
        if before is not None:
            after = run_float(graph, ctx.calib_x)
            stats = Q.spike_stats(before, after)
            report.spike_agreement = stats["spike_agreement"]
            report.spike_recall = stats["spike_recall"]
            report.prediction_agreement = Q.prediction_agreement(before, after)
            report.accuracy_before = Q.accuracy(before, ctx.calib_y)
            report.accuracy_after = Q.accuracy(after, ctx.calib_y)
            if ctx.calib_y is not None:
                report.accuracy_data = Q.calibration_label(ctx.calib_x)
        widths = sorted({layer["weight_bits"] for layer in report.layers}) or [bits]
        report.reason = (
            f"{len(report.layers)} synapse layers on the {spec.name} grid,"
            f" {'/'.join(map(str, widths))}-bit mantissas,"
            f" mean SQNR {report.mean_sqnr_db:.1f} dB"
        )
        return graph, report
