"""ANN -> SNN conversion driver: options, calibration activations, method dispatch, report.

``convert(ann, options, calib_x, calib_y)`` folds BN, chooses one ``SitePlan`` per activation
call site with the selected method (``maxnorm``, ``ecl``, ``sfn``), builds the float SNN graph
(``snn_build``) and measures it (``conversion_report``). The importers call
``convert_and_report``. Options come from ``ImportOptions.extra["convert"]``:
``method``, ``steps`` (T), ``levels`` (N) and ``opts`` (method knobs, strings or numbers):

    percentile  maxnorm threshold percentile (100 = max, default)
    v_init      maxnorm initial membrane: zero (default) or half
    theta_neg   ecl negative threshold in units of theta (default 0)
    epochs, lr  ecl fine-tune (default 40, 3e-3)
    finetune    ecl: auto (default: fine-tune whenever --calib is given, unless every site is a
                QCFS staircase with T levels; ReLU sites need it), always, never
    ft_forward  ecl fine-tune forward: snn (exact T-step dual-IF SNN, straight-through staircase
                gradients; default) or staircase (the T-level staircase ANN)
    temperature ecl fine-tune distillation temperature (default 4)
    ce          ecl fine-tune cross-entropy weight when labels are given (default 0: distil only)
    search      threshold-scale search on the calibration data: sfn at T = 1 (default on),
                ecl with the SNN simulated at T (default off: it overfits small calibration sets)
    compensate  ecl: per-channel bias compensation of the mean conversion error at T (default off)
    readout     li (memoryless LI neuron, default; needed by Lava) or synapse
    report_samples  calibration samples used for the report (default 512)
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from rsnn_compiler import progress
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions, ImportReport, ImportResult
from rsnn_compiler.frontends import conversion_report as cr
from rsnn_compiler.frontends.ann_graph import AnnGraph, fold_batchnorm, forward
from rsnn_compiler.frontends.ecl import (
    compensate_bias, finetune_clip, needs_finetune, plan_ecl, refine_thresholds,
)
from rsnn_compiler.frontends.maxnorm import plan_maxnorm
from rsnn_compiler.frontends.sfn import plan_sfn
from rsnn_compiler.frontends.snn_build import BuiltSnn, SitePlan, build_snn


class Method(enum.Enum):
    MAXNORM = "maxnorm"
    ECL = "ecl"
    SFN = "sfn"


DEFAULT_STEPS = {Method.MAXNORM: 8, Method.ECL: 2, Method.SFN: 1}
REPORT_STEPS = (1, 2, 4, 8)
ECL_SEARCH_SAMPLES = 1024
LAYER_COLUMNS = ("node", "neuron", "theta", "levels", "v_init", "clipping_error", "quantisation_error",
                 "unevenness_error", "messages_per_sample", "origin")


@dataclass
class ConvertOptions:
    method: Method = Method.SFN
    steps: int | None = None
    levels: int | None = None
    percentile: float = 100.0
    half_init: bool = False
    theta_neg: float = 0.0
    epochs: int = 40
    lr: float = 3e-3
    temperature: float = 4.0  # ecl fine-tune: distillation temperature
    ce: float = 0.0  # ecl fine-tune: cross-entropy weight (labels)
    ft_forward: str = "snn"  # ecl fine-tune forward: snn (exact T-step dual IF) or staircase
    search: bool | None = None  # threshold-scale search: None = the method's default (sfn on, ecl off)
    compensate: bool = False  # ecl: per-channel bias compensation of the mean error at T
    finetune: str = "auto"  # ecl: auto (ReLU sites only), always, never
    readout: str = "li"  # li (memoryless LI neuron) or synapse (last synapse feeds Output)
    report_samples: int = 512
    seed: int = 0

    @property
    def t(self) -> int:
        return self.steps or DEFAULT_STEPS[self.method]

    @classmethod
    def from_dict(cls, d: dict | None) -> "ConvertOptions":
        d = dict(d or {})
        try:
            method = Method(d.pop("method", None) or "sfn")
        except ValueError:
            raise UserInputError(f"--convert must be one of: {', '.join(m.value for m in Method)}") from None
        o = cls(method=method, steps=d.pop("steps", None), levels=d.pop("levels", None))
        opts = dict(d.pop("opts", {}) or {})
        opts.update(d)
        conv = {"percentile": float, "theta_neg": float, "epochs": int, "lr": float,
                "temperature": float, "ce": float, "report_samples": int, "seed": int}
        for key, value in opts.items():
            if key in conv:
                try:
                    setattr(o, key, conv[key](value))
                except ValueError:
                    raise UserInputError(f"--convert-opt {key}={value}: not a number") from None
            elif key == "v_init":
                if str(value) not in ("zero", "half"):
                    raise UserInputError("--convert-opt v_init must be zero or half")
                o.half_init = str(value) == "half"
            elif key == "finetune":
                if str(value) not in ("auto", "always", "never"):
                    raise UserInputError("--convert-opt finetune must be auto, always or never")
                o.finetune = str(value)
            elif key == "ft_forward":
                if str(value) not in ("snn", "staircase"):
                    raise UserInputError("--convert-opt ft_forward must be snn or staircase")
                o.ft_forward = str(value)
            elif key == "readout":
                if str(value) not in ("li", "synapse"):
                    raise UserInputError("--convert-opt readout must be li or synapse")
                o.readout = str(value)
            elif key in ("search", "compensate"):
                setattr(o, key, str(value).lower() not in ("0", "false", "no", "off"))
            else:
                raise UserInputError(
                    f"unknown conversion option '{key}'; known: percentile, v_init, theta_neg, epochs, lr,"
                    " finetune, ft_forward, temperature, ce, readout, search, compensate, report_samples, seed")
        if o.steps is not None and int(o.steps) < 1:
            raise UserInputError("--steps must be >= 1")
        if o.levels is not None and int(o.levels) < 1:
            raise UserInputError("--levels must be >= 1")
        o.steps = None if o.steps is None else int(o.steps)
        o.levels = None if o.levels is None else int(o.levels)
        return o


@dataclass
class ConversionReport(ImportReport):
    method: str = ""
    steps: int = 0
    levels: int | None = None
    calibration_samples: int = 0
    layers: list = field(default_factory=list)  # per site: neuron, thresholds, origin, errors, messages
    accuracy: dict = field(default_factory=dict)  # ann, snn per T, agreement with the ANN per T
    messages_per_sample: float = 0.0
    payload_per_sample: float = 0.0
    method_details: dict = field(default_factory=dict)
    layer_columns: list = field(default_factory=lambda: list(LAYER_COLUMNS))  # for `rsnnc report`


@dataclass
class Conversion:
    built: BuiltSnn
    plans: dict[str, SitePlan]
    ann: AnnGraph  # the ANN actually converted (BN folded; fine-tuned for ecl on ReLU ANNs)
    details: dict


def static_input(calib_x: np.ndarray | None) -> np.ndarray | None:
    """Calibration x (T, batch, *features) -> the ANN's static input (batch, *features)."""
    if calib_x is None:
        return None
    x = np.asarray(calib_x, np.float32)
    return x[0] if x.ndim >= 3 else x


def site_activations(ann: AnnGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        vals = forward(ann, x, record=True)
    return {n.name: vals[n.name].numpy() for n in ann.acts()}


def convert(ann: AnnGraph, opts: ConvertOptions, x: np.ndarray | None, y: np.ndarray | None,
            name: str = "converted") -> Conversion:
    progress.step(f"converting the ANN ({opts.method.value}, T={opts.t})")
    ann, folded = fold_batchnorm(ann)
    details: dict = {"batchnorms_folded": folded}
    acts = site_activations(ann, x) if x is not None else None
    if opts.method is Method.MAXNORM:
        plans = plan_maxnorm(ann, acts, opts.percentile, opts.half_init)
    elif opts.method is Method.SFN:
        plans, info = plan_sfn(ann, x, acts, opts.levels, opts.t, opts.search is not False)
        details["search"] = {"alphas": info.alphas, "kl_before": info.kl_before, "kl_after": info.kl_after,
                             "exact_sites": info.exact_sites}
    else:
        origin = "activation's clip level"
        if opts.finetune == "always" or (opts.finetune == "auto" and needs_finetune(ann, opts.t, x is not None)):
            if x is None:
                raise UserInputError("ecl learns its clipping thresholds on data: give --calib FILE.npz")
            if opts.temperature <= 0 or opts.ce < 0 or opts.epochs < 0:
                raise UserInputError("--convert-opt temperature must be > 0, ce and epochs >= 0")
            ann, info = finetune_clip(ann, x, y, acts, opts.t, opts.epochs, opts.lr, opts.seed,
                                      theta_neg=opts.theta_neg, temperature=opts.temperature,
                                      ce_weight=opts.ce, forward_mode=opts.ft_forward)
            details["finetune"] = info.__dict__
            origin = "learned by fine-tuning"
        plans = plan_ecl(ann, opts.theta_neg, origin)
        if opts.search is True and x is not None:
            alphas = refine_thresholds(ann, plans, x[:ECL_SEARCH_SAMPLES], opts.t, opts.theta_neg)
            details["threshold_scale"] = alphas
            for site, a in alphas.items():
                plans[site].origin += f" x {a:g} (searched at T={opts.t})"
        if opts.compensate and x is not None:
            ann, shifts = compensate_bias(ann, plans, x[:ECL_SEARCH_SAMPLES], opts.t)
            details["bias_compensation"] = shifts
    built = build_snn(ann, plans, name, opts.readout)
    return Conversion(built, plans, ann, details)


def _layer_rows(conv: Conversion, errors: list[cr.LayerErrors] | None) -> list[dict]:
    by_site = {e.site: e for e in errors or []}
    rows = []
    for node in conv.ann.acts():
        p = conv.plans[node.name]
        row = {
            "node": conv.built.neuron_of[node.name], "ann_activation": node.p("spec").describe(),
            "neuron": p.neuron.value, "theta": p.theta, "unit": p.unit, "levels": p.levels,
            "v_init": p.v_init, "theta_neg": p.theta_neg, "clip_level": p.ceiling, "origin": p.origin,
        }
        if node.name in by_site:
            e = by_site[node.name]
            row.update(clipping_error=round(e.clipping, 4), quantisation_error=round(e.quantisation, 4),
                       unevenness_error=round(e.unevenness, 4),
                       messages_per_sample=round(e.messages_per_sample, 2),
                       payload_per_sample=round(e.payload_per_sample, 2))
        row.update(site=node.name, where=node.where)
        rows.append(row)
    return rows


def convert_and_report(ann: AnnGraph, options: ImportOptions, source: str, fmt: str, start: float) -> ImportResult:
    """Convert with ``options.extra['convert']`` and return the graph with a ConversionReport."""
    opts = ConvertOptions.from_dict(options.extra.get("convert"))
    x = static_input(options.calib_x)
    y = getattr(options, "calib_y", None)
    if y is None:
        y = options.extra.get("calib_y")
    if x is not None and tuple(x.shape[1:]) != tuple(ann.input_shape):
        raise UserInputError(f"calibration x has features {tuple(x.shape[1:])} but the ANN takes {tuple(ann.input_shape)}")
    conv = convert(ann, opts, x, y, name=fmt.replace(".", "_") + "_converted")
    graph = conv.built.graph
    notes = list(ann.notes) + conv.built.notes
    if options.calib_x is not None and np.asarray(options.calib_x).shape[0] > 1 and \
            not np.allclose(options.calib_x, options.calib_x[:1]):
        notes.append("calibration x varies over time: the ANN was calibrated on its first step")
    errors = acc = None
    if x is not None:
        xs = x[: opts.report_samples]
        ys = None if y is None else np.asarray(y)[: opts.report_samples]
        progress.step(f"conversion report: errors and accuracy on {len(xs)} samples")
        errors = cr.error_split(conv.built, conv.plans, xs, opts.t)
        steps = sorted(set(REPORT_STEPS) | {opts.t}) if opts.method is not Method.SFN else sorted({1, opts.t})
        acc = cr.accuracies(conv.ann, graph, xs, ys, steps)
        # measured on the calibration data the conversion was fitted to: say so (not a test accuracy)
        acc["data"] = f"calibration data ({len(xs)} samples; the conversion was calibrated on it)"
        # ANN accuracy is the original ANN's (before any fine-tune)
        if ys is not None:
            with torch.no_grad():
                acc["ann"] = round(100.0 * float((forward(fold_batchnorm(ann)[0], xs).argmax(1).numpy() == ys).mean()), 2)
    rows = _layer_rows(conv, errors)
    report = ConversionReport(
        name="import", source=source, source_format=fmt, dt=None, dt_origin="not needed (discrete conversion)",
        reset="subtract (soft reset)" if opts.method is not Method.SFN or opts.t > 1 else "zero (memoryless one-step neuron)",
        reset_origin=f"--convert {opts.method.value}",
        discretisation=f"ANN conversion: run with x of shape (T={opts.t}, batch, *features), the same input every step",
        nodes=len(graph.nodes), edges=len(graph.edges), notes=notes, changed=True,
        reason=f"{fmt} ANN, {len(rows)} activation site(s) -> {opts.method.value} at T={opts.t}",
        method=opts.method.value, steps=opts.t,
        levels=max([p.levels for p in conv.plans.values()], default=None) if opts.method is Method.SFN else None,
        calibration_samples=0 if x is None else int(len(x)), layers=rows, accuracy=acc or {},
        messages_per_sample=round(sum(e.messages_per_sample for e in errors or []), 2),
        payload_per_sample=round(sum(e.payload_per_sample for e in errors or []), 2),
        method_details=conv.details,
        wall_time_s=time.perf_counter() - start,
    )
    if acc:
        report.fidelity = {"agreement_with_ann_percent": acc.get("agreement", {})}
    return ImportResult(graph, report)
