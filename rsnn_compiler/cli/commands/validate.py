"""``rsnnc validate``: prove that every integer executor of a build agrees bit for bit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import rich_click as click

from rsnn_compiler.cli.common import (
    Example, common_options, epilog, executor_options_from, gpu_processes_option, handler, json_option, ray_options,
    ray_options_from, trim_to_build_steps,
)

EXAMPLES = (
    Example("rsnnc build models/example/recurrent.rsnn --target c,gpu -o build/demo"),
    Example("rsnnc validate build/demo --data models/example/data.npz"),
    Example("rsnnc validate build/rnn --data models/rleaky_mnist1d/data.npz --max-accuracy-drop 5 --json"),
    Example("rsnnc validate build/demo --data models/example/data.npz --batch 4",
            "4 samples at a time: progress per batch, the same report"),
    Example("rsnnc validate build/demo --data models/example/data.npz --shards 2 --num-cpus 2",
            "the samples split over 2 Ray tasks: the same report as one process"),
)

TEXT = """Runs the float model, the fixed-point interpreter and every integer executor in the build (c,
gpu, lava). Exit 1 when any integer executor differs from the interpreter in any spike or state
at any step (the first difference is printed), when an executor cannot run (unless
--allow-missing), or when accuracy drops more than --max-accuracy-drop points. Writes
BUILD/validate.json.

--batch SAMPLES (default 1024) validates that many samples at a time, with progress per batch;
the batches' results merge exactly, so the report does not depend on the batch size.

--shards N cuts the samples into N consecutive slices validated as Ray tasks (a local Ray, or
the cluster at --address) and merges them: the report equals a run in one process, except the
executors' times, which are summed over the slices."""


@click.command("validate", help="Prove the integer executors agree bit for bit.",
               short_help="prove the integer executors agree bit for bit", epilog=epilog(EXAMPLES, TEXT))
@click.argument("build", metavar="BUILD", type=click.Path(file_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False), metavar="X.npz",
              help="inputs x (time, batch, *features) and optional labels y")
@click.option("--allow-missing", is_flag=True, help="do not fail when an executor cannot run here (e.g. no Lava environment)")
@click.option("--max-accuracy-drop", type=float, metavar="POINTS",
              help="fail when fixed-point accuracy is more than POINTS below float")
@click.option("--batch", type=int, metavar="SAMPLES", default=1024, show_default=True,
              help="validate this many samples at a time (progress per batch, memory for one batch's records);"
                   " the report is the same for any batch size")
@click.option("--shards", type=int, metavar="N",
              help="split the samples into N slices validated in parallel as Ray tasks (default: one process, no Ray)")
@ray_options
@gpu_processes_option
@json_option("print validate.json to stdout")
@common_options
@handler
def command(args, out, err) -> int:
    from rich.table import Table

    from rsnn_compiler import progress
    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.data import load_data
    from rsnn_compiler.errors import UserInputError
    from rsnn_compiler.validate import validate, write_report

    if args.shards is None and (args.address or args.num_cpus):
        raise UserInputError("--address and --num-cpus choose where --shards run; add --shards N")
    build = Path(args.build)
    manifest = read_manifest(build)
    x, y = load_data(args.data)
    x = trim_to_build_steps(manifest, x, err, args.quiet)
    label = f"{Path(args.data).name} ({x.shape[1]} samples)"
    if args.shards is None:
        report = validate(build, manifest, x, y, allow_missing=args.allow_missing,
                          max_accuracy_drop=args.max_accuracy_drop, progress=progress.step,
                          executor_options=executor_options_from(args), data_label=label, batch=args.batch)
    else:
        from rsnn_compiler.sharded_validate import validate_sharded

        report = validate_sharded(build, manifest, x, y, args.shards, ray_options_from(args),
                                  allow_missing=args.allow_missing, max_accuracy_drop=args.max_accuracy_drop,
                                  executor_options=executor_options_from(args), data_label=label)
    data = write_report(build, report)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        table = Table(title=f"Integer executors vs the fixed-point interpreter ({report.profile})", title_justify="left")
        for col in ("executor", "result", "values compared", "time", "detail"):
            table.add_column(col)
        for c in report.executors:
            detail = c.mismatch.describe() if c.mismatch else c.reason
            table.add_row(c.executor, c.status, f"{c.compared_values:,}", f"{c.wall_time_s:.2f} s", detail)
            for part in c.parts:
                count = f"{len(part.nodes)} population{'s' if len(part.nodes) != 1 else ''}"
                table.add_row(f"  {c.executor}: {part.part}", part.status if part.nodes else "-",
                              f"{part.compared_values:,}", "", count + (f"; {part.mismatch.describe()}" if part.mismatch else ""))
        out.print(table)
        if report.layers:
            layers = Table(title="Spike agreement, fixed-point vs float, per layer", title_justify="left")
            for col in ("node", "agreement", "float spikes", "fixed spikes"):
                layers.add_column(col)
            for layer in report.layers:
                layers.add_row(layer.node, f"{100 * layer.spike_agreement:.2f}%", str(layer.float_spikes), str(layer.fixed_spikes))
            out.print(layers)
        if report.fixed_accuracy is not None:
            flt = "-" if report.float_accuracy is None else f"{report.float_accuracy:.2f}%"
            out.print(f"accuracy on {report.accuracy_data}: float {flt}, fixed-point {report.fixed_accuracy:.2f}%")
        for note in report.notes:
            out.print(f"note: {note}")
        out.print("validate: OK — every integer executor equals the interpreter" if report.ok else "validate: FAILED")
    for problem in report.problems:
        print(f"rsnnc: check failed: {problem}", file=sys.stderr)
    return 0 if report.ok else 1
