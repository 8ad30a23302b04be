"""``rsnnc sweep``: build and validate every point of a design-space sweep, as Ray tasks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import rich_click as click

from rsnn_compiler.cli.common import (
    Example, common_options, epilog, handler, json_option, ray_options, ray_options_from, warning,
)

EXAMPLES = (
    Example("rsnnc sweep models/sweeps/small.toml -o sweeps/small --num-cpus 2",
            "4 points of the trained RLeaky model: time steps x target, on a local Ray with 2 CPUs"),
    Example("rsnnc sweep models/sweeps/small.toml -o sweeps/small --json",
            "again: every point is finished, so nothing runs; the table as JSON"),
)

TEXT = """CONFIG (.toml, .yaml or .json; see models/sweeps/ and docs/sweep.md) names
the model as `rsnnc build` options in [model], the validation data in [data], and the points: a
[grid] of values (every combination) and/or [[point]] tables. Each point is a normal build
plus validate, run as a Ray task (a local Ray on this machine, or the cluster at --address).

DIR gets points/KEY/ (each point's build, validate.json and result.json), sweep.json and
sweep.md (one row per point: accuracy, synaptic operations, energy, Loihi 2 cores, C memory)
and pareto.png/.svg (accuracy against each cost). A point is keyed by the hash of its inputs
and options: a rerun skips finished points, and an interrupted sweep resumes (--force reruns
all). Exit 1 when a point does not pass (mismatch, refused build, executor missing)."""


@click.command("sweep", help="Build and validate every point of a design-space sweep.",
               short_help="build and validate a grid of options, as Ray tasks", epilog=epilog(EXAMPLES, TEXT))
@click.argument("config", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="sweep folder (created; an earlier sweep there is resumed)")
@click.option("--force", is_flag=True, help="run every point again, even those finished in an earlier run")
@click.option("--no-plot", is_flag=True, help="do not draw pareto.png/.svg")
@ray_options
@json_option("print sweep.json instead of the table")
@common_options
@handler
def command(args, out, err) -> int:
    from rich.table import Table

    from rsnn_compiler.sweep.config import load_config
    from rsnn_compiler.sweep.pareto import write_pareto
    from rsnn_compiler.sweep.run import run_sweep
    from rsnn_compiler.sweep.table import TABLE_JSON, TABLE_MD, table_cells, write_table

    config = load_config(args.config)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    points = len(config.points)
    finished: list = []
    try:
        result = run_sweep(config, root, ray_options_from(args), force=args.force, on_point=finished.append)
    except KeyboardInterrupt:
        print(f"rsnnc: interrupted; the {len(finished)} point(s) finished in this run are kept in {root}:"
              " run the same command to resume", file=sys.stderr)
        return 130
    data = write_table(root, config.path, config.axes, result.results)
    pictures = [] if args.no_plot else write_pareto(root, result.results)
    failed = [r for r in result.results if r.status != "ok"]
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        table = Table(title=f"Sweep {config.path}: {points} points ({result.ran} run, {result.cached} from an earlier run)",
                      title_justify="left")
        head, rows = table_cells(config.axes, result.results)
        for col in head:
            table.add_column(col)
        for cells in rows:
            table.add_row(*cells)
        out.print(table)
        files = ", ".join(str(p) for p in [root / TABLE_JSON, root / TABLE_MD, *pictures])
        out.print(f"written: {files}")
    for r in result.results:
        for message in r.warnings:
            warning(f"point {r.index + 1}: {message}")
    for r in failed:
        print(f"rsnnc: check failed: point {r.index + 1} ({r.status}): {r.message}", file=sys.stderr)
    return 1 if failed else 0
