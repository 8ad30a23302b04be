"""``rsnnc build``: import -> float passes -> per-profile quantization -> accuracy check -> emit.

The resolved pipeline is explicit and recorded in the manifest. Float pipeline:
``canonicalize -> prune``; when a target runs integers, the build's one fixed-point profile
(see ``resolve_profile``) then gets ``quantize_weights -> quantize_state``. Pruning that is off
(or not available) is recorded as skipped. A fixed-point input (a ``graph.<profile>.rsnn``, e.g.
from ``rsnnc finetune``) is built as it is: no float passes, no re-quantization, only the
targets' lowering passes. With labelled data (``holdout``, else the calibration data) the
accuracy of every step is measured and checked (``rsnn_compiler/accuracy.py``). Everything is
written atomically into the build directory (``write_build``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from rsnn_compiler import __version__
from rsnn_compiler.accuracy import AccuracyRecord, EvalData, accuracy_percent, check_tolerance, enforce
from rsnn_compiler.accuracy import DEFAULT_TOLERANCE
from rsnn_compiler.artifact import (
    MANIFEST, TIMINGS, atomic_directory, check_output_folder, file_hashes, output_path, sha256_file, write_json,
)
from rsnn_compiler.budget import require_run_within_budget
from rsnn_compiler.data import load_data
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.profiles import LOIHI2_NETX
from rsnn_compiler.frontend_api import ImportOptions, ImportResult, parse_factory_args
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Comparator, ResetMode
from rsnn_compiler.ir.serialize import save_graph
from rsnn_compiler.ir.text import structural_hash, to_text
from rsnn_compiler.pass_manager import SkippedStep, run_pipeline
from rsnn_compiler.pipeline import PRUNE_STEP, fixed_pipeline, float_pipeline_names
from rsnn_compiler.passes_api import PassContext, PassReport, Prop
from rsnn_compiler.pass_options import (
    PruneSpatialOptions, PruneTemporalOptions, QuantizeOptions, RetargetStockOptions, StockNeurons,
)
from rsnn_compiler.precision import PrecisionOptions
from rsnn_compiler import registry
from rsnn_compiler.target_api import TargetCheckError
from rsnn_compiler.user_code import guard

FLOAT_GRAPH = "graph.float.rsnn"
WARNING_NOTE = "WARNING:"  # a pass or importer note that changes results: also a build warning
DEFAULT_TARGETS = ("ir",)


#: samples of --calib the quantization passes calibrate on by default: their time and memory grow
#: with the samples (4 000 samples of the bundled model: 5.8 s and 1.3 GB; the first 1 024: 3.3 s,
#: 0.5 GB, the same fixed-point graph byte for byte)
CALIB_SAMPLES = 1024


@dataclass
class BuildOptions:
    targets: tuple[str, ...] = DEFAULT_TARGETS
    dt: float | None = None
    reset: str | None = None
    comparator: str | None = None
    nir_source: str | None = None  # library that wrote a NIR input (None: detect)
    weights: str | None = None
    factory_args: str | None = None  # JSON object of keyword arguments for a factory
    initial_weights: bool = False
    trust_checkpoint: bool = False
    calib: str | None = None
    calib_samples: int = CALIB_SAMPLES  # quantization calibrates on the first N samples of calib (0: all)
    prune: float | None = None
    profile: str | None = None  # fixed-point profile; default: what a target requires, else fpga
    board: str | None = None  # Loihi 2 board for targets that map onto one (lava); None: its default
    precision: PrecisionOptions | None = None  # bit widths (None: the profile's defaults)
    holdout: str | None = None  # labelled held-out data: accuracy is reported and checked on it
    accuracy_tolerance: float = DEFAULT_TOLERANCE  # points below the float model before the build stops
    accept_accuracy_loss: bool = False  # record and warn instead of stopping
    verify_each: bool = False
    force: bool = False  # -o may replace a folder that is not an rsnnc build
    max_accuracy_drop: float | None = None  # points, float -> fixed on --calib (exit 1 beyond)
    min_spike_agreement: float | None = None  # fraction, float vs fixed spikes (exit 1 below)
    convert: dict | None = None  # ANN conversion (--convert/--steps/--levels/--convert-opt; frontends/ann_convert.py)
    pruning: PruneSpatialOptions = PruneSpatialOptions()  # prune_spatial's settings; its fraction is ``prune``
    time_pruning: PruneTemporalOptions = PruneTemporalOptions()  # prune_temporal (runs with --prune)
    stock: RetargetStockOptions | None = None  # --stock-neurons: retarget_stock runs

    @property
    def spatial_pruning(self) -> PruneSpatialOptions:
        """``pruning`` with its fraction from ``prune`` (--prune)."""
        return replace(self.pruning, fraction=self.prune)

    def pass_options(self) -> list:
        """The typed options the build's float and fixed pipelines read (targets add theirs)."""
        return [self.spatial_pruning, self.time_pruning, self.stock, self.precision]


@dataclass
class BuildResult:
    outdir: Path
    manifest: dict
    reports: list[PassReport]


def graph_file(profile: str | None) -> str:
    return f"graph.{profile or 'float'}.rsnn"


def _is_python_spec(source: str) -> bool:
    """``pkg.module:factory`` or ``path/to/model.py:factory``."""
    if ":" not in source or Path(source).exists():
        return False
    module = source.rpartition(":")[0]
    return module.endswith(".py") or "/" not in module


def import_model(source: str, options: ImportOptions) -> ImportResult:
    """Pick the frontend by file suffix (or ``pkg.module:factory``) and import."""
    if _is_python_spec(source):
        spec = registry.PYTHON_ANN_FRONTEND if options.extra.get("convert") else registry.PYTHON_FRONTEND
    else:
        path = Path(source)
        if not path.exists():
            raise UserInputError(f"input {source} not found; give a .nir, .onnx or .rsnn file, or pkg.module:factory")
        spec = registry.FRONTENDS.get(path.suffix.lower())
        if spec is None:
            known = ", ".join(sorted(registry.FRONTENDS))
            raise UserInputError(
                f"no importer for '{path.suffix or path.name}' files; supported: {known} and pkg.module:factory"
            )
    try:
        load = registry.resolve(spec)
    except (ImportError, AttributeError):
        raise UserInputError(f"the importer for {source} is not available in this installation") from None
    with guard(f"the model code of {source}"):  # sys.exit / os._exit / BaseException in user code
        return load(source, options)


def source_label(source: str) -> str:
    """How the manifest names an input: a file by its base name (so a build does not depend on
    the working directory or how the path was written), ``pkg.module:factory`` as given."""
    return os.path.basename(source) if Path(source).exists() else source


def _input_digest(source: str, options: BuildOptions) -> str:
    h = hashlib.sha256()
    model_file = Path(source.rpartition(":")[0]) if _is_python_spec(source) else None
    if Path(source).is_file():
        h.update(sha256_file(Path(source)).encode())
    else:
        h.update(source.encode())
        if model_file is not None and model_file.is_file():
            h.update(sha256_file(model_file).encode())
    if options.factory_args:
        h.update(options.factory_args.encode())
    if options.weights and Path(options.weights).is_file():
        h.update(sha256_file(Path(options.weights)).encode())
    return h.hexdigest()


def _enum_option(value: str | None, enum_cls, flag: str):
    if value is None:
        return None
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum_cls)
        raise UserInputError(f"{flag} '{value}' is not one of: {choices}") from None


def float_pipeline(options: BuildOptions) -> list:
    steps: list = []
    for name in float_pipeline_names(options.prune is not None, options.stock is not None):
        if name != PRUNE_STEP:
            steps.append(name)
            continue
        reason = (
            "pruning is off (enable with --prune FRACTION)"
            if options.prune is None
            else "no pruning pass is available in this version"
        )
        steps.append(SkippedStep(PRUNE_STEP, reason, frozenset({Prop.PRUNED})))
    return steps


PROFILES = ("loihi2", "fpga")
QUANTIZE_STEPS = ("quantize_weights", "quantize_state")  # skipped for an imported integer graph


def resolve_profile(backends, requested: str | None) -> str | None:
    """One fixed-point profile per build (None when no target runs integers)."""
    if requested is not None and requested not in PROFILES:
        raise UserInputError(f"--profile '{requested}' is not one of: {', '.join(PROFILES)}")
    required = {b.requires_profile for b in backends if b.requires_profile}
    if len(required) > 1:
        raise UserInputError(f"targets require different fixed-point profiles ({', '.join(sorted(required))}); build them separately")
    if requested and required and requested not in required:
        raise UserInputError(
            f"--profile {requested} conflicts with target '{next(b.name for b in backends if b.requires_profile)}',"
            f" which needs {next(iter(required))}; drop --profile or that target"
        )
    if not any(b.uses_fixed for b in backends):
        if requested:
            raise UserInputError(f"--profile {requested} needs a fixed-point target (c, gpu or lava)")
        return None
    return requested or (next(iter(required)) if required else "fpga")


def _nested_wall_times(report: dict) -> dict:
    """Move every ``wall_time_s`` inside a report (e.g. the ecl fine-tune's) out of it, so the
    manifest stays deterministic: ``{"nested": {"metrics.method_details.finetune": seconds}}``."""
    found: dict[str, float] = {}

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            if "wall_time_s" in node and path:
                found[path] = node.pop("wall_time_s")
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")

    walk(report, "")
    return {"nested": found} if found else {}


def _step_name(step) -> str:
    return step if isinstance(step, str) else step.name


def _calib_count(options: BuildOptions, calib_x) -> int:
    """Samples of ``calib_x`` the quantization passes use (``calib_samples``; 0: all)."""
    n = int(calib_x.shape[1])
    return min(n, options.calib_samples) if options.calib_samples else n


def _cap_calibration(ctx: PassContext, options: BuildOptions, progress) -> str | None:
    """Keep the first ``calib_samples`` samples of the calibration data for the quantization
    passes (the float pipeline, pruning's fine-tune included, has run on all of them); returns
    the note the quantization reports carry, None when nothing was cut."""
    if ctx.calib_x is None:
        return None
    n, keep = int(ctx.calib_x.shape[1]), _calib_count(options, ctx.calib_x)
    if keep >= n:
        return None
    ctx.calib_x = ctx.calib_x[:, :keep]
    if ctx.calib_y is not None:
        ctx.calib_y = ctx.calib_y[:keep]
    note = (f"quantization calibrated on the first {keep} of the {n} samples of --calib"
            f" (--calib-samples; 0 uses every sample)")
    progress(note)
    return note


def _accuracy_data(options: BuildOptions, calib_x, calib_y) -> EvalData | None:
    """Labelled data the build's accuracy is measured on: ``holdout``, else labelled calibration
    data (named as training data when a fine-tune trained on it). Refuses a held-out file that is
    also a fine-tune's training data."""
    tune_path = options.pruning.finetune_data
    tunes_on_calib = options.spatial_pruning.tunes_on_calib
    stock_path = options.stock.data if options.stock is not None else None
    stock_on_calib = options.stock is not None and options.stock.tunes_on_calib
    if options.holdout:
        data = EvalData.load(options.holdout, "held out")
        sources = [(tune_path, "pruning"), (options.calib if tunes_on_calib else None, "pruning"),
                   (stock_path, "stock-neuron"), (options.calib if stock_on_calib else None, "stock-neuron")]
        trained = [who for p, who in sources
                   if p and Path(p).is_file() and sha256_file(Path(p)) == data.sha256]
        if trained:
            raise UserInputError(f"--holdout {options.holdout} is also the {trained[0]} fine-tune's training data;"
                                 " give a held-out file the model is not tuned on")
        return data
    if calib_y is None:
        return None
    tuners = [name for name, on in (("pruning", tunes_on_calib), ("stock-neuron", stock_on_calib)) if on]
    role = f"calibration data, also the {' and '.join(tuners)} fine-tune's training data" if tuners \
        else "calibration data"
    return EvalData(calib_x, calib_y, f"{Path(options.calib).name} ({calib_x.shape[1]} samples, {role})")


def _describe_widths(graph: Graph) -> str:
    from rsnn_compiler.ir.fixed_ops import FixedDense, FixedNeuron, _FixedConv

    w = sorted({op.weight_bits for op in graph.nodes.values() if isinstance(op, (FixedDense, _FixedConv))})
    v = sorted({op.v_bits for op in graph.nodes.values() if isinstance(op, FixedNeuron)})
    fmt = lambda xs: "/".join(map(str, xs)) or "-"  # noqa: E731
    return f"{fmt(w)}-bit weights, {fmt(v)}-bit states"


def measure_accuracy(data: EvalData | None, options: BuildOptions, source_graph: Graph, float_graph: Graph | None,
                     fixed: dict[str, Graph], progress) -> AccuracyRecord | None:
    """Accuracy (%) of the imported model and of each step after it, on ``data``."""
    if data is None:
        return None
    progress(f"measuring accuracy on {data.label}")
    record = AccuracyRecord(data=data.label, float_model=accuracy_percent(source_graph, data),
                            tolerance=check_tolerance(options.accuracy_tolerance),
                            accepted_loss=options.accept_accuracy_loss)
    stock = options.stock.mode.value if options.stock is not None else None
    if float_graph is not None and (stock or options.prune is not None):
        step = " + ".join(([f"stock neurons ({stock})"] if stock else [])
                          + (["pruning"] if options.prune is not None else []))
        fixes = (["fine-tune longer on more data (--stock-finetune EPOCHS --stock-data TRAIN.npz)"] if stock else []) \
            + (["fine-tune after pruning (--prune-finetune 5 --finetune-data TRAIN.npz) or prune less"]
               if options.prune is not None else [])
        record.add(step, accuracy_percent(float_graph, data), "; ".join(fixes))
    for profile, graph in fixed.items():
        record.add(f"quantization ({profile}: {_describe_widths(graph)})", accuracy_percent(graph, data),
                   "use wider widths (--weight-bits/--state-bits; `rsnnc sensitivity` shows which layers"
                   " need them) or recover it with `rsnnc finetune` on a build made with --accept-accuracy-loss")
    return record


def build(
    source: str,
    outdir: str | Path,
    options: BuildOptions,
    progress: Callable[[str], None] = lambda msg: None,
    imported: ImportResult | None = None,
    warn: Callable[[str], None] = lambda msg: None,
) -> BuildResult:
    """Compile ``source`` into the build folder ``outdir``. Every warning of a pass (a result
    that differs from the source model, e.g. a clamped threshold) goes to ``warn`` as it is
    known and into ``manifest["warnings"]``. Torch and BLAS run with the thread count a busy
    machine stays fast with (``rsnn_compiler.threads``)."""
    from rsnn_compiler.threads import compute_threads

    with compute_threads():
        return _build(source, outdir, options, progress, imported, warn)


def _build(
    source: str,
    outdir: str | Path,
    options: BuildOptions,
    progress: Callable[[str], None],
    imported: ImportResult | None,
    warn: Callable[[str], None],
) -> BuildResult:
    outdir = Path(outdir)
    check_output_folder(output_path(outdir), options.force)  # refuse before the work, not after
    backends = [registry.get_backend(t) for t in options.targets]
    target_pass_options: list = []
    for backend in backends:  # each target applies its options (e.g. the Loihi 2 board)
        target_pass_options.extend(backend.configure(options))
    if options.prune is not None and not (0.0 <= options.prune < 1.0):
        raise UserInputError(f"--prune {options.prune} must be a fraction in [0, 1)")
    if options.dt is not None and not (np.isfinite(options.dt) and options.dt > 0):
        raise UserInputError(f"--dt {options.dt} must be a positive number of seconds")
    check_tolerance(options.accuracy_tolerance)
    if isinstance(options.calib_samples, bool) or not isinstance(options.calib_samples, int) or options.calib_samples < 0:
        raise UserInputError(f"--calib-samples {options.calib_samples} must be a whole number >= 0 (0: every sample)")
    calib_x = calib_y = None
    if options.calib:
        calib_x, calib_y = load_data(options.calib)
    eval_data = _accuracy_data(options, calib_x, calib_y)
    quant_checks = registry.module(registry.QUANT_CHECKS)
    quant_checks.check_limits(options.max_accuracy_drop, options.min_spike_agreement, calib_y is not None)
    import_options = ImportOptions(
        dt=options.dt,
        reset=_enum_option(options.reset, ResetMode, "--reset"),
        comparator=_enum_option(options.comparator, Comparator, "--comparator"),
        nir_source=options.nir_source,
        weights=options.weights,
        factory_args=parse_factory_args(options.factory_args),
        initial_weights=options.initial_weights,
        trust_checkpoint=options.trust_checkpoint,
        calib_x=calib_x,
        calib_y=calib_y,
        extra={"convert": options.convert} if options.convert else {},
    )

    progress(f"importing {source}")
    result = imported or import_model(source, import_options)
    result.report.source = source_label(source)  # the manifest does not depend on the working directory
    if calib_x is not None:  # passes run the model on the calibration data (float and fixed)
        float_uses_calib = options.prune is not None or options.stock is not None
        require_run_within_budget(result.graph, 2 * calib_x.shape[0],
                                  calib_x.shape[1] if float_uses_calib else _calib_count(options, calib_x),
                                  "calibration")
    ctx = PassContext(
        calib_x=calib_x, calib_y=calib_y, options=[*options.pass_options(), *target_pass_options],
        verify_each=options.verify_each, progress=progress,
    )
    if result.graph.attrs.domain is Domain.FIXED:
        return _build_fixed_input(source, outdir, options, backends, result, ctx, eval_data, progress, warn)
    steps = float_pipeline(options)
    float_graph, reports = run_pipeline(result.graph, steps, ctx)
    all_reports: list[PassReport] = [result.report, *reports]
    pipeline = {"float": ["import", *(_step_name(s) for s in steps)]}

    graphs: dict[str | None, Graph] = {None: float_graph}
    source_profile = next(iter(result.fixed), None) if any(b.uses_fixed for b in backends) else None
    profile = resolve_profile(backends, options.profile or source_profile)
    changed = options.prune is not None or options.stock is not None
    exact = result.fixed.get(profile) if profile is not None and not changed else None
    if result.fixed and profile is not None and exact is None:
        result.report.notes.append(
            f"the source's own {', '.join(result.fixed)} integer graph is not used ("
            + ("the float graph was changed by pruning / --stock-neurons" if changed else f"profile {profile}")
            + "): requantized from the float graph")
    if ctx.calib_x is not None and float_graph.attrs.steps:
        ctx.calib_x = ctx.calib_x[: float_graph.attrs.steps]  # temporal pruning chose T
    calib_note = _cap_calibration(ctx, options, progress)
    if profile is not None:
        ctx.profile = profile
        if profile == "loihi2" and options.stock is not None and options.stock.mode is StockNeurons.NETX:
            ctx.options = ctx.options.with_(QuantizeOptions(spec=LOIHI2_NETX))  # integer weights, bias_exp 6
        steps = fixed_pipeline(profile, backends)
        start = float_graph
        if exact is not None:  # the source is this integer graph: lower it, do not requantize
            steps = [s for s in steps if s not in QUANTIZE_STEPS]
            start = exact
        fixed, fixed_reports = run_pipeline(start, steps, ctx)
        if exact is not None:
            steps = ["imported", *steps]
        for r in fixed_reports:
            r.notes.insert(0, f"profile {profile}")
            if calib_note and r.name in ("quantize_weights", "quantize_state"):
                r.notes.insert(1, calib_note)
        progress("checking what quantization changed")
        check = quant_checks.check_quantization(float_graph, fixed, fixed_reports, ctx.calib_x, ctx.calib_y)
        check.notes.insert(0, f"profile {profile}")
        fixed_reports.append(check)
        graphs[profile] = fixed
        all_reports.extend(fixed_reports)
        pipeline[profile] = [*steps, check.name]
    warnings = pass_warnings(all_reports, warn)
    if profile is not None:
        quant_checks.gate(check, options.max_accuracy_drop, options.min_spike_agreement)

    record = measure_accuracy(eval_data, options, result.graph, float_graph,
                              {p: g for p, g in graphs.items() if p is not None}, progress)
    if record is not None:
        enforce(record, kept(warnings, warn))
    return write_build(
        outdir, backends, graphs, profile, all_reports, pipeline, progress,
        source_entry(source, options, result.report.source_format), build_options_json(options, profile),
        accuracy=record, warnings=warnings, force=options.force,
    )


def pass_warnings(reports: list[PassReport], warn: Callable[[str], None]) -> list[str]:
    """The passes' warnings (notes marked ``WARNING:`` join them), each also given to ``warn``."""
    for r in reports:
        r.warnings += [n[len(WARNING_NOTE):].strip() for n in r.notes if n.upper().startswith(WARNING_NOTE)]
    warnings = [w for r in reports for w in r.warnings]
    for w in warnings:
        warn(w)
    return warnings


def kept(warnings: list[str], warn: Callable[[str], None]) -> Callable[[str], None]:
    """A ``warn`` that also records the message in ``warnings`` (the manifest's list)."""
    def both(message: str) -> None:
        warnings.append(message)
        warn(message)
    return both


def source_entry(source: str, options: BuildOptions, source_format: str) -> dict:
    return {
        "source": source_label(source),
        "sha256": _input_digest(source, options),
        "format": source_format,
    }


def build_options_json(options: BuildOptions, profile: str | None) -> dict:
    data = {
        "targets": list(options.targets),
        "dt": options.dt,
        "reset": options.reset,
        "comparator": options.comparator,
        "nir_source": options.nir_source,
        "factory_args": options.factory_args,
        "initial_weights": options.initial_weights,
        "prune": options.prune,
        "profile": profile,
        "calib": os.path.basename(options.calib) if options.calib else None,
    }
    if options.precision is not None:
        data["precision"] = options.precision.to_json()
    if options.holdout:
        data["holdout"] = os.path.basename(options.holdout)
    return data


def _build_fixed_input(source, outdir, options: BuildOptions, backends, result: ImportResult, ctx: PassContext,
                       eval_data: EvalData | None, progress, warn) -> BuildResult:
    """A fixed-point graph is built as it is: its profile, its integers, the targets' lowering
    passes only (no float passes, no re-quantization)."""
    graph = result.graph
    name = Path(source).name
    float_only = [b.name for b in backends if not b.uses_fixed]
    if float_only:
        raise UserInputError(f"target '{float_only[0]}' needs a float graph, but {name} is a fixed-point"
                             f" ({graph.attrs.profile}) graph; use integer targets (c, gpu, lava)")
    given = [flag for flag, value in (("--prune", options.prune), ("--convert", options.convert),
                                      ("--weight-bits/--state-bits/--precision", options.precision))
             if value is not None]
    if given:
        raise UserInputError(f"{given[0]} applies to float models; {name} is already fixed-point"
                             f" ({graph.attrs.profile}) and is built without re-quantizing")
    needs = sorted({b.requires_profile for b in backends if b.requires_profile} | {options.profile} - {None})
    if any(p != graph.attrs.profile for p in needs):
        raise UserInputError(f"{name} is a {graph.attrs.profile} graph but the targets or --profile need"
                             f" {', '.join(needs)}; build it for targets of its profile")
    profile = resolve_profile(backends, graph.attrs.profile)
    ctx.profile = profile
    steps = fixed_pipeline(profile, backends)[2:]  # lowering only: the graph is already quantized
    fixed, reports = run_pipeline(graph, steps, ctx)
    result.report.notes.append(f"fixed-point ({profile}) input: built as it is, without re-quantizing")
    warnings = pass_warnings([result.report, *reports], warn)
    record = None
    if eval_data is not None:
        progress(f"measuring accuracy on {eval_data.label}")
        record = AccuracyRecord(data=eval_data.label, float_model=None)
        record.add(f"fixed point ({profile}: {_describe_widths(fixed)})", accuracy_percent(fixed, eval_data))
        record.notes.append("no float model in a fixed-point input: nothing to compare against")
    return write_build(
        outdir, backends, {profile: fixed}, profile, [result.report, *reports],
        {profile: ["import", *steps]}, progress,
        source_entry(source, options, result.report.source_format), build_options_json(options, profile),
        accuracy=record, warnings=warnings, force=options.force,
    )


def write_build(outdir: Path, backends, graphs: dict, profile: str | None, all_reports: list[PassReport],
                pipeline: dict, progress, input_entry: dict, options_json: dict,
                accuracy: AccuracyRecord | None = None, extra_manifest: dict | None = None,
                warnings: list[str] | None = None, force: bool = False) -> BuildResult:
    """Check every target, then write graphs, target folders, timings and the manifest atomically.

    ``graphs`` maps None (the float graph; may be absent) and the profile to graphs; ``warnings``
    are the build's warning lines (manifest ``warnings``); ``force`` lets ``outdir`` replace a
    folder that is not an rsnnc build."""
    float_graph = graphs.get(None)

    def graph_for(backend) -> Graph:
        return graphs[profile] if backend.uses_fixed else float_graph

    for backend in backends:
        diagnostics = backend.check(graph_for(backend))
        if diagnostics:
            raise TargetCheckError(backend.name, diagnostics)
    steps_graph = float_graph if float_graph is not None else graphs[profile]

    with atomic_directory(outdir, force=force) as tmp:
        graph_entries = {}
        for key, graph in graphs.items():
            fname = graph_file(key)
            save_graph(graph, tmp / fname)
            (tmp / fname.replace(".rsnn", ".txt")).write_text(to_text(graph))
            graph_entries[key or "float"] = {"file": fname, "hash": structural_hash(graph)}
        artifacts = {}
        for backend in backends:
            progress(f"emitting {backend.name}")
            target_dir = tmp / backend.name
            target_dir.mkdir(exist_ok=True)
            artifact = backend.emit(graph_for(backend), target_dir)
            if not any(target_dir.iterdir()):
                target_dir.rmdir()
            artifacts[backend.name] = {
                "profile": profile if backend.uses_fixed else None,
                "files": artifact.files,
                "summary": artifact.summary,
                **({"details": list(artifact.details)} if artifact.details else {}),
            }
        # reports: PassReport objects, or JSON dicts carried over from an earlier build (finetune)
        reports_json = [r.to_json() if isinstance(r, PassReport) else dict(r) for r in all_reports]
        timings = {"passes": [{"name": r["name"], "wall_time_s": r.pop("wall_time_s", None), **_nested_wall_times(r)}
                              for r in reports_json]}
        manifest = {
            "format": "rsnnc-build/1",
            "compiler": {"name": "rsnnc", "version": __version__},
            "input": input_entry,
            "options": options_json,
            "dt": steps_graph.attrs.dt,
            "steps": steps_graph.attrs.steps,  # time steps chosen by temporal pruning (None: all)
            "pipeline": pipeline,
            "warnings": list(warnings or []),
            "passes": reports_json,
            "graphs": graph_entries,
            "targets": artifacts,
            "accuracy": None if accuracy is None else accuracy.to_json(),
            **(extra_manifest or {}),
        }
        write_json(tmp / TIMINGS, timings)
        manifest["files"] = file_hashes(tmp)
        write_json(tmp / MANIFEST, manifest)
    return BuildResult(outdir=outdir, manifest=manifest, reports=all_reports)
