"""``rsnnc passes``: the registered passes and the pipeline per target."""

from __future__ import annotations

import json
from dataclasses import asdict

import rich_click as click

from rsnn_compiler.cli.common import Example, common_options, epilog, handler, json_option

EXAMPLES = (Example("rsnnc passes"), Example("rsnnc passes --json"))


@click.command("passes", help="List the passes and the pipeline per target.",
               short_help="list the passes and the pipeline per target", epilog=epilog(EXAMPLES))
@json_option()
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler import catalog
    from rsnn_compiler.pipeline import CHECK_STEP, fixed_pipeline, float_pipeline_names

    rows = catalog.passes()
    pipeline = {
        "float": ["import", *float_pipeline_names(prune=False)],
        "float (--prune)": ["import", *float_pipeline_names(prune=True)],
        "fixed (c, gpu)": [*fixed_pipeline("fpga", ["c", "gpu"]), CHECK_STEP],
        "fixed (lava)": [*fixed_pipeline("loihi2", ["lava"]), CHECK_STEP],
    }
    if args.json:
        print(json.dumps({"passes": [asdict(r) for r in rows], "pipeline": pipeline}, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="Passes", title_justify="left")
    for col in ("pass", "requires", "establishes", "what it does"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, ", ".join(r.requires) or "-", ", ".join(r.establishes) or "-", r.doc)
    out.print(table)
    for key, steps in pipeline.items():
        out.print(f"pipeline {key}: {' -> '.join(steps)}")
    return 0
