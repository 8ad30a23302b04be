"""The ``rsnnc`` command line (DESIGN §1).

Exit codes: 0 ok, 1 a check failed, 2 bad input or usage, 3 internal error (a bug: please
report it with the output of ``--debug``). Errors are one line on stderr; ``--debug`` shows the
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from rich.console import Console

from rsnn_compiler import __version__, registry
from rsnn_compiler.errors import RsnncError, UserInputError

EXIT_INTERNAL = 3

BUILD_EXAMPLE = """\
examples:
  rsnnc build models/example/recurrent.rsnn -o build/demo
  rsnnc build model.nir --dt 1e-4 --reset subtract_deferred --target c,gpu -o build/
  rsnnc build mypkg.nets:make_rnn --weights rnn.pt --calib calib.npz -o build/rnn

INPUT is a .nir file, an .onnx ANN, an .rsnn graph, or pkg.module:factory with --weights.
The build directory holds manifest.json (version, input hash, pipeline, pass reports, file
hashes), the float graph (graph.float.rsnn/.txt), one fixed-point graph per profile a target
needs, and one folder per target. It is written atomically."""

RUN_EXAMPLE = """\
examples:
  rsnnc run build/demo --inputs models/example/data.npz --out out.npz
  rsnnc run build/demo --inputs x.npz --out y.npz --executor c --domain fixed

The inputs file holds x shaped (time, batch, *features). The output holds 'out' (time, batch,
outputs), 'spikes/<node>' and the states 'v/<node>', 'i/<node>' per step."""

REPORT_EXAMPLE = """\
examples:
  rsnnc report build/demo
  rsnnc report build/demo --json | python -c 'import json,sys; print([p["name"] for p in json.load(sys.stdin)["passes"]])'"""

INSPECT_EXAMPLE = """\
examples:
  rsnnc inspect models/example/recurrent.rsnn     # import, verify and print the IR text form
  rsnnc inspect build/demo                        # summary of a build and its float graph
  rsnnc inspect model.nir --dt 1e-4 --json"""

VALIDATE_EXAMPLE = """\
examples:
  rsnnc build models/example/recurrent.rsnn --target c,gpu -o build/demo
  rsnnc validate build/demo --data models/example/data.npz
  rsnnc validate build/demo --data test.npz --max-accuracy-drop 1.0 --json

Runs the float model, the fixed-point interpreter and every integer executor in the build (c,
gpu, lava). Exit 1 when any integer executor differs from the interpreter in any spike or state
at any step (the first difference is printed), when an executor cannot run (unless
--allow-missing), or when accuracy drops more than --max-accuracy-drop points. Writes
BUILD/validate.json."""

EXPORT_EXAMPLE = """\
examples:
  rsnnc export build/demo --format nir -o demo.nir"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages on stderr")


def _add_import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dt", type=float, help="seconds per time step (NIR files do not record it; inferred where possible)")
    p.add_argument(
        "--reset",
        help="reset mode for imported neurons: zero, subtract, subtract_deferred (snnTorch default),"
        " subtract_nodelay, zero_hold, none (NIR files do not record it; default zero)",
    )
    p.add_argument("--comparator", help="spike comparator: gt (v > theta, default) or ge (v >= theta)")
    p.add_argument("--weights", help="state_dict (.pt) for a pkg.module:factory input (loaded with weights_only)")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow loading a whole pickled module (unpickling runs code: only for files you trust)",
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rsnnc",
        description="Compile trained spiking neural networks to Loihi 2 (Lava), fixed-point C and GPU,"
        " and check that every integer executor computes the same spikes.",
        formatter_class=_Formatter,
        epilog="run `rsnnc COMMAND --help` for examples of each command",
    )
    parser.add_argument("--version", action="version", version=f"rsnnc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("build", help="compile a model into a build directory", epilog=BUILD_EXAMPLE, formatter_class=_Formatter)
    p.add_argument("input", metavar="INPUT")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="build directory to (re)create")
    p.add_argument("--target", default=",".join(_default_targets()), help="comma-separated targets (see `rsnnc targets`)")
    _add_import_options(p)
    p.add_argument("--calib", metavar="FILE.npz", help="calibration data (x, optional y) for quantization, pruning and fidelity reports")
    p.add_argument("--prune", type=float, metavar="FRACTION", help="fraction of weights to prune (off by default)")
    p.add_argument("--board", choices=["oheo_gulch", "kapoho_point", "hala_point"],
                   help="Loihi 2 board the lava target's mapping must fit (default kapoho_point, 8 chips)")
    p.add_argument(
        "--convert", choices=["maxnorm", "ecl", "sfn"],
        help="ANN-to-SNN conversion for .onnx and pkg.module:factory ANNs (default for .onnx: sfn);"
        " see docs/conversion.md",
    )
    p.add_argument("--steps", type=int, metavar="T", help="time steps the converted SNN runs (default: sfn 1, ecl 2, maxnorm 8)")
    p.add_argument("--levels", type=int, metavar="N", help="sfn: graded-spike levels per step (default: the QCFS L, else 8)")
    p.add_argument(
        "--convert-opt", action="append", default=[], metavar="KEY=VALUE",
        help="conversion knob, repeatable: percentile, v_init, theta_neg, finetune, epochs, lr, ft_forward,"
        " temperature, ce, search, compensate, readout, report_samples, seed (docs/conversion.md)",
    )
    g = p.add_argument_group("pruning (with --prune; measured on --calib data)")
    g.add_argument("--prune-structure", choices=["unstructured", "neurons", "channels"], help="remove single weights (default) or whole neurons/channels")
    g.add_argument("--prune-finetune", type=int, metavar="EPOCHS", help="masked fine-tune epochs after pruning (default 0)")
    g.add_argument("--prune-rounds", type=int, metavar="N", help="gradual pruning: N rounds of prune then fine-tune")
    g.add_argument("--prune-tolerance", type=float, metavar="POINTS", help="back off to the sparsest level within POINTS of accuracy")
    g.add_argument("--finetune-data", metavar="FILE.npz", help="training data for the fine-tune (default: --calib)")
    g.add_argument("--no-prune-time", action="store_true", help="keep every time step (no temporal pruning)")
    g.add_argument("--time-tolerance", type=float, metavar="POINTS", help="accuracy drop allowed when shortening T (default 1.0)")
    g.add_argument("--time-kl", type=float, metavar="NATS", help="KL divergence of outputs allowed when shortening T (default 0.05)")
    p.add_argument(
        "--profile",
        help="fixed-point profile for every integer target: loihi2 or fpga (default: loihi2 when"
        " building for lava, else fpga)",
    )
    p.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a summary")
    _add_common(p)

    p = sub.add_parser("run", help="run a build on inputs", epilog=RUN_EXAMPLE, formatter_class=_Formatter)
    p.add_argument("build", metavar="BUILD")
    p.add_argument("--inputs", required=True, metavar="X.npz")
    p.add_argument("--out", required=True, metavar="Y.npz")
    p.add_argument("--executor", default="interp", help=f"one of: {', '.join(sorted(registry.EXECUTORS))} (default interp)")
    p.add_argument("--domain", default="float", choices=["float", "fixed"])
    p.add_argument("--profile", help="fixed-point profile to run when the build has several (loihi2, fpga)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    _add_common(p)

    p = sub.add_parser("report", help="show what every pass did", epilog=REPORT_EXAMPLE, formatter_class=_Formatter)
    p.add_argument("build", metavar="BUILD")
    p.add_argument("--json", action="store_true", help="print {build, pipeline, passes: [...]} as JSON")
    _add_common(p)

    p = sub.add_parser("inspect", help="show a model's or a build's IR", epilog=INSPECT_EXAMPLE, formatter_class=_Formatter)
    p.add_argument("target", metavar="INPUT_OR_BUILD")
    _add_import_options(p)
    p.add_argument("--json", action="store_true")
    _add_common(p)

    p = sub.add_parser("passes", help="list the passes and the pipeline per target", formatter_class=_Formatter,
                       epilog="example:\n  rsnnc passes --json")
    p.add_argument("--json", action="store_true")
    _add_common(p)

    p = sub.add_parser("targets", help="list the targets and their status", formatter_class=_Formatter,
                       epilog="example:\n  rsnnc targets")
    p.add_argument("--json", action="store_true")
    _add_common(p)

    p = sub.add_parser("validate", help="prove the integer executors agree bit for bit", epilog=VALIDATE_EXAMPLE, formatter_class=_Formatter)
    p.add_argument("build", metavar="BUILD")
    p.add_argument("--data", required=True, metavar="X.npz", help="inputs x (time, batch, *features) and optional labels y")
    p.add_argument("--allow-missing", action="store_true", help="do not fail when an executor cannot run here (e.g. no Lava environment)")
    p.add_argument("--max-accuracy-drop", type=float, metavar="POINTS", help="fail when fixed-point accuracy is more than POINTS below float")
    p.add_argument("--json", action="store_true", help="print validate.json to stdout")
    _add_common(p)

    p = sub.add_parser("export", help="export a build's float graph to another format", epilog=EXPORT_EXAMPLE, formatter_class=_Formatter)
    p.add_argument("build", metavar="BUILD")
    p.add_argument("--format", required=True, help="export format (e.g. nir)")
    p.add_argument("-o", "--out", required=True, metavar="FILE")
    _add_common(p)

    for name, spec in sorted(registry.COMMANDS.items()):
        registry.resolve(spec)(sub, _Formatter, _add_common)
    return parser


def _default_targets() -> list[str]:
    return ["ir"]


# ---------------------------------------------------------------------------------------------
def _convert_extra(args) -> dict:
    """``--convert/--steps/--levels/--convert-opt`` as BuildOptions.extra["convert"]."""
    opts = {}
    for item in args.convert_opt:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"--convert-opt '{item}' must be KEY=VALUE")
        opts[key.strip()] = value.strip()
    if not args.convert and (args.steps or args.levels or opts):
        if not str(args.input).endswith(".onnx"):
            raise UserInputError("--steps, --levels and --convert-opt need --convert (ANN inputs only)")
    if not (args.convert or args.steps or args.levels or opts):
        return {}
    return {"convert": {"method": args.convert or "sfn", "steps": args.steps, "levels": args.levels, "opts": opts}}


def _prune_extra(args) -> dict:
    """Pruning flags as pass options (``passes/prune_spatial.py``, ``prune_temporal.py``)."""
    extra = {
        key: value
        for key, value in {
            "prune_structure": args.prune_structure,
            "prune_finetune_epochs": args.prune_finetune,
            "prune_rounds": args.prune_rounds,
            "prune_tolerance": args.prune_tolerance,
            "prune_finetune_data": args.finetune_data,
            "prune_time": False if args.no_prune_time else None,
            "time_accuracy_tolerance": args.time_tolerance,
            "time_kl_tolerance": args.time_kl,
        }.items()
        if value is not None
    }
    if extra and args.prune is None:
        raise UserInputError("pruning options need --prune FRACTION (e.g. --prune 0.8)")
    return extra


def trim_to_build_steps(manifest: dict, x, err: Console, quiet: bool):
    """A build whose temporal pruning chose T runs only the first T steps of the data."""
    steps = manifest.get("steps")
    if steps and x.shape[0] > steps:
        if not quiet:
            err.print(f"[dim]rsnnc:[/dim] the build runs {steps} of the {x.shape[0]} input steps (temporal pruning)", highlight=False)
        return x[:steps]
    return x


def cmd_build(args, out: Console, err: Console) -> int:
    from rsnn_compiler.artifact import read_timings
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.reports import print_build_summary

    targets = tuple(t.strip() for t in args.target.split(",") if t.strip())
    if not targets:
        raise UserInputError("--target is empty; give at least one target (see `rsnnc targets`)")
    options = BuildOptions(
        targets=targets, dt=args.dt, reset=args.reset, comparator=args.comparator, weights=args.weights,
        trust_checkpoint=args.trust_checkpoint, calib=args.calib, prune=args.prune, profile=args.profile,
        board=args.board, extra={**_convert_extra(args), **_prune_extra(args)},
    )
    progress = (lambda msg: None) if args.quiet else (lambda msg: err.print(f"[dim]rsnnc:[/dim] {msg}", highlight=False))
    if err.is_terminal and not args.quiet:
        with err.status("building...") as status:
            result = build(args.input, args.out, options, progress=lambda m: status.update(m))
    else:
        result = build(args.input, args.out, options, progress=progress)
    if args.json:
        print(json.dumps(result.manifest, indent=2, sort_keys=True))
    else:
        print_build_summary(out, result.manifest, read_timings(result.outdir), str(result.outdir))
    return 0


def cmd_run(args, out: Console, err: Console) -> int:
    import numpy as np

    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.data import load_data, save_npz

    manifest = read_manifest(Path(args.build))
    x, _y = load_data(args.inputs)
    executor = registry.get_executor(args.executor)
    if not args.quiet:
        err.print(f"[dim]rsnnc:[/dim] running {args.executor} ({args.domain}) on {x.shape[1]} sample(s) x {x.shape[0]} steps", highlight=False)
    x = trim_to_build_steps(manifest, x, err, args.quiet)
    result = executor.run(Path(args.build), manifest, args.domain, args.profile, x)
    save_npz(args.out, result.to_npz_dict())
    summary = {
        "out": args.out,
        "executor": args.executor,
        "domain": args.domain,
        "steps": int(x.shape[0]),
        "batch": int(x.shape[1]),
        "output_shape": list(result.out.shape),
        "prediction": np.argmax(result.out.reshape(result.out.shape[0], result.out.shape[1], -1).sum(0), axis=-1).tolist(),
        "spikes": {k: int(np.count_nonzero(v)) for k, v in result.spikes.items()},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(f"wrote {args.out}: out {tuple(result.out.shape)}, {len(result.spikes)} spiking node(s), "
                  f"{sum(summary['spikes'].values())} spikes")
    return 0


def cmd_report(args, out: Console, err: Console) -> int:
    from rsnn_compiler.artifact import read_manifest, read_timings
    from rsnn_compiler.reports import merged_reports, passes_table

    manifest = read_manifest(Path(args.build))
    reports = merged_reports(manifest, read_timings(Path(args.build)))
    if args.json:
        print(json.dumps({
            "build": str(args.build),
            "compiler": manifest.get("compiler"),
            "input": manifest.get("input"),
            "pipeline": manifest.get("pipeline"),
            "passes": reports,
        }, indent=2, sort_keys=True))
    else:
        pipe = manifest.get("pipeline", {})
        for key, steps in pipe.items():
            out.print(f"pipeline \\[{key}]: {' -> '.join(steps)}")
        out.print(passes_table(reports))
        from rsnn_compiler.reports import detail_tables

        for table in detail_tables(reports):
            out.print(table)
        from rsnn_compiler.mapping_report import mapping_metrics, mapping_tables, write_utilisation_plot

        mapping = mapping_metrics(reports)
        if mapping:
            for table in mapping_tables(mapping):
                out.print(table)
            sub = Path(args.build) / "lava"
            out.print(write_utilisation_plot(mapping, (sub if sub.is_dir() else Path(args.build)) / "mapping.png"))
    return 0


def cmd_inspect(args, out: Console, err: Console) -> int:
    from rsnn_compiler.artifact import MANIFEST, read_manifest
    from rsnn_compiler.build import import_model
    from rsnn_compiler.executors import load_build_graph
    from rsnn_compiler.frontend_api import ImportOptions
    from rsnn_compiler.ir.text import structural_hash, to_text
    from rsnn_compiler.build import _enum_option
    from rsnn_compiler.ir.ops import Comparator, ResetMode

    path = Path(args.target)
    if path.is_dir() and (path / MANIFEST).exists():
        manifest = read_manifest(path)
        graph = load_build_graph(path, manifest, "float")
        header = {"build": str(path), "input": manifest.get("input"), "graphs": manifest.get("graphs")}
    else:
        options = ImportOptions(
            dt=args.dt, reset=_enum_option(args.reset, ResetMode, "--reset"),
            comparator=_enum_option(args.comparator, Comparator, "--comparator"),
            weights=args.weights, trust_checkpoint=args.trust_checkpoint,
        )
        result = import_model(str(args.target), options)
        graph = result.graph
        header = {"input": str(args.target), "import": result.report.to_json()}
    if args.json:
        header.update({
            "hash": structural_hash(graph),
            "nodes": {n: {"kind": op.kind.value, "in_shape": list(op.in_shape), "out_shape": list(op.out_shape)}
                      for n, op in graph.nodes.items()},
            "edges": [[e.src, e.dst, e.delay] for e in graph.edges],
            "text": to_text(graph),
        })
        print(json.dumps(header, indent=2, sort_keys=True))
    else:
        sys.stdout.write(to_text(graph))
        out.print(f"# {len(graph)} nodes, {len(graph.edges)} edges, hash {structural_hash(graph)[:16]}", highlight=False)
    return 0


def cmd_passes(args, out: Console, err: Console) -> int:
    from rich.table import Table

    from rsnn_compiler.build import fixed_pipeline, float_pipeline, BuildOptions

    rows = []
    for name in sorted(registry.PASSES):
        p = registry.get_pass(name)
        rows.append({
            "name": name,
            "requires": sorted(getattr(p, "requires", ())),
            "establishes": sorted(getattr(p, "establishes", ())),
            "forbids": sorted(getattr(p, "forbids", ())),
            "doc": (type(p).__module__ and (sys.modules[type(p).__module__].__doc__ or "").strip().splitlines() or [""])[0],
        })
    pipeline = {
        "float": ["import", *(s if isinstance(s, str) else s.name for s in float_pipeline(BuildOptions()))],
        "fixed (c, gpu)": fixed_pipeline("fpga", ["c", "gpu"]),
        "fixed (lava)": fixed_pipeline("loihi2", ["lava"]),
    }
    if args.json:
        print(json.dumps({"passes": rows, "pipeline": pipeline}, indent=2))
        return 0
    table = Table(title="Passes", title_justify="left")
    for col in ("pass", "requires", "establishes", "what it does"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], ", ".join(r["requires"]) or "-", ", ".join(r["establishes"]) or "-", r["doc"])
    out.print(table)
    for key, steps in pipeline.items():
        out.print(f"pipeline {key}: {' -> '.join(steps)}")
    return 0


def cmd_targets(args, out: Console, err: Console) -> int:
    from rich.table import Table

    rows = []
    for name in sorted(registry.BACKENDS):
        try:
            backend = registry.get_backend(name)
            status = getattr(backend, "status", lambda: "ready")()
            profile = backend.requires_profile or ("loihi2 or fpga" if backend.uses_fixed else None)
            rows.append({"name": name, "profile": profile, "description": backend.description, "status": status})
        except Exception as exc:  # a broken optional backend must not hide the others
            rows.append({"name": name, "profile": None, "description": "", "status": f"unavailable: {exc}"})
    if args.json:
        print(json.dumps({"targets": rows, "executors": sorted(registry.EXECUTORS)}, indent=2))
        return 0
    table = Table(title="Targets", title_justify="left")
    for col in ("target", "fixed-point profile", "status", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["profile"] or "- (float)", r["status"], r["description"])
    out.print(table)
    out.print(f"executors for `rsnnc run`: {', '.join(sorted(registry.EXECUTORS))}")
    return 0


def cmd_validate(args, out: Console, err: Console) -> int:
    from rich.table import Table

    from rsnn_compiler.artifact import atomic_write_bytes, read_manifest
    from rsnn_compiler.data import load_data
    from rsnn_compiler.validate import validate

    build = Path(args.build)
    manifest = read_manifest(build)
    x, y = load_data(args.data)
    x = trim_to_build_steps(manifest, x, err, args.quiet)
    progress = (lambda msg: None) if args.quiet else (lambda msg: err.print(f"[dim]rsnnc:[/dim] {msg}", highlight=False))
    report = validate(build, manifest, x, y, allow_missing=args.allow_missing,
                      max_accuracy_drop=args.max_accuracy_drop, progress=progress)
    data = report.to_json()
    atomic_write_bytes(build / "validate.json", (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        table = Table(title=f"Integer executors vs the fixed-point interpreter ({report.profile})", title_justify="left")
        for col in ("executor", "result", "values compared", "time", "detail"):
            table.add_column(col)
        for c in report.executors:
            detail = c.mismatch.describe() if c.mismatch else c.reason
            table.add_row(c.executor, c.status, f"{c.compared_values:,}", f"{c.wall_time_s:.2f} s", detail)
        out.print(table)
        if report.layers:
            layers = Table(title="Spike agreement, fixed-point vs float, per layer", title_justify="left")
            for col in ("node", "agreement", "float spikes", "fixed spikes"):
                layers.add_column(col)
            for layer in report.layers:
                layers.add_row(layer.node, f"{100 * layer.spike_agreement:.2f}%", str(layer.float_spikes), str(layer.fixed_spikes))
            out.print(layers)
        if report.float_accuracy is not None:
            fixed = "-" if report.fixed_accuracy is None else f"{100 * report.fixed_accuracy:.2f}%"
            out.print(f"accuracy: float {100 * report.float_accuracy:.2f}%, fixed-point {fixed}")
        for note in report.notes:
            out.print(f"note: {note}")
        out.print("validate: OK — every integer executor equals the interpreter" if report.ok else "validate: FAILED")
    for problem in report.problems:
        print(f"rsnnc: check failed: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_export(args, out: Console, err: Console) -> int:
    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.executors import load_build_graph

    if args.format not in registry.EXPORTERS:
        known = ", ".join(sorted(registry.EXPORTERS)) or "none in this installation"
        raise UserInputError(f"unknown export format '{args.format}'; available: {known}")
    manifest = read_manifest(Path(args.build))
    exporter = registry.resolve(registry.EXPORTERS[args.format])
    key = getattr(exporter, "graph_key", "float")  # e.g. netx exports the loihi2 graph
    if key not in manifest.get("graphs", {}):
        raise UserInputError(f"format '{args.format}' exports the {key} graph, which this build lacks;"
                             f" rebuild with a target that makes it (e.g. --target lava)")
    graph = load_build_graph(Path(args.build), manifest, key)
    exporter(graph, args.out)
    out.print(f"wrote {args.out} ({args.format})")
    return 0


COMMANDS = {
    "build": cmd_build,
    "run": cmd_run,
    "report": cmd_report,
    "inspect": cmd_inspect,
    "passes": cmd_passes,
    "targets": cmd_targets,
    "validate": cmd_validate,
    "export": cmd_export,
}


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out = Console(highlight=False, soft_wrap=False, width=120)
    err = Console(stderr=True, highlight=False)
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args, out, err)
    except RsnncError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"rsnnc: error: {exc}", file=sys.stderr)
        for diag in getattr(exc, "diagnostics", [])[1:]:
            print(f"rsnnc: error: {diag}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rsnnc: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: keep the one-line contract, full trace with --debug
        if args.debug:
            traceback.print_exc()
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"rsnnc: internal error: {type(exc).__name__}: {msg} (rerun with --debug and report it)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
