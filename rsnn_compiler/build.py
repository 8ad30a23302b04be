"""``rsnnc build``: import -> float passes -> per-profile quantization -> target check/emit.

The resolved pipeline is explicit and recorded in the manifest. Float pipeline:
``canonicalize -> prune``; when a target runs integers, the build's one fixed-point profile
(see ``resolve_profile``) then gets ``quantize_weights -> quantize_state``. Pruning that is off (or not available) is recorded as
skipped. Everything is written atomically into the build directory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rsnn_compiler import __version__
from rsnn_compiler.artifact import (
    MANIFEST, TIMINGS, atomic_directory, check_output_folder, file_hashes, output_path, sha256_file, write_json,
)
from rsnn_compiler.budget import require_run_within_budget
from rsnn_compiler.data import load_data
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.profiles import LOIHI2_NETX
from rsnn_compiler.frontend_api import ImportOptions, ImportResult, parse_factory_args
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import Comparator, ResetMode
from rsnn_compiler.ir.serialize import save_graph
from rsnn_compiler.ir.text import structural_hash, to_text
from rsnn_compiler.pass_manager import SkippedStep, run_pipeline
from rsnn_compiler.pipeline import PRUNE_STEP, fixed_pipeline, float_pipeline_names
from rsnn_compiler.passes_api import PassContext, PassReport, Prop
from rsnn_compiler import registry
from rsnn_compiler.target_api import TargetCheckError
from rsnn_compiler.user_code import guard

FLOAT_GRAPH = "graph.float.rsnn"
WARNING_NOTE = "WARNING:"  # a pass or importer note that changes results: also a build warning
DEFAULT_TARGETS = ("ir",)


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
    prune: float | None = None
    profile: str | None = None  # fixed-point profile; default: what a target requires, else fpga
    board: str | None = None  # Loihi 2 board for targets that map onto one (lava); None: its default
    verify_each: bool = False
    force: bool = False  # -o may replace a folder that is not an rsnnc build
    max_accuracy_drop: float | None = None  # points, float -> fixed on --calib (exit 1 beyond)
    min_spike_agreement: float | None = None  # fraction, float vs fixed spikes (exit 1 below)
    extra: dict = field(default_factory=dict)


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
    for name in float_pipeline_names(options.prune is not None, bool(options.extra.get("stock_neurons"))):
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
    target_pass_options: dict = {}
    for backend in backends:  # each target applies its options (e.g. the Loihi 2 board)
        target_pass_options.update(backend.configure(options))
    if options.prune is not None and not (0.0 <= options.prune < 1.0):
        raise UserInputError(f"--prune {options.prune} must be a fraction in [0, 1)")
    if options.dt is not None and not (np.isfinite(options.dt) and options.dt > 0):
        raise UserInputError(f"--dt {options.dt} must be a positive number of seconds")
    calib_x = calib_y = None
    if options.calib:
        calib_x, calib_y = load_data(options.calib)
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
        extra={"convert": options.extra["convert"]} if options.extra.get("convert") else {},
    )

    progress(f"importing {source}")
    result = imported or import_model(source, import_options)
    result.report.source = source_label(source)  # the manifest does not depend on the working directory
    if calib_x is not None:  # passes run the model on the calibration data (float and fixed)
        require_run_within_budget(result.graph, 2 * calib_x.shape[0], calib_x.shape[1], "calibration")
    ctx = PassContext(
        calib_x=calib_x, calib_y=calib_y, options={**options.extra, **target_pass_options},
        verify_each=options.verify_each, progress=progress,
    )
    if options.prune is not None:
        ctx.options["prune_fraction"] = options.prune
    steps = float_pipeline(options)
    float_graph, reports = run_pipeline(result.graph, steps, ctx)
    all_reports: list[PassReport] = [result.report, *reports]
    pipeline = {"float": ["import", *(_step_name(s) for s in steps)]}

    graphs: dict[str | None, Graph] = {None: float_graph}
    source_profile = next(iter(result.fixed), None) if any(b.uses_fixed for b in backends) else None
    profile = resolve_profile(backends, options.profile or source_profile)
    changed = options.prune is not None or bool(options.extra.get("stock_neurons"))
    exact = result.fixed.get(profile) if profile is not None and not changed else None
    if result.fixed and profile is not None and exact is None:
        result.report.notes.append(
            f"the source's own {', '.join(result.fixed)} integer graph is not used ("
            + ("the float graph was changed by pruning / --stock-neurons" if changed else f"profile {profile}")
            + "): requantized from the float graph")
    if ctx.calib_x is not None and float_graph.attrs.steps:
        ctx.calib_x = ctx.calib_x[: float_graph.attrs.steps]  # temporal pruning chose T
    if profile is not None:
        ctx.profile = profile
        if profile == "loihi2" and options.extra.get("stock_neurons") == "netx":
            ctx.options["fixed_spec"] = LOIHI2_NETX  # integer weights, biases on netx's bias_exp 6
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
        progress("checking what quantization changed")
        check = quant_checks.check_quantization(float_graph, fixed, fixed_reports, ctx.calib_x, ctx.calib_y)
        check.notes.insert(0, f"profile {profile}")
        fixed_reports.append(check)
        graphs[profile] = fixed
        all_reports.extend(fixed_reports)
        pipeline[profile] = [*steps, check.name]
    for r in all_reports:  # notes marked WARNING: join the pass's warnings
        r.warnings += [n[len(WARNING_NOTE):].strip() for n in r.notes if n.upper().startswith(WARNING_NOTE)]
    warnings = [w for r in all_reports for w in r.warnings]
    for w in warnings:
        warn(w)
    if profile is not None:
        quant_checks.gate(check, options.max_accuracy_drop, options.min_spike_agreement)

    def graph_for(backend) -> Graph:
        return graphs[profile] if backend.uses_fixed else float_graph

    for backend in backends:
        diagnostics = backend.check(graph_for(backend))
        if diagnostics:
            raise TargetCheckError(backend.name, diagnostics)

    with atomic_directory(outdir, force=options.force) as tmp:
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
        reports_json = [r.to_json() for r in all_reports]
        timings = {"passes": [{"name": r["name"], "wall_time_s": r.pop("wall_time_s"), **_nested_wall_times(r)}
                              for r in reports_json]}
        manifest = {
            "format": "rsnnc-build/1",
            "compiler": {"name": "rsnnc", "version": __version__},
            "input": {
                "source": source_label(source),
                "sha256": _input_digest(source, options),
                "format": result.report.source_format,
            },
            "options": {
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
            },
            "dt": float_graph.attrs.dt,
            "steps": float_graph.attrs.steps,  # time steps chosen by temporal pruning (None: all)
            "pipeline": pipeline,
            "warnings": warnings,
            "passes": reports_json,
            "graphs": graph_entries,
            "targets": artifacts,
        }
        write_json(tmp / TIMINGS, timings)
        manifest["files"] = file_hashes(tmp)
        write_json(tmp / MANIFEST, manifest)
    return BuildResult(outdir=outdir, manifest=manifest, reports=all_reports)
